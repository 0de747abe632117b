//! Line assembly from the client's byte stream, as Postfix's `smtp_get()` reads it.
//!
//! The driver pushes whatever the socket returned ([`LineAssembler::push`]) and pulls
//! complete lines ([`LineAssembler::next_line`]) until `None`. A line ends at LF; the
//! CR before it is removed. What counts as a line, and what a bare LF means, follows
//! Postfix 3.7.11 (global/smtp_stream.c, smtpd/smtpd.c) and postconf(5) of 3.9:
//!
//! - At most `line_length_limit` bytes (default 2048, counting the LF) make one line.
//!   A longer command is cut there and the rest, up to the next LF, is skipped
//!   ([`Overlong::Skip`]; Postfix then answers the cut command as usual and logs
//!   `warning: <client>: request longer than 2048: <first 30 bytes>...`). Inside DATA
//!   the rest becomes the next record ([`Overlong::Split`], a continuation record).
//! - A CR that ends exactly at the limit still pairs with a following LF.
//! - A bare CR is never a line end; it stays in the line.
//! - `smtpd_forbid_bare_newline = no`: a bare LF ends a line like CRLF, and every CR
//!   before the LF is dropped (`NOOP\r\r\n` is `NOOP`). With `normalize` (also spelled
//!   `yes`) or `reject`, exactly one CR is dropped and a line that ended in a bare LF
//!   is marked [`LineEnd::BareLf`], so the session and the DATA reader can act on it.
//! - NUL bytes are kept; the command parser stops at the first one, as Postfix's C
//!   strings do.
//!
//! # Security
//! Input is untrusted network data. The assembler never panics, never returns a line
//! longer than the limit, and holds at most what the driver pushed: the driver should
//! push bounded reads and drain lines before pushing more.

/// `smtpd_forbid_bare_newline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BareLfPolicy {
    /// `no` (Postfix 3.7's default): bare LF is an ordinary line end; `.\n` ends DATA.
    #[default]
    No,
    /// `normalize` / `yes` (3.9's default): bare LF accepted as CRLF, but DATA ends
    /// only at CRLF.CRLF.
    Normalize,
    /// `reject`: as normalize, and a command or message with a bare LF is refused
    /// (smtpd_forbid_bare_newline_reject_code, default 550).
    Reject,
}

impl BareLfPolicy {
    /// Parses the parameter value as Postfix's name_code table does (case-sensitive).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "no" => Some(Self::No),
            "normalize" | "yes" => Some(Self::Normalize),
            "reject" => Some(Self::Reject),
            _ => None,
        }
    }

    /// Whether bare LFs are detected at all (Postfix's smtp_detect_bare_lf != 0).
    pub fn detects(self) -> bool {
        self != Self::No
    }

    /// Whether DATA must end with the standard CRLF.CRLF.
    pub fn wants_standard_eod(self) -> bool {
        self != Self::No
    }
}

/// What to do with the rest of a line longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlong {
    /// Commands: discard the rest up to and including the next LF.
    Skip,
    /// DATA content: the rest is delivered as the following line(s).
    Split,
}

/// How a line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// CRLF, or any LF when the policy is `no`.
    Crlf,
    /// LF without CR, with a policy that detects it.
    BareLf,
    /// Cut at the length limit; no line end seen yet.
    Cut,
}

/// One line without its terminator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: Vec<u8>,
    pub end: LineEnd,
}

/// The default `line_length_limit`.
pub const DEFAULT_LINE_LIMIT: usize = 2048;

/// Buffers bytes and cuts them into lines.
#[derive(Debug, Clone)]
pub struct LineAssembler {
    buf: Vec<u8>,
    pos: usize,
    limit: usize,
    policy: BareLfPolicy,
    overlong: Overlong,
    skipping: bool,
}

