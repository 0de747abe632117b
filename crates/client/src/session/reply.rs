//! Server replies, sans-IO: one reply from its lines, as Postfix's smtp_chat_resp() reads
//! them (smtp_chat.c).
//!
//! Security: every byte here comes from the server. A line is cut by the reader at
//! line_length_limit; the joined text stops growing once it reaches that length (later
//! lines are read and dropped), so a reply never holds more than about twice the limit.
//! Bytes that are not printable (UTF-8 allowed) become `?` before any text is built.

use tern_config::text::printable_utf8;

/// One complete server reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The code of the last line; 0 when the line did not start with three digits.
    pub code: u16,
    /// The enhanced status code (RFC 3463): the reply's own when it has one whose class
    /// matches the code's, `X.0.0` from the code's first digit otherwise, `5.5.0` for a
    /// code that is not 2xx, 4xx or 5xx (Postfix's "SAFETY! protocol error").
    pub dsn: String,
    /// The reply's lines (codes included) joined with `\n`.
    pub text: String,
    /// Some line did not look like `ddd-` or `ddd `: Postfix marks the session as having
    /// a protocol error and keeps reading.
    pub protocol_error: bool,
}

impl Reply {
    /// The text on one line, as every Postfix message quotes it (translit "\n" to " ").
    pub fn flat(&self) -> String {
        self.text.replace('\n', " ")
    }

    /// The first digit of the code (2, 3, 4, 5; 0 for no code).
    pub fn class(&self) -> u16 {
        self.code / 100
    }
}

/// Collects the lines of one reply.
#[derive(Debug)]
pub struct ReplyBuilder {
    limit: usize,
    text: String,
    protocol_error: bool,
}

impl ReplyBuilder {
    /// `limit` is line_length_limit: the joined text stops growing at this length.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            text: String::new(),
            protocol_error: false,
        }
    }

    /// Adds one line (without its CRLF); the complete reply when this line ends it.
    pub fn push(&mut self, raw: &[u8]) -> Option<Reply> {
        let line = printable_utf8(raw);
        if self.text.len() < self.limit {
            if !self.text.is_empty() {
                self.text.push('\n');
            }
            self.text.push_str(&line);
        }
        let b = line.as_bytes();
        let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 3 {
            match b.get(3) {
                Some(b'-') => return None,
                Some(b' ') | None => return Some(self.finish(b)),
                _ => {}
            }
        }
        // RFC 5321 4.2: each line is "ddd-text" or "ddd text". Postfix treats any other
        // line as part of the reply (a protocol error) and reads on.
        self.protocol_error = true;
        None
    }

    fn finish(&mut self, last: &[u8]) -> Reply {
        let code = u16::from(last[0] - b'0') * 100
            + u16::from(last[1] - b'0') * 10
            + u16::from(last[2] - b'0');
        let mut dsn = String::from("5.5.0");
        if matches!(last[0], b'2' | b'4' | b'5') {
            let rest = String::from_utf8_lossy(last.get(4..).unwrap_or_default());
            let rest = rest.trim_start_matches(' ');
            let len = dsn_valid(rest);
            if len > 0 && rest.as_bytes()[0] == last[0] {
                rest[..len].clone_into(&mut dsn);
            } else {
                dsn = format!("{}.0.0", char::from(last[0]));
            }
        }
        Reply {
            code,
            dsn,
            text: std::mem::take(&mut self.text),
            protocol_error: self.protocol_error,
        }
    }
}

/// The length of the enhanced status code at the start of `text` (`2.1.5` in
/// `2.1.5 Ok`), 0 when there is none; Postfix's dsn_valid(): class 2, 4 or 5, then 1-3
/// and 1-3 digits, then the end or white space.
pub fn dsn_valid(text: &str) -> usize {
    let b = text.as_bytes();
    if b.len() < 2 || !matches!(b[0], b'2' | b'4' | b'5') || b[1] != b'.' {
        return 0;
    }
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let n2 = digits(2);
    if !(1..=3).contains(&n2) || b.get(2 + n2) != Some(&b'.') {
        return 0;
    }
    let start3 = 3 + n2;
    let n3 = digits(start3);
    let end = start3 + n3;
    if !(1..=3).contains(&n3) || b.get(end).is_some_and(|c| !c.is_ascii_whitespace()) {
        return 0;
    }
    end
}

