//! One RFC 5322 header field: its name, its (possibly folded) text, and the table of header
//! names that Postfix's cleanup(8) knows.
//!
//! A [`HeaderField`] holds the field the way Postfix's cleanup holds it in memory: the name,
//! a colon and the value, with the physical lines of a folded field separated by a bare `\n`
//! (no CR, no trailing newline). That is also the form a queue file stores, one record a line.
//!
//! # Security
//! Field text comes from the network. Nothing here indexes without a bound check, and the
//! only limit that matters (header_size_limit) is applied by the splitter and by
//! [`output_cut`], never by trusting a length the peer sent.

use std::fmt;

/// The length of the header name at the start of `line`, if the line starts a header field.
///
/// Postfix's rule (is_header(3) in global/is_header.c), which is looser than RFC 5322 2.2: the
/// name is one or more printable ASCII characters other than `:`, space and tab; blanks may
/// sit between the name and the colon (the obsolete syntax of RFC 5322 4.5), but not inside
/// the name. The count excludes those blanks and the colon.
pub fn header_name_len(line: &[u8]) -> Option<usize> {
    let mut len = 0;
    let mut after_blank = false;
    for &c in line {
        match c {
            b':' => return (len > 0).then_some(len),
            b' ' | b'\t' if len > 0 => after_blank = true,
            0x21..=0x7e if !after_blank => len += 1,
            _ => return None,
        }
    }
    None
}

/// A header field in cleanup's in-memory form: `Name: value\n\tcontinued`.
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderField {
    text: Vec<u8>,
    name_len: usize,
}

impl HeaderField {
    /// Builds a field from its first physical line, normalising the obsolete `Name : value`
    /// to `Name: value` as Postfix's MIME state machine does (global/mime_state.c).
    /// Returns `None` when the line does not start a header field.
    pub fn from_first_line(line: &[u8]) -> Option<Self> {
        let name_len = header_name_len(line)?;
        let rest = &line[name_len..];
        let colon = rest.iter().position(|&c| c == b':')?;
        let mut text = Vec::with_capacity(line.len());
        text.extend_from_slice(&line[..name_len]);
        text.extend_from_slice(&rest[colon..]);
        Some(Self { text, name_len })
    }

    /// Builds a field from a name and a value; the value may hold `\n` between folded lines.
    /// Panics in debug builds only if `name` is not a header name (a programming error).
    pub fn new(name: &str, value: &[u8]) -> Self {
        debug_assert!(header_name_len(format!("{name}:").as_bytes()) == Some(name.len()));
        let mut text = Vec::with_capacity(name.len() + 2 + value.len());
        text.extend_from_slice(name.as_bytes());
        text.extend_from_slice(b": ");
        text.extend_from_slice(value);
        Self {
            text,
            name_len: name.len(),
        }
    }

    /// Parses a whole field in cleanup's form (`Name: value\n\tmore`); `None` if it does not
    /// start with a header name. Used for configured texts such as
    /// undisclosed_recipients_header.
    pub fn parse(text: &[u8]) -> Option<Self> {
        let first_end = text.iter().position(|&c| c == b'\n').unwrap_or(text.len());
        let mut field = Self::from_first_line(&text[..first_end])?;
        field.text.extend_from_slice(&text[first_end..]);
        Some(field)
    }

    /// The name as it was written (case preserved).
    pub fn name(&self) -> &[u8] {
        &self.text[..self.name_len]
    }

    /// Case-insensitive name comparison (RFC 5322 1.2.2: field names are case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.name().eq_ignore_ascii_case(name.as_bytes())
    }

    /// Everything after the colon, folding kept.
    pub fn raw_value(&self) -> &[u8] {
        // Invariant: text[name_len] is the colon (from_first_line and new put it there).
        &self.text[self.name_len + 1..]
    }

    /// The value with leading blanks skipped, folding kept: what cleanup logs as
    /// `message-id=VALUE`.
    pub fn trimmed_value(&self) -> &[u8] {
        let v = self.raw_value();
        let skip = v.iter().take_while(|c| c.is_ascii_whitespace()).count();
        &v[skip..]
    }

    /// The value unfolded (RFC 5322 2.2.3: remove each CRLF that precedes a blank).
    pub fn unfolded_value(&self) -> Vec<u8> {
        unfold(self.raw_value())
    }

    /// The whole field, lines separated by `\n`, no final newline.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text
    }

    /// The physical lines of the field.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.text.split(|&c| c == b'\n')
    }

    /// Cleanup's table entry for this field's name, if it knows the name.
    pub fn known(&self) -> Option<&'static KnownHeader> {
        known_header(self.name())
    }

    pub(crate) fn text_mut(&mut self) -> &mut Vec<u8> {
        &mut self.text
    }
}

impl fmt::Debug for HeaderField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HeaderField({:?})", String::from_utf8_lossy(&self.text))
    }
}

