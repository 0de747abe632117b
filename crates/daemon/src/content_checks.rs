//! header_checks and body_checks (header_checks(5); cleanup_message.c cleanup_act()):
//! each primary header (a folded header as one text, its lines joined by newlines) is
//! looked up in header_checks, each body line in body_checks (within the first
//! body_checks_size_limit bytes of the body), and the table's answer acts on the message:
//!
//! - `REJECT [text]`: the message is refused at its end with `550 5.7.1 text` (default
//!   text `message content rejected`; a text that starts with a 4.x.x code defers with
//!   451); no more checks.
//! - `WARN`/`INFO [text]`: a log line only. `HOLD`: into hold/. `DISCARD`: answered as
//!   queued, then dropped; no more checks. `PASS`: no more checks.
//! - `FILTER transport:destination`, `REDIRECT user@domain`, `BCC user@domain`: as the
//!   access(5) actions of the same name.
//! - `PREPEND text`: a header (or a body line) before this one. `REPLACE text`: this one
//!   replaced. `IGNORE`, `STRIP`: this one removed (STRIP logged).
//! - `DUNNO`, `OK`: nothing. Anything else: a warning, nothing.
//!
//! Every action but IGNORE, DUNNO and OK is logged as cleanup logs it: `QUEUEID: ACTION:
//! header TEXT from ORIGIN; from=<S> to=<R> proto=P helo=<H>: TEXT`. A table lookup error
//! refuses the message with a temporary error (`map lookup problem -- message not
//! accepted, try again later`).
//!
//! Not done: mime_header_checks and nested_header_checks (MIME part headers are body
//! lines here, checked by body_checks), the `DELAY` action (disabled in Postfix too).
//!
//! Trust: the text looked up is the sender's; the tables and their answers are the
//! administrator's. Lines longer than 200 bytes are cut in the log.

use std::fmt::Write as _;
use std::sync::Arc;

use tern_config::config::Config;
use tern_config::mastercf::Service;
use tern_maps::Map;

use crate::relay::PolicyError;

/// The checks of one configuration, opened once per settings load.
#[derive(Debug, Default)]
pub struct ContentChecks {
    header: Vec<Box<dyn Map>>,
    body: Vec<Box<dyn Map>>,
    /// body_checks_size_limit.
    body_limit: usize,
}

impl ContentChecks {
    /// Opens header_checks and body_checks in `service`'s name space; `None` when both
    /// are empty.
    pub fn from_config(
        config: &Config,
        service: Option<&Service>,
    ) -> Result<Option<Arc<Self>>, PolicyError> {
        let get = |name: &str| -> Result<String, PolicyError> {
            let raw = config.lookup_value(name, service).unwrap_or_default();
            Ok(config.expand(&raw, service)?.text)
        };
        let proxy = get("proxy_read_maps")?;
        let proxy: Vec<String> = tern_config::list::split(&proxy).unwrap_or_default();
        let open = |name: &str| -> Result<Vec<Box<dyn Map>>, PolicyError> {
            let value = get(name)?;
            Ok(tern_config::list::split(&value)
                .unwrap_or_else(|_| vec![value.clone()])
                .iter()
                .map(|spec| crate::recipients::open_table_exact(spec, &proxy, &crate::relay::error))
                .collect())
        };
        let header = open("header_checks")?;
        let body = open("body_checks")?;
        if header.is_empty() && body.is_empty() {
            return Ok(None);
        }
        let limit = get("body_checks_size_limit")?;
        let body_limit = limit.trim().parse().map_err(|_| PolicyError::BadValue {
            name: "body_checks_size_limit".to_owned(),
            value: limit.clone(),
        })?;
        Ok(Some(Arc::new(ContentChecks {
            header,
            body,
            body_limit,
        })))
    }
}

/// What the log lines say about the message (cleanup_act_log()).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogContext {
    pub queue_id: String,
    /// `NAME[ADDR]` of the client, `local` for pickup.
    pub origin: String,
    pub sender: Option<String>,
    /// The last recipient.
    pub recipient: Option<String>,
    pub protocol: Option<String>,
    pub helo: Option<String>,
}

