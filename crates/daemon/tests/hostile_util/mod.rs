//! The hostile-input dialog format (crates/daemon/tests/hostile/dialogs.txt, whose head
//! documents it for the people who write dialogs) and its parser. A dialog is coarser than
//! an SMTP transcript (crates/smtp/src/transcript.rs): each step expects a reply *class*
//! (`2xx`, `250`, `421 4.4.2`, "connection closed", "no reply"), and the dialog ends with
//! its *outcome*: how many messages the server queued and what they hold. One replayer
//! ([`client`]) drives the same dialog against Debian's Postfix and against Tern.
//!
//! Differences on purpose: an expectation tagged `[postfix]` or `[tern]` applies to that
//! server only, and a dialog may carry tagged expectations only with a `differs:` line
//! saying why (the parser refuses them otherwise), so that the test accepts a documented
//! difference for that dialog alone.
//!
//! Test-only. The data file is ours; errors name its line and never panic.

#![allow(dead_code)]

pub mod client;

use std::collections::BTreeMap;

/// Which server an expectation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Who {
    Both,
    Postfix,
    Tern,
}

impl Who {
    /// Whether an expectation tagged `self` applies to `server` (never `Both`).
    pub fn applies(self, server: Who) -> bool {
        self == Who::Both || self == server
    }
}

/// One step of a dialog, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Bytes written in one write (`C:` adds CRLF; `C~` raw; `R:` repeated).
    Send(Vec<u8>),
    /// Bytes written one at a time, `ms` apart (`D:`): a slow client.
    Dribble { ms: u64, bytes: Vec<u8> },
    /// A pause (`P:`), in milliseconds.
    Pause(u64),
    /// The TLS handshake (`T:`), after the server's 220 to STARTTLS.
    Tls,
    /// One expected reply, or the end of the connection (`S:`).
    Expect { who: Who, want: Expect },
}

/// What a `S:` line expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// One reply whose last line starts with one of the patterns (`x` is any digit);
    /// `closed` among them also accepts the end of the connection.
    Reply {
        patterns: Vec<String>,
        or_closed: bool,
    },
    /// No reply within the silence window.
    Nothing,
    /// The end of the connection (EOF or reset) with no reply before it.
    Closed,
}

/// An outcome line (`=`), checked once every dialog has run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// How many messages the dialog left in the queue (all queues).
    Queued(usize),
    /// Any number (a MIME bomb may be taken or refused; the server must live).
    QueuedAny,
    /// Every queued message contains these bytes (header or body).
    Has(Vec<u8>),
    /// No queued message contains these bytes.
    Lacks(Vec<u8>),
    /// Every queued message has this many header fields (the server's Received: included).
    Headers(usize),
}

/// One dialog of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub name: String,
    pub category: String,
    /// The line of its `==` header (1-based).
    pub line: usize,
    /// main.cf settings for both servers (`! name = value`).
    pub settings: Vec<(String, String)>,
    pub steps: Vec<Step>,
    pub outcomes: Vec<(Who, Outcome)>,
    /// Why Postfix 3.7 and Tern differ here (the `differs:` line), if they do.
    pub differs: Option<String>,
}

impl Dialog {
    /// The outcomes that apply to `server`; `queued 0` when none gives a count.
    pub fn outcomes_for(&self, server: Who) -> Vec<Outcome> {
        let mut out: Vec<Outcome> = self
            .outcomes
            .iter()
            .filter(|(w, _)| w.applies(server))
            .map(|(_, o)| o.clone())
            .collect();
        if !out
            .iter()
            .any(|o| matches!(o, Outcome::Queued(_) | Outcome::QueuedAny))
        {
            out.push(Outcome::Queued(0));
        }
        out
    }

    /// Whether the dialog uses TLS (the servers need a certificate).
    pub fn uses_tls(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Tls))
    }
}

/// A syntax error in the data file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dialogs line {line}: {reason}")]
pub struct FormatError {
    pub line: usize,
    pub reason: String,
}

/// Parses the whole file.
pub fn parse(text: &str) -> Result<Vec<Dialog>, FormatError> {
    let mut dialogs: Vec<Dialog> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let bad = |reason: &str| FormatError {
            line,
            reason: reason.to_owned(),
        };
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        if let Some(rest) = raw.strip_prefix("== ") {
            let mut words = rest.split_whitespace();
            let name = words.next().ok_or_else(|| bad("a dialog needs a name"))?;
            let category = words
                .next()
                .ok_or_else(|| bad("a dialog needs a category"))?;
            if dialogs.iter().any(|d| d.name == name) {
                return Err(bad("dialog name used twice"));
            }
            dialogs.push(Dialog {
                name: name.to_owned(),
                category: category.to_owned(),
                line,
                settings: Vec::new(),
                steps: Vec::new(),
                outcomes: Vec::new(),
                differs: None,
            });
            continue;
        }
        let d = dialogs
            .last_mut()
            .ok_or_else(|| bad("a line before the first `==` dialog header"))?;
        parse_line(d, raw).map_err(|r| bad(&r))?;
    }
    for d in &dialogs {
        let tagged = d
            .steps
            .iter()
            .any(|s| matches!(s, Step::Expect { who, .. } if *who != Who::Both))
            || d.outcomes.iter().any(|(w, _)| *w != Who::Both);
        if tagged && d.differs.is_none() {
            return Err(FormatError {
                line: d.line,
                reason: format!("{}: [postfix]/[tern] lines need a `differs:` line", d.name),
            });
        }
    }
    Ok(dialogs)
}

