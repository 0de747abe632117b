//! header_checks and body_checks (header_checks(5); cleanup_message.c cleanup_act()):
//! each header (a folded header as one text, its lines joined by newlines) is looked up
//! in header_checks (primary headers), mime_header_checks (MIME headers anywhere, and the
//! headers of multipart parts) or nested_header_checks (the headers of an attached
//! message/rfc822), following the MIME boundaries as mime_state.c does; each body line
//! (boundaries included) in body_checks, within the first body_checks_size_limit bytes of
//! each part; and the table's answer acts on the message:
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
//! Not done: the `DELAY` action (disabled in Postfix too), MIME encoding checks
//! (strict_*_encoding).
//!
//! Trust: the text looked up is the sender's; the tables and their answers are the
//! administrator's. Lines longer than 200 bytes are cut in the log.

use std::fmt::Write as _;
use std::sync::Arc;

use tern_config::config::Config;
use tern_config::mastercf::Service;
use tern_maps::Map;

use crate::relay::PolicyError;

/// The most bytes of one part header held while it is read (header_size_limit's
/// default): a longer one ends the header block, the rest is body.
const HEADER_LIMIT: usize = 102_400;

/// The longest boundary followed (mime_boundary_length_limit's default).
const BOUNDARY_LIMIT: usize = 2048;

/// The checks of one configuration, opened once per settings load.
#[derive(Debug, Default)]
pub struct ContentChecks {
    header: Vec<Box<dyn Map>>,
    /// mime_header_checks (default `$header_checks`): MIME headers anywhere, and every
    /// header of a multipart part.
    mime: Vec<Box<dyn Map>>,
    /// nested_header_checks (default `$header_checks`): the headers of an attached
    /// message (message/rfc822).
    nested: Vec<Box<dyn Map>>,
    body: Vec<Box<dyn Map>>,
    /// body_checks_size_limit, per body part.
    body_limit: usize,
    /// MIME structure is followed (disable_mime_input_processing = no).
    mime_input: bool,
    /// mime_nesting_limit: deeper boundaries are not followed.
    nesting_limit: usize,
}

impl ContentChecks {
    /// Opens header_checks, mime_header_checks, nested_header_checks and body_checks in
    /// `service`'s name space; `None` when all are empty.
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
        let mime = open("mime_header_checks")?;
        let nested = open("nested_header_checks")?;
        let body = open("body_checks")?;
        if header.is_empty() && mime.is_empty() && nested.is_empty() && body.is_empty() {
            return Ok(None);
        }
        let number = |name: &str| -> Result<usize, PolicyError> {
            let v = get(name)?;
            v.trim().parse().map_err(|_| PolicyError::BadValue {
                name: name.to_owned(),
                value: v.clone(),
            })
        };
        let disable = get("disable_mime_input_processing")?;
        Ok(Some(Arc::new(ContentChecks {
            header,
            mime,
            nested,
            body,
            body_limit: number("body_checks_size_limit")?,
            mime_input: !matches!(disable.trim().to_ascii_lowercase().as_str(), "yes" | "true"),
            nesting_limit: number("mime_nesting_limit")?,
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

/// Which header a header check looks at (mime_state.c's header classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderClass {
    Primary,
    Multipart,
    Nested,
}

/// Where the MIME reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// In a body (or the primary headers, before the first body record).
    Body,
    /// In the headers of a part or of an attached message.
    Headers(HeaderClass),
}

/// What a header block said about the body that follows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PartType {
    /// multipart/...: its boundary.
    boundary: Option<String>,
    /// message/rfc822 (or message/global): the body starts with headers.
    message: bool,
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
    /// Body bytes looked at in the current part.
    body_seen: usize,
    /// The first body record has come (the primary headers are over).
    in_body: bool,
    place: Place,
    /// The boundaries of the open multiparts, innermost last.
    boundaries: Vec<String>,
    /// The header block being read: its type so far.
    part: PartType,
    /// The header being read (its lines so far) in a part or attached message.
    pending: Vec<Vec<u8>>,
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
            in_body: false,
            place: Place::Body,
            boundaries: Vec::new(),
            part: PartType::default(),
            pending: Vec::new(),
        }
    }

    /// The log lines since the last call.
    pub fn take_logs(&mut self) -> Vec<String> {
        std::mem::take(&mut self.logs)
    }

    /// One primary header (its lines joined with `\n`).
    pub fn header(&mut self, text: &str) -> Act {
        self.note_type(text);
        self.header_of(HeaderClass::Primary, text)
    }

