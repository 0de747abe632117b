//! Streaming split of a message into its primary header fields and its body (RFC 5322 2.1),
//! with the tolerance of Postfix's MIME state machine (global/mime_state.c) as cleanup(8)
//! runs it.
//!
//! Input comes as records: a line without its line ending, or the piece of a line that a
//! reader had to cut at line_length_limit (`complete == false`; the next piece continues the
//! same line). Header fields are collected in memory up to header_size_limit; body lines are
//! handed straight back, borrowed, never stored.
//!
//! Behaviour confirmed on Debian's Postfix 3.7.11 (tests/reference/delivered.mbox):
//! - a first line that is not a header field ends the headers, and cleanup puts an empty line
//!   before it (the header/body separator RFC 5322 requires);
//! - a message with no separator and no body is fine: the headers end at end of input;
//! - a field keeps growing while it is shorter than header_size_limit; pieces or continuation
//!   lines that arrive once it has reached the limit are dropped silently, and the field goes
//!   on (the final cut to the limit is [`crate::header::output_cut`], at output).
//!
//! # Security
//! Memory per message is bounded by one field of header_size_limit plus one input record;
//! no input makes this code panic (proptest below feeds random bytes).

use crate::header::{HeaderField, header_name_len};

/// How the header section ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersEnd {
    /// An empty line: it is returned as the first body line.
    Separator,
    /// A line that is not a header field (and not a continuation): cleanup writes an empty
    /// line before it, which the caller must do too, then that line is the first body line.
    InsertedSeparator,
    /// End of input while still in the headers: no separator, no body.
    EndOfInput,
}

/// What one input record produced, in this order: a completed field, the end of the headers,
/// a body line (borrowed from the input).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step<'a> {
    /// A header field that is now complete.
    pub header: Option<HeaderField>,
    /// Set on the record that ended the headers.
    pub end: Option<HeadersEnd>,
    /// A body record, and whether it completes its line.
    pub body: Option<(&'a [u8], bool)>,
}

/// The streaming splitter. Feed it with [`HeaderSplitter::push`], end with
/// [`HeaderSplitter::finish`].
#[derive(Debug)]
pub struct HeaderSplitter {
    limit: usize,
    in_body: bool,
    pending: Option<HeaderField>,
    prev_partial: bool,
    truncated: bool,
}

impl HeaderSplitter {
    /// A splitter with the given header_size_limit (Postfix's default: 102400).
    pub fn new(header_size_limit: usize) -> Self {
        Self {
            limit: header_size_limit,
            in_body: false,
            pending: None,
            prev_partial: false,
            truncated: false,
        }
    }

    /// Whether some header field lost text to header_size_limit (Postfix does not report
    /// it; a driver may log it).
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Whether the headers have ended.
    pub fn in_body(&self) -> bool {
        self.in_body
    }

    /// Feeds one record: `piece` is a line without its ending, or with `complete == false`
    /// the first part of a longer line.
    pub fn push<'a>(&mut self, piece: &'a [u8], complete: bool) -> Step<'a> {
        let mut step = Step::default();
        if self.in_body {
            step.body = Some((piece, complete));
            return step;
        }
        let continues_line = self.prev_partial;
        self.prev_partial = !complete;
        if let Some(field) = self.pending.as_mut() {
            if continues_line || matches!(piece.first(), Some(b' ' | b'\t')) {
                let text = field.text_mut();
                if text.len() < self.limit {
                    if !continues_line {
                        text.push(b'\n');
                    }
                    text.extend_from_slice(piece);
                } else {
                    self.truncated = true;
                }
                return step;
            }
            step.header = self.pending.take();
        }
        if !continues_line && header_name_len(piece).is_some() {
            self.pending = HeaderField::from_first_line(piece);
            return step;
        }
        // Neither a field nor a continuation: the headers end here.
        self.in_body = true;
        step.end = Some(if piece.is_empty() && complete {
            HeadersEnd::Separator
        } else {
            HeadersEnd::InsertedSeparator
        });
        step.body = Some((piece, complete));
        step
    }

    /// Ends the input: returns the last pending field and, if the headers never ended,
    /// [`HeadersEnd::EndOfInput`].
    pub fn finish(&mut self) -> Step<'static> {
        let mut step = Step {
            header: self.pending.take(),
            ..Step::default()
        };
        if !self.in_body {
            self.in_body = true;
            step.end = Some(HeadersEnd::EndOfInput);
        }
        step
    }
}