fn parse_line(d: &mut Dialog, raw: &str) -> Result<(), String> {
    if let Some(rest) = raw.strip_prefix("! ") {
        let (n, v) = rest.split_once('=').ok_or("`! name = value` expected")?;
        d.settings.push((n.trim().to_owned(), v.trim().to_owned()));
        return Ok(());
    }
    if let Some(rest) = raw.strip_prefix("differs: ") {
        d.differs = Some(rest.trim().to_owned());
        return Ok(());
    }
    if let Some(rest) = raw.strip_prefix("C: ") {
        let mut b = unescape(rest)?;
        b.extend_from_slice(b"\r\n");
        d.steps.push(Step::Send(b));
        return Ok(());
    }
    if let Some(rest) = raw.strip_prefix("C~ ") {
        d.steps.push(Step::Send(unescape(rest)?));
        return Ok(());
    }
    if let Some(rest) = raw.strip_prefix("R: ") {
        let (n, text) = rest.split_once(' ').ok_or("`R: COUNT TEXT` expected")?;
        let n: usize = n.parse().map_err(|_| "bad repeat count")?;
        if n > 10_000_000 {
            return Err("repeat count too large".into());
        }
        d.steps.push(Step::Send(unescape(text)?.repeat(n)));
        return Ok(());
    }
    if let Some(rest) = raw.strip_prefix("D: ") {
        let (ms, text) = rest.split_once(' ').ok_or("`D: MS TEXT` expected")?;
        let ms = ms.parse().map_err(|_| "bad dribble interval")?;
        d.steps.push(Step::Dribble {
            ms,
            bytes: unescape(text)?,
        });
        return Ok(());
    }
    if let Some(rest) = raw.strip_prefix("P: ") {
        let ms = rest.trim().parse().map_err(|_| "bad pause")?;
        d.steps.push(Step::Pause(ms));
        return Ok(());
    }
    if raw.trim() == "T: starttls" {
        d.steps.push(Step::Tls);
        return Ok(());
    }
    if let Some(rest) = raw.strip_prefix("S+ ") {
        let (n, spec) = rest.split_once(' ').ok_or("`S+ COUNT SPEC` expected")?;
        let n: usize = n.parse().map_err(|_| "bad reply count")?;
        let want = parse_expect(spec.trim())?;
        for _ in 0..n.min(100_000) {
            d.steps.push(Step::Expect {
                who: Who::Both,
                want: want.clone(),
            });
        }
        return Ok(());
    }
    if let Some((who, rest)) = tagged(raw, 'S') {
        d.steps.push(Step::Expect {
            who,
            want: parse_expect(rest.trim())?,
        });
        return Ok(());
    }
    if let Some((who, rest)) = tagged(raw, '=') {
        d.outcomes.push((who, parse_outcome(rest.trim())?));
        return Ok(());
    }
    Err(format!("unknown line {raw:?}"))
}

/// `S: rest`, `S[tern]: rest`, `= rest`, `=[postfix] rest`.
fn tagged(raw: &str, lead: char) -> Option<(Who, &str)> {
    let rest = raw.strip_prefix(lead)?;
    let sep = if lead == 'S' { ":" } else { "" };
    for (tag, who) in [
        ("[postfix]", Who::Postfix),
        ("[tern]", Who::Tern),
        ("", Who::Both),
    ] {
        if let Some(r) = rest.strip_prefix(tag).and_then(|r| r.strip_prefix(sep))
            && let Some(r) = r.strip_prefix(' ')
        {
            return Some((who, r));
        }
    }
    None
}

fn parse_expect(spec: &str) -> Result<Expect, String> {
    match spec {
        "none" => return Ok(Expect::Nothing),
        "closed" => return Ok(Expect::Closed),
        _ => {}
    }
    let mut patterns = Vec::new();
    let mut or_closed = false;
    for p in spec.split('|').map(str::trim) {
        if p == "closed" {
            or_closed = true;
        } else if p.len() >= 3 && p.bytes().take(3).all(|b| b.is_ascii_digit() || b == b'x') {
            patterns.push(p.to_owned());
        } else {
            return Err(format!("bad reply pattern {p:?}"));
        }
    }
    if patterns.is_empty() {
        return Err("a reply pattern is needed".into());
    }
    Ok(Expect::Reply {
        patterns,
        or_closed,
    })
}