/// What the checks decided for the message so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decided {
    /// REJECT's reason, `D.D.D text` (a 4.x.x one defers).
    pub reject: Option<String>,
    /// A table could not be read: the message is refused with a temporary error.
    pub lookup_error: bool,
    pub hold: bool,
    pub discard: bool,
    pub filter: Option<String>,
    pub redirect: Option<String>,
    pub bcc: Vec<String>,
}

/// What happens to the header or line that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    Keep,
    Drop,
    Replace(String),
    /// Write this text first, then the original.
    Prepend(String),
}

/// The checks of one message.
#[derive(Debug)]
pub struct MessageChecks {
    checks: Arc<ContentChecks>,
    pub ctx: LogContext,
    pub decided: Decided,
    /// Log lines not yet taken, in order.
    logs: Vec<String>,
    /// CLEANUP_FLAG_FILTER: checks still apply.
    active: bool,
    body_seen: usize,
}

impl MessageChecks {
    pub fn new(checks: Arc<ContentChecks>, ctx: LogContext) -> Self {
        MessageChecks {
            checks,
            ctx,
            decided: Decided::default(),
            logs: Vec::new(),
            active: true,
            body_seen: 0,
        }
    }

    /// The log lines since the last call.
    pub fn take_logs(&mut self) -> Vec<String> {
        std::mem::take(&mut self.logs)
    }

    /// One primary header (its lines joined with `\n`).
    pub fn header(&mut self, text: &str) -> Act {
        if !self.active || self.checks.header.is_empty() {
            return Act::Keep;
        }
        let checks = Arc::clone(&self.checks);
        match find(&checks.header, text) {
            Ok(Some(value)) => self.act("header", text, &value, "header_checks"),
            Ok(None) => Act::Keep,
            Err(()) => {
                self.lookup_problem("header_checks");
                Act::Keep
            }
        }
    }

    /// One body line (record), without its newline.
    pub fn body(&mut self, line: &[u8]) -> Act {
        if !self.active || self.checks.body.is_empty() {
            return Act::Keep;
        }
        // body_checks_size_limit: only the first so many bytes of the body are looked at.
        if self.body_seen >= self.checks.body_limit {
            return Act::Keep;
        }
        self.body_seen += line.len() + 1;
        let text = String::from_utf8_lossy(line);
        let checks = Arc::clone(&self.checks);
        match find(&checks.body, &text) {
            Ok(Some(value)) => self.act("body", &text, &value, "body_checks"),
            Ok(None) => Act::Keep,
            Err(()) => {
                self.lookup_problem("body_checks");
                Act::Keep
            }
        }
    }

    /// `warning: QUEUEID: TABLE map lookup problem -- message not accepted, try again
    /// later`; the message is refused with a temporary error.
    fn lookup_problem(&mut self, class: &str) {
        if !self.decided.lookup_error {
            self.warn(&format!(
                "{}: {class} map lookup problem -- message not accepted, try again later",
                self.ctx.queue_id
            ));
        }
        self.decided.lookup_error = true;
    }