/// Removes folding: every `\n` (or `\r\n`) that is followed by a blank goes (RFC 5322 2.2.3);
/// the blank stays.
pub fn unfold(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let c = value[i];
        if c == b'\r' && value.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        if c != b'\n' {
            out.push(c);
        }
        i += 1;
    }
    out
}

/// Folds an address-list value the way cleanup(8) re-folds a header whose addresses were
/// rewritten (cleanup_fold_header in cleanup_message.c): the input has one item per line
/// (`a,\nb,\nc`); lines are joined with a space while the output line stays under 70 bytes,
/// and every further line is started with a tab.
pub fn fold_address_lines(field: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(field.len() + 8);
    let mut line_start = 0;
    for (n, piece) in field.split(|&c| c == b'\n').enumerate() {
        if n > 0 {
            if out.len() - line_start + 1 + piece.len() < 70 {
                out.push(b' ');
            } else {
                out.push(b'\n');
                line_start = out.len();
                if !matches!(piece.first(), Some(b' ' | b'\t')) {
                    out.push(b'\t');
                }
            }
        }
        out.extend_from_slice(piece);
    }
    out
}

/// What cleanup writes of a field held in memory, given header_size_limit
/// (cleanup_out_header in cleanup_out.c, confirmed live): lines are kept whole while they end
/// within the limit; at the first line that would cross it, the field ends before that line
/// if the line starts beyond 90% of the limit (a "nice cut"), otherwise the text is cut at
/// exactly `limit` bytes (an "unkind cut", possibly mid-line).
pub fn output_cut(text: &[u8], limit: usize) -> &[u8] {
    let mut start = 0;
    loop {
        let end = text[start..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(text.len(), |p| start + p);
        if end > limit {
            // 0.9 * limit, computed as Postfix does in floating point.
            #[allow(clippy::cast_precision_loss)]
            let nice = start as f64 > 0.9 * limit as f64;
            return if nice {
                &text[..start.saturating_sub(1)]
            } else {
                &text[..limit]
            };
        }
        if end == text.len() {
            return text;
        }
        start = end + 1;
    }
}

/// What cleanup does with a header it knows by name (global/header_opts.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownHeader {
    /// The preferred spelling, e.g. `Message-Id` (Postfix's own, used when it adds one).
    pub name: &'static str,
    /// Which of cleanup's header kinds this is.
    pub kind: HeaderKind,
    /// The header carries sender addresses (canonical/masquerade rewriting of senders).
    pub sender: bool,
    /// The header carries recipient addresses.
    pub recipient: bool,
    /// A `Resent-` header: its presence makes cleanup add Resent- versions of missing headers.
    pub resent: bool,
    /// A MIME header (Content-*, MIME-Version): mime_header_checks instead of header_checks.
    pub mime: bool,
}

/// The header kinds cleanup treats specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum HeaderKind {
    ApparentlyTo,
    Bcc,
    Cc,
    ContentDescription,
    ContentDisposition,
    ContentId,
    ContentLength,
    ContentTransferEncoding,
    ContentType,
    DeliveredTo,
    DispositionNotificationTo,
    Date,
    ErrorsTo,
    From,
    MailFollowupTo,
    MessageId,
    MimeVersion,
    Received,
    ReplyTo,
    ResentBcc,
    ResentCc,
    ResentDate,
    ResentFrom,
    ResentMessageId,
    ResentReplyTo,
    ResentSender,
    ResentTo,
    ReturnPath,
    ReturnReceiptTo,
    Sender,
    To,
}

/// Looks a header name up in cleanup's table, case-insensitively.
pub fn known_header(name: &[u8]) -> Option<&'static KnownHeader> {
    KNOWN
        .iter()
        .find(|k| k.name.as_bytes().eq_ignore_ascii_case(name))
}

const fn k(name: &'static str, kind: HeaderKind, flags: u8) -> KnownHeader {
    KnownHeader {
        name,
        kind,
        sender: flags & S != 0,
        recipient: flags & R != 0,
        resent: flags & RR != 0,
        mime: flags & M != 0,
    }
}
const S: u8 = 1;
const R: u8 = 2;
const RR: u8 = 4;
const M: u8 = 8;