impl LineAssembler {
    /// `limit` is line_length_limit (values below 2 are raised to 2, as a line needs
    /// room for at least one byte and its LF).
    pub fn new(limit: usize, policy: BareLfPolicy) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            limit: limit.max(2),
            policy,
            overlong: Overlong::Skip,
            skipping: false,
        }
    }

    pub fn policy(&self) -> BareLfPolicy {
        self.policy
    }

    /// Changes the policy (smtpd_forbid_bare_newline_exclusions is the driver's call).
    pub fn set_policy(&mut self, policy: BareLfPolicy) {
        self.policy = policy;
    }

    /// The length limit now in force.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Changes the length limit (smtpd reads an AUTH response with
    /// smtpd_sasl_response_limit, smtpd_chat_query_limit()); raised to 2 as in `new`.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.max(2);
    }

    /// Switches between command mode (skip) and DATA mode (split).
    pub fn set_overlong(&mut self, overlong: Overlong) {
        self.overlong = overlong;
        if overlong == Overlong::Split {
            self.skipping = false;
        }
    }

    /// Appends bytes read from the client.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 4096 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes pushed but not yet returned (for BDAT payloads and pipelining checks).
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Takes up to `max` raw buffered bytes (BDAT payload), bypassing line assembly.
    pub fn take_raw(&mut self, max: usize) -> Vec<u8> {
        let n = max.min(self.buf.len() - self.pos);
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        out
    }

    /// The next complete line, or `None` when more input is needed.
    pub fn next_line(&mut self) -> Option<Line> {
        loop {
            let avail = &self.buf[self.pos..];
            if self.skipping {
                let Some(i) = avail.iter().position(|&b| b == b'\n') else {
                    self.pos = self.buf.len();
                    return None;
                };
                self.pos += i + 1;
                self.skipping = false;
                continue;
            }
            let window = avail.len().min(self.limit);
            if let Some(i) = avail[..window].iter().position(|&b| b == b'\n') {
                let line = self.finish(&avail[..i]);
                self.pos += i + 1;
                return Some(line);
            }
            if avail.len() < self.limit {
                return None;
            }
            // smtp_stream.c: a CR that fills the limit may still pair with the LF.
            if avail[self.limit - 1] == b'\r' {
                match avail.get(self.limit) {
                    None => return None,
                    Some(b'\n') => {
                        let line = self.finish(&avail[..self.limit]);
                        self.pos += self.limit + 1;
                        return Some(line);
                    }
                    Some(_) => {}
                }
            }
            let line = Line {
                text: avail[..self.limit].to_vec(),
                end: LineEnd::Cut,
            };
            self.pos += self.limit;
            self.skipping = self.overlong == Overlong::Skip;
            return Some(line);
        }
    }

    fn finish(&self, content: &[u8]) -> Line {
        strip_line_end(content, self.policy)
    }
}

/// Removes the CR before an LF per policy and classifies the end (shared with BDAT).
pub(crate) fn strip_line_end(content: &[u8], policy: BareLfPolicy) -> Line {
    let mut text = content.to_vec();
    if policy.detects() {
        if text.last() == Some(&b'\r') {
            text.pop();
            Line {
                text,
                end: LineEnd::Crlf,
            }
        } else {
            Line {
                text,
                end: LineEnd::BareLf,
            }
        }
    } else {
        while text.last() == Some(&b'\r') {
            text.pop();
        }
        Line {
            text,
            end: LineEnd::Crlf,
        }
    }
}