    /// cleanup_act().
    fn act(&mut self, context: &str, content: &str, value: &str, class: &str) -> Act {
        let (command, text) = match value.find([' ', '\t']) {
            Some(at) => (&value[..at], value[at..].trim_start()),
            None => (value, ""),
        };
        let is = |w: &str| command.eq_ignore_ascii_case(w);
        if is("REJECT") {
            let mut reason = if text.is_empty() {
                "5.7.1 message content rejected".to_owned()
            } else {
                dsn_prepend("5.7.1", text)
            };
            if !reason.starts_with(['4', '5']) {
                self.warn(&format!("bad DSN action in {text} -- need 4.x.x or 5.x.x"));
                reason.replace_range(0..1, "4");
            }
            self.log("reject", context, content, &reason);
            self.decided.reject = Some(reason);
            self.active = false;
            return Act::Keep;
        }
        if is("WARN") {
            self.log("warning", context, content, text);
        } else if is("INFO") {
            self.log("info", context, content, text);
        } else if is("FILTER") {
            if text.is_empty() {
                self.warn(&format!("missing FILTER command argument in {class} map"));
            } else if !text.contains(':') {
                self.warn(&format!(
                    "bad FILTER command {text} in {class} -- need transport:destination"
                ));
            } else {
                self.decided.filter = Some(text.to_owned());
                self.log("filter", context, content, text);
            }
        } else if is("PASS") {
            self.log("pass", context, content, text);
            self.active = false;
        } else if is("DISCARD") {
            self.log("discard", context, content, text);
            self.decided.discard = true;
            self.active = false;
        } else if is("HOLD") {
            if !self.decided.hold && !self.decided.discard {
                self.log("hold", context, content, text);
                self.decided.hold = true;
            }
        } else if is("PREPEND") {
            if text.is_empty() {
                self.warn(&format!("PREPEND action without text in {class} map"));
            } else if context == "header" && !is_header(text) {
                self.warn(&format!(
                    "bad PREPEND header text \"{text}\" in {class} map -- need \"headername: headervalue\""
                ));
            } else {
                self.log("prepend", context, content, text);
                return Act::Prepend(text.to_owned());
            }
        } else if is("REPLACE") {
            if text.is_empty() {
                self.warn(&format!("REPLACE action without text in {class} map"));
            } else if context == "header" && !is_header(text) {
                self.warn(&format!(
                    "bad REPLACE header text \"{text}\" in {class} map -- need \"headername: headervalue\""
                ));
            } else {
                self.log("replace", context, content, text);
                return Act::Replace(text.to_owned());
            }
        } else if is("REDIRECT") {
            if text.contains('@') {
                self.decided.redirect = Some(text.to_owned());
                self.log("redirect", context, content, text);
                self.active = false;
            } else {
                self.warn(&format!(
                    "bad REDIRECT target \"{text}\" in {class} map -- need user@domain"
                ));
            }
        } else if is("BCC") {
            if text.contains('@') {
                self.decided.bcc.push(text.to_owned());
                self.log("bcc", context, content, text);
            } else {
                self.warn(&format!(
                    "bad BCC address \"{text}\" in {class} map -- need user@domain"
                ));
            }
        } else if is("STRIP") {
            self.log("strip", context, content, text);
            return Act::Drop;
        } else if is("IGNORE") {
            return Act::Drop;
        } else if !is("DUNNO") && !is("OK") {
            self.warn(&format!("unknown command in {class} map: {value}"));
        }
        Act::Keep
    }

    /// cleanup_act_log().
    fn log(&mut self, action: &str, context: &str, content: &str, text: &str) {
        let c = &self.ctx;
        let cut: String = content.chars().take(200).collect();
        let mut line = format!(
            "{}: {action}: {context} {cut} from {};",
            c.queue_id, c.origin
        );
        if let Some(s) = &c.sender {
            let _ = write!(line, " from=<{s}>");
        }
        if let Some(r) = &c.recipient {
            let _ = write!(line, " to=<{r}>");
        }
        if let Some(p) = &c.protocol {
            let _ = write!(line, " proto={p}");
        }
        if let Some(h) = &c.helo {
            let _ = write!(line, " helo=<{h}>");
        }
        if !text.is_empty() {
            line.push_str(": ");
            line.push_str(text);
        }
        self.logs.push(line);
    }

    fn warn(&mut self, text: &str) {
        self.logs.push(format!("warning: {text}"));
    }
}

/// The log line of one of cleanup's events for message `id`.
pub fn log_line(id: &str, event: tern_message::cleanup::LogEvent) -> tern_maillog::Line {
    use tern_message::cleanup::LogEvent;
    match event {
        LogEvent::MessageId(v) => tern_maillog::queue::message_id(id, &String::from_utf8_lossy(&v)),
        LogEvent::ResentMessageId(v) => {
            tern_maillog::queue::resent_message_id(id, &String::from_utf8_lossy(&v))
        }
        LogEvent::Line(text) => match text.strip_prefix("warning: ") {
            Some(w) => tern_maillog::Line::warning(w),
            None => tern_maillog::queue::content_check(&text),
        },
    }
}

/// maps_find() over a list: the first table with an answer; an error stops the search.
fn find(maps: &[Box<dyn Map>], key: &str) -> Result<Option<String>, ()> {
    for m in maps {
        match m.lookup(key) {
            Ok(Some(v)) => return Ok(Some(v)),
            Ok(None) => {}
            Err(_) => return Err(()),
        }
    }
    Ok(None)
}