/// One table, Postfix's names and flags (global/header_opts.c).
static KNOWN: &[KnownHeader] = &[
    k("Apparently-To", HeaderKind::ApparentlyTo, R),
    k("Bcc", HeaderKind::Bcc, R),
    k("Cc", HeaderKind::Cc, R),
    k("Content-Description", HeaderKind::ContentDescription, M),
    k("Content-Disposition", HeaderKind::ContentDisposition, M),
    k("Content-ID", HeaderKind::ContentId, M),
    k("Content-Length", HeaderKind::ContentLength, 0),
    k(
        "Content-Transfer-Encoding",
        HeaderKind::ContentTransferEncoding,
        M,
    ),
    k("Content-Type", HeaderKind::ContentType, M),
    k("Delivered-To", HeaderKind::DeliveredTo, 0),
    k(
        "Disposition-Notification-To",
        HeaderKind::DispositionNotificationTo,
        S,
    ),
    k("Date", HeaderKind::Date, 0),
    k("Errors-To", HeaderKind::ErrorsTo, S),
    k("From", HeaderKind::From, S),
    k("Mail-Followup-To", HeaderKind::MailFollowupTo, S),
    k("Message-Id", HeaderKind::MessageId, 0),
    k("MIME-Version", HeaderKind::MimeVersion, M),
    k("Received", HeaderKind::Received, 0),
    k("Reply-To", HeaderKind::ReplyTo, S),
    k("Resent-Bcc", HeaderKind::ResentBcc, R | RR),
    k("Resent-Cc", HeaderKind::ResentCc, R | RR),
    k("Resent-Date", HeaderKind::ResentDate, RR),
    k("Resent-From", HeaderKind::ResentFrom, S | RR),
    k("Resent-Message-Id", HeaderKind::ResentMessageId, RR),
    k("Resent-Reply-To", HeaderKind::ResentReplyTo, R | RR),
    k("Resent-Sender", HeaderKind::ResentSender, S | RR),
    k("Resent-To", HeaderKind::ResentTo, R | RR),
    k("Return-Path", HeaderKind::ReturnPath, S),
    k("Return-Receipt-To", HeaderKind::ReturnReceiptTo, S),
    k("Sender", HeaderKind::Sender, S),
    k("To", HeaderKind::To, R),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names() {
        let cases: &[(&str, Option<usize>)] = &[
            ("Subject: x", Some(7)),
            ("Subject : x", Some(7)),
            ("Subject\t: x", Some(7)),
            ("X-NoSpace:tight", Some(9)),
            ("X-Bad Name: x", None),
            (": no name", None),
            (" Subject: x", None),
            ("hello world", None),
            ("Subject", None),
            ("Sub\u{e9}ject: x", None),
            ("A:", Some(1)),
        ];
        for (line, want) in cases {
            assert_eq!(header_name_len(line.as_bytes()), *want, "{line}");
        }
    }

    #[test]
    fn first_line_normalises_space_colon() {
        let f = HeaderField::from_first_line(b"Subject : spaced").unwrap();
        assert_eq!(f.as_bytes(), b"Subject: spaced");
        assert!(f.is("SUBJECT"));
        let f = HeaderField::from_first_line(b"message-id:   <lower@example.org>").unwrap();
        assert_eq!(f.trimmed_value(), b"<lower@example.org>");
        assert_eq!(f.known().unwrap().kind, HeaderKind::MessageId);
    }

    #[test]
    fn unfolding() {
        assert_eq!(unfold(b" a\n\tb\r\n c"), b" a\tb c");
    }

    #[test]
    fn folding_address_lines() {
        let f = fold_address_lines(b"To: a@example.com,\nb@example.com");
        assert_eq!(f, b"To: a@example.com, b@example.com");
        let long = format!("To: {},\n{}", "a".repeat(60), "b".repeat(20));
        let f = fold_address_lines(long.as_bytes());
        assert_eq!(
            f,
            format!("To: {},\n\t{}", "a".repeat(60), "b".repeat(20)).into_bytes()
        );
    }

    // The cuts seen live with header_size_limit = 1000 (tests/reference/delivered.mbox,
    // cases c26..c28) and with the default 102400 (c17, c18).
    #[test]
    fn output_cuts() {
        // Nice cut: 9 continuation lines of 100 bytes kept, the 10th starts at 925 > 900.
        let mut t = b"X-Folded: start".to_vec();
        for i in 0..10 {
            t.extend_from_slice(format!("\n\t{i:02}{}", "n".repeat(97)).as_bytes());
        }
        assert_eq!(output_cut(&t, 1000).len(), 15 + 9 * 101);
        // Unkind cut: the second line starts at 856 < 900, so the text ends at byte 1000.
        let t = format!("X-U: {}\n\t{}", "u".repeat(850), "v".repeat(299));
        let cut = output_cut(t.as_bytes(), 1000);
        assert_eq!(cut.len(), 1000);
        assert_eq!(cut.split(|&c| c == b'\n').nth(1).unwrap().len(), 144);
        // One long line.
        let t = format!("X-One: {}", "o".repeat(1500));
        assert_eq!(output_cut(t.as_bytes(), 1000).len(), 1000);
        // Under the limit: unchanged.
        assert_eq!(output_cut(b"A: b\n\tc", 1000), b"A: b\n\tc");
        // 102400: 102 folded lines of 1001 bytes after a 15-byte first line.
        let mut t = b"X-Folded: start".to_vec();
        for i in 0..103 {
            t.extend_from_slice(format!("\n\t{i:04}{}", "b".repeat(995)).as_bytes());
        }
        assert_eq!(output_cut(&t, 102_400).len(), 102_117);
    }
}