    /// A header of `class` through its table (a MIME header through mime_header_checks).
    fn header_of(&mut self, class: HeaderClass, text: &str) -> Act {
        if !self.active {
            return Act::Keep;
        }
        let checks = Arc::clone(&self.checks);
        let (maps, title) = if is_mime_header(text) {
            (&checks.mime, "mime_header_checks")
        } else {
            match class {
                HeaderClass::Primary => (&checks.header, "header_checks"),
                HeaderClass::Multipart => (&checks.mime, "mime_header_checks"),
                HeaderClass::Nested => (&checks.nested, "nested_header_checks"),
            }
        };
        if maps.is_empty() {
            return Act::Keep;
        }
        match find(maps, text) {
            Ok(Some(value)) => self.act("header", text, &value, title),
            Ok(None) => Act::Keep,
            Err(()) => {
                self.lookup_problem(title);
                Act::Keep
            }
        }
    }

    /// Remembers what a Content-Type header says about the body after its block.
    fn note_type(&mut self, text: &str) {
        if !self.checks.mime_input {
            return;
        }
        let Some((name, value)) = text.split_once(':') else {
            return;
        };
        if !name.trim().eq_ignore_ascii_case("content-type") {
            return;
        }
        let value = value.trim_start();
        let kind = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if kind.starts_with("multipart/") {
            self.part.boundary = boundary_of(value);
        } else if kind == "message/rfc822" || kind == "message/global" {
            self.part.message = true;
        }
    }

    /// The end of a header block: what follows is a body, or (message/rfc822) the
    /// attached message's headers; a multipart's boundary opens.
    fn end_of_block(&mut self) {
        let part = std::mem::take(&mut self.part);
        self.body_seen = 0;
        self.place = Place::Body;
        if let Some(b) = part.boundary {
            if self.boundaries.len() < self.checks.nesting_limit {
                self.boundaries.push(b);
            }
        } else if part.message {
            self.place = Place::Headers(HeaderClass::Nested);
        }
    }