/// dsn_prepend(): `text` when it starts with a status code (`D.D.D `), else `dsn text`.
fn dsn_prepend(dsn: &str, text: &str) -> String {
    let first = text.split_whitespace().next().unwrap_or("");
    if crate::check::dsn_valid(first) {
        text.to_owned()
    } else {
        format!("{dsn} {text}")
    }
}

/// is_header(): `name:` with a name of printable characters other than `:` and space.
fn is_header(text: &str) -> bool {
    match text.find(':') {
        Some(0) | None => false,
        Some(at) => text[..at]
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b':'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A regexp: table from `(pattern, action)` lines (the temp file is kept open).
    fn regexp(rules: &[(&str, &str)]) -> Vec<Box<dyn Map>> {
        if rules.is_empty() {
            return Vec::new();
        }
        let mut text = String::new();
        for (p, a) in rules {
            let _ = writeln!(text, "/{p}/ {a}");
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        let spec = format!("regexp:{}", file.path().display());
        let map = tern_maps::open(&spec, &tern_maps::OpenFlags::default()).unwrap();
        drop(file);
        vec![map]
    }

    fn checks(header: &[(&str, &str)], body: &[(&str, &str)]) -> MessageChecks {
        let open = regexp;
        let c = ContentChecks {
            header: open(header),
            body: open(body),
            body_limit: 51_200,
        };
        MessageChecks::new(
            Arc::new(c),
            LogContext {
                queue_id: "QID".into(),
                origin: "localhost[127.0.0.1]".into(),
                sender: Some("a@example.org".into()),
                recipient: Some("b@example.com".into()),
                protocol: Some("ESMTP".into()),
                helo: Some("client.example".into()),
            },
        )
    }

    #[test]
    fn actions() {
        let mut m = checks(
            &[
                ("^Subject: a$", "REJECT go away"),
                ("^Subject: b$", "PREPEND X-Seen: yes"),
                ("^Subject: c$", "IGNORE"),
                ("^Subject: d$", "REPLACE X-Subject: d"),
                ("^Subject: e$", "HOLD"),
                ("^Subject: f$", "BOGUS"),
            ],
            &[],
        );
        assert_eq!(m.header("Subject: b"), Act::Prepend("X-Seen: yes".into()));
        assert_eq!(m.header("Subject: c"), Act::Drop);
        assert_eq!(m.header("Subject: d"), Act::Replace("X-Subject: d".into()));
        assert_eq!(m.header("Subject: e"), Act::Keep);
        assert!(m.decided.hold);
        assert_eq!(m.header("Subject: f"), Act::Keep);
        assert_eq!(m.header("Subject: a"), Act::Keep);
        assert_eq!(m.decided.reject.as_deref(), Some("5.7.1 go away"));
        // After REJECT nothing is looked at.
        assert_eq!(m.header("Subject: c"), Act::Keep);
        let logs = m.take_logs();
        assert_eq!(
            logs.last().unwrap(),
            "QID: reject: header Subject: a from localhost[127.0.0.1]; from=<a@example.org> \
             to=<b@example.com> proto=ESMTP helo=<client.example>: 5.7.1 go away"
        );
        assert!(logs.contains(&"warning: unknown command in header_checks map: BOGUS".to_owned()));
    }

    #[test]
    fn reject_codes_and_body_limit() {
        let mut m = checks(
            &[],
            &[("^spam$", "REJECT 4.7.0 later"), ("^bad$", "REJECT")],
        );
        assert_eq!(m.body(b"spam"), Act::Keep);
        assert_eq!(m.decided.reject.as_deref(), Some("4.7.0 later"));
        let mut m = checks(&[], &[("^bad$", "REJECT")]);
        assert_eq!(m.body(b"bad"), Act::Keep);
        assert_eq!(
            m.decided.reject.as_deref(),
            Some("5.7.1 message content rejected")
        );
        let mut m = checks(&[], &[("^bad$", "DISCARD")]);
        m.checks = Arc::new(ContentChecks {
            header: Vec::new(),
            body: std::mem::take(&mut Arc::get_mut(&mut m.checks).unwrap().body),
            body_limit: 10,
        });
        assert_eq!(m.body(b"0123456789"), Act::Keep);
        assert_eq!(m.body(b"bad"), Act::Keep);
        assert!(!m.decided.discard, "past body_checks_size_limit");
    }
}
