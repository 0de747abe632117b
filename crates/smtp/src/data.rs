//! Message content after DATA and in BDAT chunks, decoded the way Postfix's smtpd
//! copies it into the queue file (smtpd.c, receive_data_message and bdat_cmd).
//!
//! Output is a sequence of records, each a line *without* its CRLF, as Postfix's
//! queue file stores content (REC_TYPE_NORM); a line longer than line_length_limit
//! is stored as continuation records (REC_TYPE_CONT, [`RecordKind::Cont`]) followed
//! by the record that ends it. Consumers that want a byte stream add CRLF (or LF)
//! after each [`RecordKind::Norm`] record.
//!
//! DATA (RFC 5321 4.1.1.4, 4.5.2): a line starting with `.` loses that dot; a line
//! that is only `.` ends the message. With smtpd_forbid_bare_newline = normalize or
//! reject, a lone `.` whose own line or the previous line ended in a bare LF does not
//! end the message and is not stored: `\r\n.\n` and `\n.\r\n` cannot smuggle a second
//! message (Postfix 3.9 postconf(5); verified live against 3.7.11). With `no`, `.\n`
//! ends the message as any LF ends a line.
//!
//! Size: each record counts its length plus 2 (the CRLF), as Postfix's act_size;
//! beyond message_size_limit the reader stops storing, keeps reading to the end, and
//! the reply is `552 5.3.4 Error: message file too big`. With `reject`, a bare LF
//! anywhere makes the end-of-data reply `550 5.5.2 <myhostname> Error: bare <LF>
//! received` ("delayed reject": the message is read to its end first).
//!
//! Not here (they belong to the queue writer): Postfix's X-Mailbox-Line for a leading
//! `From ` line, and the empty record before content that starts with whitespace.
//!
//! # Security
//! Content is untrusted. Records are at most line_length_limit bytes; nothing is held
//! beyond one record (DATA) or one partial line (BDAT).

use crate::line::{BareLfPolicy, Line, LineEnd, strip_line_end};
use crate::reply::Reply;

/// Whether a record ends its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A whole line, or the last piece of a long one.
    Norm,
    /// A piece of a long line that continues in the next record.
    Cont,
}

/// Why a message was refused at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("message file too big")]
    TooBig,
    #[error("bare <LF> received")]
    BareLf,
}

impl DataError {
    /// The end-of-data reply. `myhostname` and `bare_lf_code`
    /// (smtpd_forbid_bare_newline_reject_code) shape the bare-LF reply.
    pub fn reply(self, myhostname: &str, bare_lf_code: u16) -> Reply {
        match self {
            Self::TooBig => Reply::canned("552 5.3.4 Error: message file too big"),
            Self::BareLf => crate::replies::bare_lf(bare_lf_code, myhostname),
        }
    }
}

/// What to do with one line of DATA input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataStep<'a> {
    /// Store this record.
    Store(&'a [u8], RecordKind),
    /// Nothing to store (dropped dot line, or past an error).
    Skip,
    /// End of message: call [`DataReader::finish`].
    End,
}

/// Decodes the lines after `354` (the assembler in `Overlong::Split` mode).
#[derive(Debug, Clone)]
pub struct DataReader {
    policy: BareLfPolicy,
    size_limit: u64,
    size: u64,
    prev_cont: bool,
    prev_bare_lf: bool,
    error: Option<DataError>,
}

/// The result of a finished DATA or BDAT transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSummary {
    /// Bytes counted toward message_size_limit (records + 2 each).
    pub size: u64,
    pub error: Option<DataError>,
}

impl DataReader {
    /// `size_limit` is message_size_limit; 0 means no limit.
    pub fn new(policy: BareLfPolicy, size_limit: u64) -> Self {
        Self {
            policy,
            size_limit,
            size: 0,
            prev_cont: false,
            prev_bare_lf: false,
            error: None,
        }
    }

    pub fn line<'a>(&mut self, line: &'a Line) -> DataStep<'a> {
        let bare = line.end == LineEnd::BareLf && self.policy.detects();
        let cont = line.end == LineEnd::Cut;
        let prev_cont = std::mem::replace(&mut self.prev_cont, cont);
        let prev_bare = std::mem::replace(&mut self.prev_bare_lf, bare);
        if bare && self.policy == BareLfPolicy::Reject {
            // Postfix reports a bare LF before a size overflow.
            self.error = Some(DataError::BareLf);
        }
        let mut text: &[u8] = &line.text;
        if !prev_cont && text.first() == Some(&b'.') {
            if text.len() == 1 && self.policy.wants_standard_eod() && (bare || prev_bare) {
                return DataStep::Skip;
            }
            text = &text[1..];
            if text.is_empty() {
                return DataStep::End;
            }
        }
        let kind = if cont {
            RecordKind::Cont
        } else {
            RecordKind::Norm
        };
        if self.account(text.len()) {
            DataStep::Store(text, kind)
        } else {
            DataStep::Skip
        }
    }

    /// Size and errors so far.
    pub fn finish(&self) -> DataSummary {
        DataSummary {
            size: self.size,
            error: self.error,
        }
    }

    fn account(&mut self, len: usize) -> bool {
        account(&mut self.size, self.size_limit, &mut self.error, len)
    }
}