/// A CRLF-ended line of `text`, for the session machine's unit tests.
#[cfg(test)]
pub(crate) fn crlf_line(text: &str) -> Line {
    Line {
        text: text.as_bytes().to_vec(),
        end: LineEnd::Crlf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], limit: usize, policy: BareLfPolicy, mode: Overlong) -> Vec<Line> {
        let mut a = LineAssembler::new(limit, policy);
        a.set_overlong(mode);
        let mut out = Vec::new();
        // Byte at a time: assembly must not depend on read boundaries.
        for b in input {
            a.push(&[*b]);
            while let Some(l) = a.next_line() {
                out.push(l);
            }
        }
        out
    }

    fn l(text: &[u8], end: LineEnd) -> Line {
        Line {
            text: text.to_vec(),
            end,
        }
    }

    #[test]
    fn table() {
        use BareLfPolicy::{No, Normalize, Reject};
        use LineEnd::{BareLf, Crlf, Cut};
        use Overlong::{Skip, Split};
        type Case = (&'static [u8], usize, BareLfPolicy, Overlong, Vec<Line>);
        let cases: Vec<Case> = vec![
            (b"NOOP\r\n", 2048, No, Skip, vec![l(b"NOOP", Crlf)]),
            (b"NOOP\n", 2048, No, Skip, vec![l(b"NOOP", Crlf)]),
            (b"NOOP\r\r\n", 2048, No, Skip, vec![l(b"NOOP", Crlf)]),
            (
                b"NOOP\r\r\n",
                2048,
                Normalize,
                Skip,
                vec![l(b"NOOP\r", Crlf)],
            ),
            (b"NOOP\n", 2048, Normalize, Skip, vec![l(b"NOOP", BareLf)]),
            (b"NOOP\n", 2048, Reject, Skip, vec![l(b"NOOP", BareLf)]),
            (b"a\rb\r\n", 2048, Normalize, Skip, vec![l(b"a\rb", Crlf)]),
            (b"a\rb", 2048, No, Skip, vec![]),
            (b"a\0b\r\n", 2048, No, Skip, vec![l(b"a\0b", Crlf)]),
            // limit 6: five bytes and LF fit; a CR at the limit pairs with the LF.
            (
                b"abcde\nX\n",
                6,
                No,
                Skip,
                vec![l(b"abcde", Crlf), l(b"X", Crlf)],
            ),
            (
                b"abcde\r\nX\n",
                6,
                No,
                Skip,
                vec![l(b"abcde", Crlf), l(b"X", Crlf)],
            ),
            (
                b"abcdef\r\nX\n",
                6,
                No,
                Skip,
                vec![l(b"abcdef", Cut), l(b"X", Crlf)],
            ),
            (
                b"abcdefghij\r\n",
                6,
                No,
                Split,
                vec![l(b"abcdef", Cut), l(b"ghij", Crlf)],
            ),
            (
                b"abcde\rX\n",
                6,
                No,
                Split,
                vec![l(b"abcde\r", Cut), l(b"X", Crlf)],
            ),
        ];
        for (i, (input, limit, policy, mode, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                lines(input, limit, policy, mode),
                want,
                "case {i}: {input:?}"
            );
        }
    }

    #[test]
    fn default_limit_matches_postfix() {
        // Verified live: NOOP + 2043 spaces + CRLF (2047 bytes of text) is not cut,
        // NOOP + 2044 spaces is.
        let mut ok = b"NOOP".to_vec();
        ok.extend(std::iter::repeat_n(b' ', 2043));
        ok.extend(b"\r\n");
        assert_eq!(
            lines(&ok, 2048, BareLfPolicy::No, Overlong::Skip)[0].end,
            LineEnd::Crlf
        );
        let mut cut = b"NOOP".to_vec();
        cut.extend(std::iter::repeat_n(b' ', 2044));
        cut.extend(b"\r\nQUIT\r\n");
        let got = lines(&cut, 2048, BareLfPolicy::No, Overlong::Skip);
        assert_eq!(got[0].end, LineEnd::Cut);
        assert_eq!(got[0].text.len(), 2048);
        assert_eq!(got[1], l(b"QUIT", LineEnd::Crlf));
    }

    #[test]
    fn take_raw_after_lines() {
        let mut a = LineAssembler::new(2048, BareLfPolicy::No);
        a.push(b"BDAT 3\r\nabcNOOP\r\n");
        assert_eq!(a.next_line().unwrap().text, b"BDAT 3");
        assert_eq!(a.take_raw(3), b"abc");
        assert_eq!(a.next_line().unwrap().text, b"NOOP");
        assert!(a.next_line().is_none());
        assert_eq!(BareLfPolicy::parse("yes"), Some(BareLfPolicy::Normalize));
        assert_eq!(BareLfPolicy::parse("YES"), None);
    }

    #[test]
    fn a_changed_limit_applies_to_the_next_line() {
        // An AUTH response is read with smtpd_sasl_response_limit (12288 by default).
        let mut a = LineAssembler::new(2048, BareLfPolicy::No);
        a.set_limit(12288);
        assert_eq!(a.limit(), 12288);
        let long = [b'A'; 5000];
        a.push(&long);
        a.push(b"\r\n");
        let line = a.next_line().unwrap();
        assert_eq!((line.text.len(), line.end), (5000, LineEnd::Crlf));
        a.set_limit(100);
        a.push(&long);
        a.push(b"\r\nNOOP\r\n");
        assert_eq!(a.next_line().unwrap().end, LineEnd::Cut);
        assert_eq!(a.next_line().unwrap().text, b"NOOP");
        a.set_limit(0);
        assert_eq!(a.limit(), 2);
    }
}