    /// The header being read in a part, checked; its lines (as they go out).
    fn flush_pending(&mut self, class: HeaderClass) -> Vec<(Vec<u8>, bool)> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let lines = std::mem::take(&mut self.pending);
        let text = String::from_utf8_lossy(&lines.join(&b'\n')).into_owned();
        self.note_type(&text);
        let whole = |lines: Vec<Vec<u8>>| lines.into_iter().map(|l| (l, true)).collect();
        match self.header_of(class, &text) {
            Act::Keep => whole(lines),
            Act::Drop => Vec::new(),
            Act::Replace(t) => vec![(t.into_bytes(), true)],
            Act::Prepend(t) => {
                let mut out = vec![(t.into_bytes(), true)];
                out.extend(whole(lines));
                out
            }
        }
    }

    /// One body record (`complete`: it ends its line); returns the records to write in
    /// its place, or `None` when the record goes out as it came (the common case: no
    /// copy).
    pub fn body_record(&mut self, text: &[u8], complete: bool) -> Option<Vec<(Vec<u8>, bool)>> {
        if !self.in_body {
            // The primary headers are over: their Content-Type decides what follows.
            self.in_body = true;
            self.end_of_block();
        }
        if let Place::Headers(class) = self.place {
            if !complete {
                // A header line longer than a record: not a header any more.
                let mut out = self.flush_pending(class);
                self.end_of_block();
                out.push((text.to_vec(), false));
                return Some(out);
            }
            if text.is_empty() {
                let mut out = self.flush_pending(class);
                out.push((Vec::new(), true));
                self.end_of_block();
                return Some(out);
            }
            if text.starts_with(b" ") || text.starts_with(b"\t") {
                let held: usize = self.pending.iter().map(Vec::len).sum();
                if !self.pending.is_empty() && held + text.len() <= HEADER_LIMIT {
                    self.pending.push(text.to_vec());
                    return Some(Vec::new());
                }
            } else if is_header(&String::from_utf8_lossy(text)) {
                let out = self.flush_pending(class);
                self.pending.push(text.to_vec());
                return Some(out);
            }
            // Not a header: the block is over and this is the body.
            let mut out = self.flush_pending(class);
            self.end_of_block();
            out.extend(
                self.body_line(text, complete)
                    .unwrap_or_else(|| vec![(text.to_vec(), complete)]),
            );
            return Some(out);
        }
        if complete
            && self.checks.mime_input
            && let Some(closing) = self.boundary_line(text)
        {
            // A boundary: body_checks see it too; then a part's headers, or (the
            // closing one) the enclosing body.
            let out = self.body_line(text, complete);
            self.body_seen = 0;
            if !closing {
                self.place = Place::Headers(HeaderClass::Multipart);
                self.part = PartType::default();
            }
            return out;
        }
        self.body_line(text, complete)
    }

    /// `Some(closing)` when `line` is a boundary of an open multipart (the inner ones it
    /// skips are closed).
    fn boundary_line(&mut self, line: &[u8]) -> Option<bool> {
        let rest = line.strip_prefix(b"--")?;
        let at = self
            .boundaries
            .iter()
            .rposition(|b| rest.starts_with(b.as_bytes()))?;
        let after = &rest[self.boundaries[at].len()..];
        let closing = after.starts_with(b"--");
        self.boundaries.truncate(if closing { at } else { at + 1 });
        Some(closing)
    }

    /// One body line through body_checks; `None`: it goes out as it came.
    fn body_line(&mut self, text: &[u8], complete: bool) -> Option<Vec<(Vec<u8>, bool)>> {
        match self.body(text) {
            Act::Keep => None,
            Act::Drop => Some(Vec::new()),
            Act::Replace(t) => Some(vec![(t.into_bytes(), complete)]),
            Act::Prepend(t) => Some(vec![(t.into_bytes(), true), (text.to_vec(), complete)]),
        }
    }

    /// One body line (record), without its newline.
    pub fn body(&mut self, line: &[u8]) -> Act {
        if !self.active || self.checks.body.is_empty() {
            return Act::Keep;
        }
        // body_checks_size_limit: only the first so many bytes of a part are looked at.
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

    /// The end of the content: a part header still being read goes out.
    pub fn finish(&mut self) -> Vec<(Vec<u8>, bool)> {
        match self.place {
            Place::Headers(class) => self.flush_pending(class),
            Place::Body => Vec::new(),
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
            if self.text_action("PREPEND", context, content, text, class) {
                return Act::Prepend(text.to_owned());
            }
        } else if is("REPLACE") {
            if self.text_action("REPLACE", context, content, text, class) {
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

    /// PREPEND and REPLACE: whether `text` may be used (not empty; a header in header
    /// context), logged; otherwise Postfix's warning.
    fn text_action(
        &mut self,
        action: &str,
        context: &str,
        content: &str,
        text: &str,
        class: &str,
    ) -> bool {
        if text.is_empty() {
            self.warn(&format!("{action} action without text in {class} map"));
            false
        } else if context == "header" && !is_header(text) {
            self.warn(&format!(
                "bad {action} header text \"{text}\" in {class} map -- need \"headername: headervalue\""
            ));
            false
        } else {
            self.log(&action.to_ascii_lowercase(), context, content, text);
            true
        }
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
        // A folded header's newline and tab show as `??` in the log, as in Postfix's:
        // tern_maillog's Line does that for every logged text.
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

/// A header that Postfix marks HDR_OPT_MIME (header_opts.c).
fn is_mime_header(text: &str) -> bool {
    let name = text.split(':').next().unwrap_or("").trim_end();
    [
        "content-description",
        "content-disposition",
        "content-id",
        "content-transfer-encoding",
        "content-type",
        "mime-version",
    ]
    .iter()
    .any(|m| name.eq_ignore_ascii_case(m))
}

/// The `boundary=` parameter of a Content-Type value (quoted or not).
fn boundary_of(value: &str) -> Option<String> {
    let lower = value.to_ascii_lowercase();
    let mut from = 0;
    while let Some(at) = lower[from..].find("boundary") {
        let start = from + at;
        from = start + 8;
        let before = lower[..start].trim_end();
        if !(before.ends_with(';') || before.is_empty()) {
            continue;
        }
        let rest = value[from..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        let b = match rest.strip_prefix('"') {
            Some(q) => q.split('"').next().unwrap_or(""),
            None => rest
                .split(|c: char| c == ';' || c.is_whitespace())
                .next()
                .unwrap_or(""),
        };
        return (!b.is_empty() && b.len() <= BOUNDARY_LIMIT).then(|| b.to_owned());
    }
    None
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
            mime: open(header),
            nested: open(header),
            body: open(body),
            body_limit: 51_200,
            mime_input: true,
            nesting_limit: 100,
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

    pub(super) fn checks_for_mime(header: &[(&str, &str)], body: &[(&str, &str)]) -> MessageChecks {
        checks(header, body)
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
            body: std::mem::take(&mut Arc::get_mut(&mut m.checks).unwrap().body),
            body_limit: 10,
            ..ContentChecks::default()
        });
        assert_eq!(m.body(b"0123456789"), Act::Keep);
        assert_eq!(m.body(b"bad"), Act::Keep);
        assert!(!m.decided.discard, "past body_checks_size_limit");
    }
}

#[cfg(test)]
mod mime_tests {
    use super::tests::checks_for_mime as checks;
    use super::*;

    fn feed(m: &mut MessageChecks, body: &str) -> String {
        let mut out = String::new();
        for line in body.split('\n') {
            let pieces = m
                .body_record(line.as_bytes(), true)
                .unwrap_or_else(|| vec![(line.as_bytes().to_vec(), true)]);
            for (piece, complete) in pieces {
                out.push_str(&String::from_utf8_lossy(&piece));
                if complete {
                    out.push('\n');
                }
            }
        }
        for (piece, _) in m.finish() {
            out.push_str(&String::from_utf8_lossy(&piece));
            out.push('\n');
        }
        out
    }

    #[test]
    fn part_headers_and_nested_headers() {
        let mut m = checks(
            &[
                (r#"^Content-Type:.*name="?[^"]*\.exe"?"#, "REJECT no exe"),
                ("^X-Part-Drop:", "IGNORE"),
                ("^X-Nested: note", "WARN nested"),
            ],
            &[("^BODY$", "REPLACE body!")],
        );
        assert_eq!(
            m.header("Content-Type: multipart/mixed; boundary=\"XX\""),
            Act::Keep
        );
        let out = feed(
            &mut m,
            "pre\n--XX\nContent-Type: text/plain\nX-Part-Drop: yes\n\nBODY\n--XX\n\
             Content-Type: message/rfc822\n\nSubject: in\nX-Nested: note\n\nin body\n--XX--\nend",
        );
        assert_eq!(
            out,
            "pre\n--XX\nContent-Type: text/plain\n\nbody!\n--XX\nContent-Type: message/rfc822\n\n\
             Subject: in\nX-Nested: note\n\nin body\n--XX--\nend\n"
        );
        assert!(
            m.take_logs()
                .iter()
                .any(|l| l.contains("warning: header X-Nested: note"))
        );
        assert!(m.decided.reject.is_none());
        let mut m = checks(
            &[(
                r#"^Content-(Type|Disposition):.*name="?[^"]*\.exe"?"#,
                "REJECT no exe",
            )],
            &[],
        );
        m.header("Content-Type: multipart/mixed; boundary=\"XX\"");
        let out = feed(
            &mut m,
            "pre\n--XX\nContent-Type: text/plain\n\nhello\n--XX\n\
             Content-Type: application/octet-stream;\n\tname=\"evil.exe\"\n\nAAAA\n--XX--",
        );
        assert!(out.contains("AAAA"));
        assert_eq!(m.decided.reject.as_deref(), Some("5.7.1 no exe"));
    }
}

#[cfg(test)]
mod walk_tests {
    use super::tests::checks_for_mime as checks;

    /// xorshift: a fixed sequence, so a failure replays.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// With tables that match nothing, the MIME walk gives back every record as it came,
    /// whatever the structure (boundaries, part headers, continuations, nesting).
    #[test]
    fn unmatched_content_comes_back_unchanged() {
        let pieces: &[&str] = &[
            "--A",
            "--A--",
            "--B",
            "--B--",
            "Content-Type: multipart/mixed; boundary=B",
            "Content-Type: message/rfc822",
            "Content-Type: multipart/alternative; boundary=\"A\"",
            "X-H: v",
            "\tcontinued",
            " more",
            "",
            "body text",
            "no colon here",
            ":",
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        for round in 0..500 {
            let mut m = checks(&[("^NEVER-MATCHES$", "REJECT")], &[("^NEVER$", "REJECT")]);
            m.header("Content-Type: multipart/mixed; boundary=A");
            let lines: Vec<&str> = (0..(next(&mut seed) % 60))
                .map(|_| {
                    let n = usize::try_from(next(&mut seed) % 1024).unwrap_or(0);
                    pieces[n % pieces.len()]
                })
                .collect();
            let mut out = Vec::new();
            for line in &lines {
                let pieces = m
                    .body_record(line.as_bytes(), true)
                    .unwrap_or_else(|| vec![(line.as_bytes().to_vec(), true)]);
                for (piece, complete) in pieces {
                    assert!(complete, "round {round}");
                    out.push(String::from_utf8(piece).unwrap());
                }
            }
            for (piece, _) in m.finish() {
                out.push(String::from_utf8(piece).unwrap());
            }
            assert_eq!(out, lines, "round {round}");
            assert!(m.decided.reject.is_none());
        }
    }
}