fn account(size: &mut u64, limit: u64, error: &mut Option<DataError>, len: usize) -> bool {
    if error.is_some() {
        return false;
    }
    let need = len as u64 + 2;
    if limit > 0 && limit.saturating_sub(*size) < need {
        *error = Some(DataError::TooBig);
        return false;
    }
    *size += need;
    true
}

/// Decodes BDAT chunks (RFC 3030): no dot handling, lines may span chunks.
#[derive(Debug, Clone)]
pub struct BdatReader {
    policy: BareLfPolicy,
    limit: usize,
    size_limit: u64,
    size: u64,
    partial: Vec<u8>,
    remaining: u64,
    last: bool,
    error: Option<DataError>,
}

impl BdatReader {
    pub fn new(policy: BareLfPolicy, line_limit: usize, size_limit: u64) -> Self {
        Self {
            policy,
            limit: line_limit.max(2),
            size_limit,
            size: 0,
            partial: Vec::new(),
            remaining: 0,
            last: false,
            error: None,
        }
    }

    /// Announces the next chunk, after [`crate::session::Step::ReadChunk`] (the
    /// session has already refused a chunk that would pass message_size_limit).
    pub fn start_chunk(&mut self, size: u64, last: bool) {
        self.remaining = size;
        self.last = last;
    }

    /// Bytes of the current chunk still expected.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Feeds chunk bytes (at most [`Self::remaining`] are used; the count is returned).
    /// Records go to `sink`; after the last byte of a LAST chunk a trailing partial
    /// line is emitted as a whole record, as Postfix does.
    pub fn feed(&mut self, data: &[u8], sink: &mut impl FnMut(&[u8], RecordKind)) -> usize {
        let n = usize::try_from(self.remaining).map_or(data.len(), |r| r.min(data.len()));
        for &b in &data[..n] {
            self.partial.push(b);
            if b == b'\n' {
                self.partial.pop();
                let line = strip_line_end(&self.partial, self.policy);
                self.partial.clear();
                if line.end == LineEnd::BareLf && self.policy == BareLfPolicy::Reject {
                    self.error = Some(DataError::BareLf);
                }
                self.emit(&line.text, RecordKind::Norm, sink);
            } else if self.partial.len() == self.limit && b != b'\r' {
                let piece = std::mem::take(&mut self.partial);
                self.emit(&piece, RecordKind::Cont, sink);
            } else if self.partial.len() > self.limit {
                // A CR filled the limit and no LF followed: cut before this byte.
                let piece: Vec<u8> = self.partial.drain(..self.limit).collect();
                self.emit(&piece, RecordKind::Cont, sink);
            }
        }
        self.remaining -= n as u64;
        if self.remaining == 0 && self.last && !self.partial.is_empty() {
            let piece = std::mem::take(&mut self.partial);
            self.emit(&piece, RecordKind::Norm, sink);
        }
        n
    }

    /// Whether the LAST chunk has been read completely.
    pub fn is_done(&self) -> bool {
        self.last && self.remaining == 0
    }

    pub fn summary(&self) -> DataSummary {
        DataSummary {
            size: self.size,
            error: self.error,
        }
    }