fn parse_outcome(spec: &str) -> Result<Outcome, String> {
    let (verb, arg) = spec.split_once(' ').ok_or("`= VERB ARG` expected")?;
    let num = |a: &str| {
        a.trim()
            .parse::<usize>()
            .map_err(|_| format!("bad number {a:?}"))
    };
    Ok(match verb {
        "queued" if arg.trim() == "any" => Outcome::QueuedAny,
        "queued" => Outcome::Queued(num(arg)?),
        "headers" => Outcome::Headers(num(arg)?),
        "has" => Outcome::Has(unescape(arg)?),
        "lacks" => Outcome::Lacks(unescape(arg)?),
        _ => return Err(format!("unknown outcome {verb:?}")),
    })
}

/// Whether reply line `line` matches `pattern` (`x` matches any digit; the rest of the
/// pattern is a prefix of the line).
pub fn reply_matches(pattern: &str, line: &str) -> bool {
    let (p, l) = (pattern.as_bytes(), line.as_bytes());
    p.len() <= l.len()
        && p.iter()
            .zip(l)
            .all(|(p, l)| p == l || (*p == b'x' && l.is_ascii_digit()))
}

/// The escapes of transcripts (`\r \n \t \0 \\ \xHH`).
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = *b.get(i + 1).ok_or("a `\\` at the end")?;
        i += 2;
        match c {
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'0' => out.push(0),
            b'\\' => out.push(b'\\'),
            b'x' => {
                let hex = text.get(i..i + 2).ok_or("short \\x escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad \\x escape")?);
                i += 2;
            }
            _ => return Err(format!("unknown escape \\{}", c as char)),
        }
    }
    Ok(out)
}

/// The dialogs grouped by their settings (each group runs on one instance per server).
pub fn by_settings(dialogs: &[Dialog]) -> BTreeMap<Vec<(String, String)>, Vec<usize>> {
    let mut groups: BTreeMap<Vec<(String, String)>, Vec<usize>> = BTreeMap::new();
    for (i, d) in dialogs.iter().enumerate() {
        let mut key = d.settings.clone();
        key.sort();
        groups.entry(key).or_default().push(i);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_dialog() {
        let text = "# c\n== a cat\n! smtpd_timeout = 3s\nS: 220\nC: EHLO x\nS: 2xx|closed\n\
                    C~ a\\r\\n\nR: 2 ab\nD: 10 xy\nP: 5\nT: starttls\nS: none\nS: closed\n\
                    = queued 1\n= has evil\n";
        let d = parse(text).expect("parses");
        assert_eq!(d.len(), 1);
        let d = &d[0];
        assert_eq!(d.settings, vec![("smtpd_timeout".into(), "3s".into())]);
        assert_eq!(d.steps.len(), 10);
        assert_eq!(d.steps[3], Step::Send(b"a\r\n".to_vec()));
        assert_eq!(d.steps[4], Step::Send(b"abab".to_vec()));
        assert_eq!(
            d.steps[2],
            Step::Expect {
                who: Who::Both,
                want: Expect::Reply {
                    patterns: vec!["2xx".into()],
                    or_closed: true
                }
            }
        );
        assert_eq!(d.outcomes_for(Who::Tern)[0], Outcome::Queued(1));
    }

    #[test]
    fn refuses_undocumented_differences_and_bad_lines() {
        for (text, bad_line) in [
            ("== a c\nS[tern]: 250\n", 1),
            ("S: 220\n", 1),
            ("== a c\nS: hello\n", 2),
            ("== a c\n= queued x\n", 2),
            ("== a c\n== a d\n", 2),
            ("== a c\nC~ \\q\n", 2),
        ] {
            assert_eq!(parse(text).map_err(|e| e.line), Err(bad_line), "{text}");
        }
        let ok = parse("== a c\ndiffers: why\nS[tern]: 250\n=[postfix] queued 1\n").expect("ok");
        assert_eq!(ok[0].outcomes_for(Who::Tern), vec![Outcome::Queued(0)]);
        assert_eq!(ok[0].outcomes_for(Who::Postfix), vec![Outcome::Queued(1)]);
    }

    #[test]
    fn patterns() {
        for (p, l, want) in [
            ("2xx", "250 2.0.0 Ok", true),
            ("250", "250 2.0.0 Ok", true),
            ("421 4.4.2", "421 4.4.2 mx Error: timeout exceeded", true),
            ("5xx", "452 4.5.3 Error", false),
            ("250", "25", false),
        ] {
            assert_eq!(reply_matches(p, l), want, "{p} {l}");
        }
    }
}