/// A reply made up locally (Postfix's SMTP_RESP_FAKE): the status, no server text.
pub(crate) fn fake(dsn: &str) -> Reply {
    Reply {
        code: 0,
        dsn: dsn.to_owned(),
        text: String::new(),
        protocol_error: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        // (lines, code, dsn, text, protocol error)
        let table: &[(&[&str], u16, &str, &str, bool)] = &[
            (
                &["250 2.0.0 Ok: queued as 4Z9"],
                250,
                "2.0.0",
                "250 2.0.0 Ok: queued as 4Z9",
                false,
            ),
            (&["250 Ok"], 250, "2.0.0", "250 Ok", false),
            (&["250"], 250, "2.0.0", "250", false),
            (
                &["550 5.1.1 <u@d>: Recipient address rejected"],
                550,
                "5.1.1",
                "550 5.1.1 <u@d>: Recipient address rejected",
                false,
            ),
            // A DSN whose class disagrees with the code is not used.
            (&["550 4.1.1 odd"], 550, "5.0.0", "550 4.1.1 odd", false),
            (
                &["450  4.2.0   busy"],
                450,
                "4.2.0",
                "450  4.2.0   busy",
                false,
            ),
            (
                &["421 4.3.2x closing"],
                421,
                "4.0.0",
                "421 4.3.2x closing",
                false,
            ),
            (
                &["354 End data with <CR><LF>.<CR><LF>"],
                354,
                "5.5.0",
                "354 End data with <CR><LF>.<CR><LF>",
                false,
            ),
            (
                &["250-mx.example.com", "250-PIPELINING", "250 SIZE 1000"],
                250,
                "2.0.0",
                "250-mx.example.com\n250-PIPELINING\n250 SIZE 1000",
                false,
            ),
            (
                &["garbage", "220 ok"],
                220,
                "2.0.0",
                "garbage\n220 ok",
                true,
            ),
            (&["2500 x", "250 ok"], 250, "2.0.0", "2500 x\n250 ok", true),
            (&["25 x", "250 ok"], 250, "2.0.0", "25 x\n250 ok", true),
            (
                &["250 \u{e9}t\u{e9}\u{7}"],
                250,
                "2.0.0",
                "250 \u{e9}t\u{e9}?",
                false,
            ),
            (&["600 weird"], 600, "5.5.0", "600 weird", false),
        ];
        for (lines, code, dsn, text, perr) in table {
            let mut b = ReplyBuilder::new(2048);
            let mut got = None;
            for (i, l) in lines.iter().enumerate() {
                got = b.push(l.as_bytes());
                assert_eq!(got.is_some(), i + 1 == lines.len(), "{lines:?} line {i}");
            }
            let r = got.expect("complete");
            assert_eq!(
                (r.code, r.dsn.as_str(), r.text.as_str(), r.protocol_error),
                (*code, *dsn, *text, *perr),
                "{lines:?}"
            );
        }
    }

    #[test]
    fn text_stops_growing_at_the_limit() {
        let mut b = ReplyBuilder::new(10);
        assert!(b.push(b"250-abcdefgh").is_none());
        assert!(b.push(b"250-dropped").is_none());
        let r = b.push(b"250 also dropped").expect("complete");
        assert_eq!(r.text, "250-abcdefgh");
        assert_eq!(r.code, 250);
    }

    #[test]
    fn dsn_codes() {
        for (text, len) in [
            ("2.0.0", 5),
            ("5.1.1 x", 5),
            ("4.123.456\tx", 9),
            ("5.1234.1", 0),
            ("5.1.1234", 0),
            ("3.0.0", 0),
            ("5..1", 0),
            ("5.1.", 0),
            ("5.1.1x", 0),
            ("5", 0),
            ("", 0),
        ] {
            assert_eq!(dsn_valid(text), len, "{text}");
        }
    }
}