    fn emit(&mut self, text: &[u8], kind: RecordKind, sink: &mut impl FnMut(&[u8], RecordKind)) {
        if account(&mut self.size, self.size_limit, &mut self.error, text.len()) {
            sink(text, kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::{LineAssembler, Overlong};

    /// Runs DATA input; returns stored records joined with `|` (`+` after Cont), and
    /// whether the end was seen, and what remained buffered after it.
    fn run(
        input: &[u8],
        policy: BareLfPolicy,
        limit: usize,
        size: u64,
    ) -> (String, bool, DataSummary, Vec<u8>) {
        let mut a = LineAssembler::new(limit, policy);
        a.set_overlong(Overlong::Split);
        a.push(input);
        let mut r = DataReader::new(policy, size);
        let mut out = String::new();
        let mut ended = false;
        while let Some(line) = a.next_line() {
            match r.line(&line) {
                DataStep::Store(t, k) => {
                    out.push_str(&String::from_utf8_lossy(t));
                    out.push(if k == RecordKind::Cont { '+' } else { '|' });
                }
                DataStep::Skip => {}
                DataStep::End => {
                    ended = true;
                    break;
                }
            }
        }
        (out, ended, r.finish(), a.buffered().to_vec())
    }

    #[test]
    fn data_table() {
        type Case = (
            &'static [u8],
            BareLfPolicy,
            &'static str,
            bool,
            &'static [u8],
        );
        use BareLfPolicy::{No, Normalize, Reject};
        let smuggle: &[u8] = b"a\r\n.\nsmug1\n.\r\nsmug2\r\n..dot\r\n.\r\nNEXT";
        let cases: Vec<Case> = vec![
            (b"a\r\n.\r\n", No, "a|", true, b""),
            (b"a\r\n..b\r\n.\r\nQUIT\r\n", No, "a|.b|", true, b"QUIT\r\n"),
            (b"a\r\n.\r", No, "a|", false, b".\r"),
            // Postfix 3.7 default: `.\n` ends the message.
            (
                smuggle,
                No,
                "a|",
                true,
                b"smug1\n.\r\nsmug2\r\n..dot\r\n.\r\nNEXT",
            ),
            // normalize / reject: the smuggled dots are dropped, verified live.
            (smuggle, Normalize, "a|smug1|smug2|.dot|", true, b"NEXT"),
            // reject: nothing is stored after the first bare LF (the message is refused).
            (smuggle, Reject, "a|", true, b"NEXT"),
            (
                b"bare\nlf\r\ncr\rmi\r\n.\r\n",
                Normalize,
                "bare|lf|cr\rmi|",
                true,
                b"",
            ),
            (b"abcdefgh\r\n.xy\r\n.\r\n", No, "abcdef+gh|xy|", true, b""),
            // A dot at the start of a continuation record is content.
            (b"abcdef.x\r\n.\r\n", No, "abcdef+.x|", true, b""),
        ];
        for (i, (input, policy, want, ended, rest)) in cases.into_iter().enumerate() {
            let (got, e, _, left) = run(input, policy, 6, 0);
            assert_eq!(
                (got.as_str(), e, left.as_slice()),
                (want, ended, rest),
                "case {i}"
            );
        }
        assert_eq!(run(smuggle, Reject, 6, 0).2.error, Some(DataError::BareLf));
        assert_eq!(run(smuggle, Normalize, 6, 0).2.error, None);
    }

    #[test]
    fn size_limit() {
        // "abc" counts 5, "de" counts 4.
        let (out, ended, s, _) = run(b"abc\r\nde\r\n.\r\n", BareLfPolicy::No, 2048, 9);
        assert_eq!(
            (out.as_str(), ended, s.size, s.error),
            ("abc|de|", true, 9, None)
        );
        let (out, ended, s, _) = run(b"abc\r\nde\r\nf\r\n.\r\n", BareLfPolicy::No, 2048, 9);
        assert_eq!(
            (out.as_str(), ended, s.error),
            ("abc|de|", true, Some(DataError::TooBig))
        );
        assert_eq!(
            DataError::TooBig.reply("mx", 550).to_string(),
            "552 5.3.4 Error: message file too big"
        );
    }

    fn bdat(chunks: &[(&[u8], bool)], policy: BareLfPolicy, limit: usize) -> (String, DataSummary) {
        let mut r = BdatReader::new(policy, limit, 0);
        let mut out = String::new();
        for (data, last) in chunks {
            r.start_chunk(data.len() as u64, *last);
            // Feed in two pieces: results must not depend on read boundaries.
            let mid = data.len() / 2;
            let mut sink = |t: &[u8], k: RecordKind| {
                out.push_str(&String::from_utf8_lossy(t));
                out.push(if k == RecordKind::Cont { '+' } else { '|' });
            };
            assert_eq!(r.feed(&data[..mid], &mut sink), mid);
            r.feed(&data[mid..], &mut sink);
        }
        assert!(r.is_done());
        (out, r.summary())
    }

    #[test]
    fn bdat_table() {
        use BareLfPolicy::{No, Reject};
        type Case = (Vec<(&'static [u8], bool)>, BareLfPolicy, &'static str);
        let cases: Vec<Case> = vec![
            (
                vec![(b"ab\r\nc", false), (b"d\r\n.\r\n", true)],
                No,
                "ab|cd|.|",
            ),
            (vec![(b"ab\r", false), (b"\ncd", true)], No, "ab|cd|"),
            (vec![(b"abcdefgh\r\n", true)], No, "abcdef+gh|"),
            (vec![(b"abcd\rx\r\n", true)], No, "abcd\rx+|"),
            (vec![(b"abcde\rX\r\n", true)], No, "abcde\r+X|"),
            (vec![(b"a\nb\r\n", true)], Reject, ""),
        ];
        for (i, (chunks, policy, want)) in cases.into_iter().enumerate() {
            assert_eq!(bdat(&chunks, policy, 6).0, want, "case {i}");
        }
        assert_eq!(
            bdat(&[(b"a\nb", true)], Reject, 6).1.error,
            Some(DataError::BareLf)
        );
        let mut r = BdatReader::new(No, 2048, 6);
        r.start_chunk(8, true);
        r.feed(b"ab\r\ncd\r\n", &mut |_, _| {});
        assert_eq!(r.summary().error, Some(DataError::TooBig));
    }
}
