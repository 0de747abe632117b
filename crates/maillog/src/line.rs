//! One log record before its prefix: a severity and the text after `program[pid]: `.
//!
//! Postfix's msg(3) levels are info, warning, error, fatal and panic; all but info put
//! `LEVEL: ` before the text (msg_logger.c, msg_syslog.c), and syslog gets a priority per
//! level. The builders in the other modules return a [`Line`]; the writers add the prefix.

use std::fmt;
use std::fmt::Write as _;

/// Postfix's message levels, in its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// Plain information: no label in the text.
    Info,
    /// `warning: ` — something is wrong, the program goes on.
    Warning,
    /// `error: ` — an error that Postfix counts; the program goes on.
    Error,
    /// `fatal: ` — the program ends.
    Fatal,
    /// `panic: ` — a broken invariant; the program ends.
    Panic,
}

impl Severity {
    /// The label Postfix writes before the text, or `None` for info.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Self::Info => None,
            Self::Warning => Some("warning"),
            Self::Error => Some("error"),
            Self::Fatal => Some("fatal"),
            Self::Panic => Some("panic"),
        }
    }

    /// The syslog(3) priority Postfix uses (msg_syslog.c): info 6, warning 4, error 3,
    /// fatal and panic 2 (LOG_CRIT).
    pub fn syslog_priority(self) -> u8 {
        match self {
            Self::Info => 6,
            Self::Warning => 4,
            Self::Error => 3,
            Self::Fatal | Self::Panic => 2,
        }
    }
}

/// Postfix logs at most this many bytes of a message's text (MSG_LOGGER_RECLEN and
/// MSG_SYSLOG_RECLEN in Postfix 3.7); the rest is dropped.
pub const MAX_TEXT: usize = 2000;

/// One log record: a severity and its text, without the `LEVEL: ` label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    severity: Severity,
    text: String,
}

impl Line {
    /// An info record. Crate-private: outside callers use the typed builders.
    pub(crate) fn info(text: String) -> Self {
        Self {
            severity: Severity::Info,
            text,
        }
    }

    /// An info record whose text a user chose: what `postlog` logs for a script.
    pub fn from_user(text: impl Into<String>) -> Self {
        Self::info(text.into())
    }

    /// A `warning: TEXT` record. Warnings are free text in Postfix too; prefer a typed
    /// builder where one exists (such as [`crate::smtpd::sasl_authentication_failed`]).
    pub fn warning(text: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            text: text.into(),
        }
    }

    /// An `error: TEXT` record.
    pub fn error(text: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            text: text.into(),
        }
    }

    /// A `fatal: TEXT` record; the caller then ends the process.
    pub fn fatal(text: impl Into<String>) -> Self {
        Self {
            severity: Severity::Fatal,
            text: text.into(),
        }
    }

    /// A `panic: TEXT` record.
    pub fn panic(text: impl Into<String>) -> Self {
        Self {
            severity: Severity::Panic,
            text: text.into(),
        }
    }

    /// The record's severity.
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// The text without the `LEVEL: ` label.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The text as it follows `program[pid]: `: the label (if any), then at most [`MAX_TEXT`]
/// bytes of text, cut at a character boundary.
impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(label) = self.severity.label() {
            write!(f, "{label}: ")?;
        }
        // msg_output.c: every logged text goes through printable(): an ASCII control
        // character (a folded header's newline, a tab) shows as `?`, so no text can start
        // a log line of its own.
        let text = truncate(&self.text, MAX_TEXT);
        if !text.bytes().any(|b| b.is_ascii_control()) {
            return f.write_str(text);
        }
        for c in text.chars() {
            f.write_char(if c.is_ascii_control() { '?' } else { c })?;
        }
        Ok(())
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_show_as_question_marks() {
        let l = Line::warning("header Subject: a\n\tinjected: line\r\u{7f}");
        assert_eq!(
            l.to_string(),
            "warning: header Subject: a??injected: line??"
        );
        assert_eq!(Line::from_user("caf\u{e9}").to_string(), "caf\u{e9}");
    }

    #[test]
    fn labels_and_priorities() {
        let cases = [
            (Line::info("a".into()), "a", 6),
            (Line::warning("b"), "warning: b", 4),
            (Line::error("c"), "error: c", 3),
            (Line::fatal("d"), "fatal: d", 2),
            (Line::panic("e"), "panic: e", 2),
        ];
        for (line, text, pri) in cases {
            assert_eq!(line.to_string(), text);
            assert_eq!(line.severity().syslog_priority(), pri);
        }
    }

    #[test]
    fn long_text_is_cut_at_a_char_boundary() {
        let text = "é".repeat(MAX_TEXT);
        let shown = Line::info(text).to_string();
        assert!(shown.len() <= MAX_TEXT);
        assert_eq!(shown.len(), MAX_TEXT);
        let odd = format!("x{}", "é".repeat(MAX_TEXT));
        assert_eq!(Line::info(odd).to_string().len(), MAX_TEXT - 1);
    }
}