/// What smtpd(8) does with the first line(s) of DATA before cleanup sees them
/// (receive_data_message in smtpd.c, confirmed live): a leading mbox `From ` line, also when
/// `>`-quoted, becomes an `X-Mailbox-Line:` header (repeatedly, while the first lines are
/// such), and a first line that starts with a blank gets an empty line before it so that it
/// is body text rather than a continuation of smtpd's own Received: header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstLine {
    /// Replace the line with this header line; the next line is again a "first line".
    MailboxLine(Vec<u8>),
    /// Put an empty line before this one.
    InsertBlank,
    /// Pass the line as it is.
    AsIs,
}

/// Classifies a first DATA line, see [`FirstLine`].
pub fn smtpd_first_line(line: &[u8]) -> FirstLine {
    let quotes = line.iter().take_while(|&&c| c == b'>').count();
    if line[quotes..].starts_with(b"From ") {
        let mut h = b"X-Mailbox-Line: ".to_vec();
        h.extend_from_slice(line);
        return FirstLine::MailboxLine(h);
    }
    if matches!(line.first(), Some(b' ' | b'\t')) {
        FirstLine::InsertBlank
    } else {
        FirstLine::AsIs
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Runs whole lines through a splitter; returns the fields, the end, and the body lines
    /// (with an inserted separator written as an empty line, as cleanup writes it).
    fn split(lines: &[&[u8]], limit: usize) -> (Vec<String>, HeadersEnd, Vec<String>) {
        let mut s = HeaderSplitter::new(limit);
        let (mut h, mut end, mut body) = (vec![], None, vec![]);
        let mut take = |step: Step<'_>| {
            h.extend(
                step.header
                    .map(|f| String::from_utf8_lossy(f.as_bytes()).into_owned()),
            );
            if let Some(e) = step.end {
                end = Some(e);
                if e == HeadersEnd::InsertedSeparator {
                    body.push(String::new());
                }
            }
            body.extend(
                step.body
                    .map(|(b, _)| String::from_utf8_lossy(b).into_owned()),
            );
        };
        for l in lines {
            take(s.push(l, true));
        }
        take(s.finish());
        (h, end.unwrap(), body)
    }

    #[test]
    fn splits_like_cleanup() {
        type Case<'a> = (&'a [&'a [u8]], &'a [&'a str], HeadersEnd, &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            // c03: an ordinary message.
            (
                &[b"Subject: full", b"To: a@b", b"", b"body"],
                &["Subject: full", "To: a@b"],
                HeadersEnd::Separator,
                &["", "body"],
            ),
            // c01: the first line is no header: an empty line goes before it.
            (
                &[b"hello world", b"Subject: not a header", b"", b"body"],
                &[],
                HeadersEnd::InsertedSeparator,
                &["", "hello world", "Subject: not a header", "", "body"],
            ),
            // c20: no separator, no body.
            (
                &[b"Subject: nosep", b"X-Last: yes"],
                &["Subject: nosep", "X-Last: yes"],
                HeadersEnd::EndOfInput,
                &[],
            ),
            // c32: a line that is not a header after headers.
            (
                &[b"Subject: a", b"X-Bad Name: x", b""],
                &["Subject: a"],
                HeadersEnd::InsertedSeparator,
                &["", "X-Bad Name: x", ""],
            ),
            // c19: folding and the obsolete space before the colon.
            (
                &[
                    b"Subject : spaced",
                    b" more",
                    b"\tand more",
                    b"X-Tab:\tvalue",
                    b"",
                ],
                &["Subject: spaced\n more\n\tand more", "X-Tab:\tvalue"],
                HeadersEnd::Separator,
                &[""],
            ),
            // c02: an empty first line: no headers at all.
            (
                &[b"", b"body only"],
                &[],
                HeadersEnd::Separator,
                &["", "body only"],
            ),
            // Empty input.
            (&[], &[], HeadersEnd::EndOfInput, &[]),
        ];
        for (input, headers, end, body) in cases {
            let (h, e, b) = split(input, 102_400);
            assert_eq!(h, *headers, "{input:?}");
            assert_eq!(e, *end, "{input:?}");
            assert_eq!(b, *body, "{input:?}");
        }
    }

    // c17 live: a 120008-byte line arriving in 2048-byte records stops growing at 102400.
    #[test]
    fn long_line_in_pieces_stops_at_limit() {
        let line = format!("X-Long: {}", "a".repeat(120_000));
        let mut s = HeaderSplitter::new(102_400);
        let pieces: Vec<&[u8]> = line.as_bytes().chunks(2048).collect();
        for (i, p) in pieces.iter().enumerate() {
            let step = s.push(p, i + 1 == pieces.len());
            assert!(step.header.is_none() && step.end.is_none());
        }
        let f = s.push(b"X-After: yes", true).header.unwrap();
        assert_eq!(f.as_bytes().len(), 102_400);
        assert!(s.truncated());
    }

    // c26 live, header_size_limit = 1000: the field keeps the line that crossed the limit
    // (the output cut removes it later) and drops the rest.
    #[test]
    fn folded_lines_stop_after_crossing_limit() {
        let mut lines: Vec<Vec<u8>> = vec![b"X-Folded: start".to_vec()];
        for i in 0..15 {
            lines.push(format!("\t{i:02}{}", "n".repeat(97)).into_bytes());
        }
        lines.push(b"X-After: yes".to_vec());
        let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let (h, _, _) = split(&refs, 1000);
        assert_eq!(h[0].len(), 15 + 10 * 101);
        assert_eq!(
            crate::header::output_cut(h[0].as_bytes(), 1000).len(),
            15 + 9 * 101
        );
        assert_eq!(h[1], "X-After: yes");
    }

    #[test]
    fn first_lines() {
        assert_eq!(
            smtpd_first_line(b"From someone Thu Jan  1 00:00:00 2026"),
            FirstLine::MailboxLine(
                b"X-Mailbox-Line: From someone Thu Jan  1 00:00:00 2026".to_vec()
            )
        );
        assert!(matches!(
            smtpd_first_line(b">>From x"),
            FirstLine::MailboxLine(_)
        ));
        assert!(matches!(
            smtpd_first_line(b"From : Spaced <s@example.org>"),
            FirstLine::MailboxLine(_)
        ));
        assert_eq!(smtpd_first_line(b" leading space"), FirstLine::InsertBlank);
        assert_eq!(smtpd_first_line(b"Subject: x"), FirstLine::AsIs);
        assert_eq!(smtpd_first_line(b""), FirstLine::AsIs);
    }

    proptest! {
        #[test]
        fn random_records_never_panic(recs in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..80), any::<bool>()), 0..40),
            limit in 1usize..300)
        {
            let mut s = HeaderSplitter::new(limit);
            for (r, complete) in &recs {
                let step = s.push(r, *complete);
                if let Some(f) = step.header {
                    let _ = crate::header::output_cut(f.as_bytes(), limit);
                    let _ = f.unfolded_value();
                }
            }
            let _ = s.finish();
            let _ = recs.first().map(|(r, _)| smtpd_first_line(r));
        }
    }
}
