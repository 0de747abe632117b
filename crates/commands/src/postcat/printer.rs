//! postcat's output: Postfix 3.7's state machine over envelope, header and body
//! (postcat/postcat.c), fed with records in Postfix's names by the readers of Tern's
//! queue files ([`super::queuefile`]) and maildrop files ([`super::maildrop`]).
//!
//! The state starts at the envelope; the `MESSAGE CONTENTS` marker switches to the
//! header, the first text line that is neither a header (is_header) nor a continuation
//! (leading space or tab) switches to the body, the `HEADER EXTRACTED` marker back to the
//! envelope, and `MESSAGE FILE END` stops. `-e`, `-h` and `-b` say which states are
//! printed; `-o` prefixes the file offset (`%9lu `), `-d` the decimal Postfix record type
//! (`%3d `), `-v` names text records (`regular_text: `).
//!
//! Trust: the texts come from a file that may have been made by anyone (a path given on
//! the command line); they are written out as bytes, unchanged, as Postfix does.

use std::io::{self, Write};

/// Postfix's record types (global/rec_type.h), as `-d` prints them.
pub mod code {
    pub const SIZE: u8 = b'C';
    pub const TIME: u8 = b'T';
    pub const FULL: u8 = b'F';
    pub const FROM: u8 = b'S';
    pub const DONE: u8 = b'D';
    pub const RCPT: u8 = b'R';
    pub const ORCP: u8 = b'O';
    pub const ATTR: u8 = b'A';
    pub const MESG: u8 = b'M';
    pub const CONT: u8 = b'L';
    pub const NORM: u8 = b'N';
    pub const XTRA: u8 = b'X';
    pub const END: u8 = b'E';
    /// REC_TYPE_FILT (the same letter as REC_TYPE_CONT: Postfix tells them apart by
    /// the segment).
    pub const FILT: u8 = b'L';
    pub const RDR: u8 = b'>';
}

/// What to print (the command-line flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// `-e`.
    pub envelope: bool,
    /// `-h`.
    pub header: bool,
    /// `-b`.
    pub body: bool,
    /// `-o`.
    pub offsets: bool,
    /// `-d`.
    pub decimal: bool,
    /// `-v` (any count).
    pub verbose: bool,
}

impl Flags {
    /// No `-e`, `-h` or `-b`: all three, as Postfix does.
    #[must_use]
    pub fn with_default_parts(mut self) -> Self {
        if !(self.envelope || self.header || self.body) {
            self.envelope = true;
            self.header = true;
            self.body = true;
        }
        self
    }
}

/// The three markers of Postfix's queue file structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// REC_TYPE_MESG: the message content begins.
    Contents,
    /// REC_TYPE_XTRA: the content ends, the extracted segment begins.
    Extracted,
    /// REC_TYPE_END.
    End,
}

impl Marker {
    fn text(self) -> &'static str {
        match self {
            Marker::Contents => "MESSAGE CONTENTS",
            Marker::Extracted => "HEADER EXTRACTED",
            Marker::End => "MESSAGE FILE END",
        }
    }

    fn code(self) -> u8 {
        match self {
            Marker::Contents => code::MESG,
            Marker::Extracted => code::XTRA,
            Marker::End => code::END,
        }
    }
}

/// One record, as Postfix's postcat sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rec<'a> {
    /// A structure marker.
    Marker { offset: u64, marker: Marker },
    /// An envelope record printed as `NAME: VALUE` (`code` is Postfix's record type).
    Field {
        offset: u64,
        code: u8,
        name: &'a str,
        value: &'a str,
    },
    /// A line of the message content, without its newline. `more`: the line goes on
    /// in the next record (Postfix's REC_TYPE_CONT).
    Text {
        offset: u64,
        line: &'a [u8],
        more: bool,
    },
}

/// Whether to read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Envelope,
    Header,
    Body,
}

/// The state machine for one file.
pub struct Printer<'w> {
    out: &'w mut dyn Write,
    flags: Flags,
    path: String,
    /// `-s`: records before this offset are not shown.
    start: u64,
    state: State,
    print: bool,
    /// The previous printed record was an unterminated text piece.
    prev_cont: bool,
}

impl<'w> Printer<'w> {
    /// Starts a file named `path` (as Postfix's VSTREAM_PATH: `deferred/D/ID`, the
    /// path given, or `stdin`); prints the envelope banner when Postfix does.
    pub fn new(
        out: &'w mut dyn Write,
        flags: Flags,
        path: &str,
        start: u64,
    ) -> io::Result<Printer<'w>> {
        if start == 0 && flags.envelope {
            writeln!(out, "*** ENVELOPE RECORDS {path} ***")?;
        }
        Ok(Printer {
            out,
            flags,
            path: path.to_owned(),
            start,
            state: State::Envelope,
            print: flags.envelope,
            prev_cont: false,
        })
    }

    fn prefix(&mut self, offset: u64, code: u8) -> io::Result<()> {
        if self.flags.offsets {
            write!(self.out, "{offset:9} ")?;
        }
        if self.flags.decimal {
            write!(self.out, "{code:3} ")?;
        }
        Ok(())
    }

    /// Takes the next record.
    pub fn feed(&mut self, rec: &Rec<'_>) -> io::Result<Flow> {
        let offset = match rec {
            Rec::Marker { offset, .. } | Rec::Field { offset, .. } | Rec::Text { offset, .. } => {
                *offset
            }
        };
        if offset < self.start {
            // Postfix starts reading at the offset; what lies before it is never seen,
            // so it moves no state either.
            return Ok(Flow::Continue);
        }
        match *rec {
            Rec::Marker { offset, marker } => self.marker(offset, marker),
            Rec::Field {
                offset,
                code,
                name,
                value,
            } => {
                if self.print {
                    self.prefix(offset, code)?;
                    writeln!(self.out, "{name}: {value}")?;
                    self.prev_cont = false;
                }
                Ok(Flow::Continue)
            }
            Rec::Text { offset, line, more } => self.text(offset, line, more),
        }
    }

    fn marker(&mut self, offset: u64, marker: Marker) -> io::Result<Flow> {
        match marker {
            Marker::Contents => {
                self.banner(offset, marker)?;
                self.state = State::Header;
                self.print = self.flags.header;
            }
            Marker::Extracted => {
                if self.print && self.prev_cont {
                    self.out.write_all(b"\n")?;
                }
                self.banner(offset, marker)?;
                self.state = State::Envelope;
                self.print = self.flags.envelope;
                self.prev_cont = false;
                if !self.print {
                    return Ok(Flow::Stop);
                }
            }
            Marker::End => {
                self.banner(offset, marker)?;
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    fn banner(&mut self, offset: u64, marker: Marker) -> io::Result<()> {
        if self.flags.envelope {
            self.prefix(offset, marker.code())?;
            writeln!(self.out, "*** {} {} ***", marker.text(), self.path)?;
        }
        Ok(())
    }

    fn text(&mut self, offset: u64, line: &[u8], more: bool) -> io::Result<Flow> {
        if self.state == State::Header
            && (self.flags.header || self.flags.body)
            && !self.prev_cont
            && is_header(line) == 0
            && !matches!(line.first(), Some(b' ' | b'\t'))
        {
            self.state = State::Body;
            self.print = self.flags.body;
            if !self.print && !self.flags.envelope {
                return Ok(Flow::Stop);
            }
        }
        if !self.print {
            // Postfix remembers the type of printed records only.
            return Ok(Flow::Continue);
        }
        let code = if more { code::CONT } else { code::NORM };
        self.prefix(offset, code)?;
        if more {
            if self.state == State::Envelope || self.flags.verbose {
                self.out.write_all(b"unterminated_text: ")?;
            }
            self.out.write_all(line)?;
            let newline = self.state == State::Envelope || self.flags.verbose || self.flags.offsets;
            if newline {
                self.out.write_all(b"\n")?;
            }
            self.prev_cont = !newline;
        } else {
            if self.flags.verbose {
                self.out.write_all(b"regular_text: ")?;
            }
            self.out.write_all(line)?;
            self.out.write_all(b"\n")?;
            self.prev_cont = false;
        }
        Ok(Flow::Continue)
    }
}

/// Postfix's is_header(): the length of the header name when `line` starts with one
/// (printable ASCII other than `:`, optional spaces or tabs, then `:`), else 0.
pub fn is_header(line: &[u8]) -> usize {
    let mut len = 0;
    let mut after_space = false;
    for &c in line {
        match c {
            b':' => return if len > 0 { len } else { 0 },
            b' ' | b'\t' => {
                if len == 0 {
                    return 0;
                }
                after_space = true;
            }
            _ if c == 0 || !c.is_ascii() || c.is_ascii_control() || after_space => return 0,
            _ => len += 1,
        }
    }
    0
}

/// asctime(localtime(t)) without its newline, in the local time zone.
pub fn local_asctime(t: u64) -> String {
    let t = i64::try_from(t).unwrap_or(i64::MAX);
    crate::postqueue::format::asctime(t, tern_maillog::writer::local_utc_offset(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'a>(offset: u64, name: &'a str, value: &'a str) -> Rec<'a> {
        Rec::Field {
            offset,
            code: code::ATTR,
            name,
            value,
        }
    }

    fn text(offset: u64, line: &str) -> Rec<'_> {
        Rec::Text {
            offset,
            line: line.as_bytes(),
            more: false,
        }
    }

    fn marker(offset: u64, marker: Marker) -> Rec<'static> {
        Rec::Marker { offset, marker }
    }

    fn sample() -> Vec<Rec<'static>> {
        vec![
            field(12, "sender", "a@example.com"),
            marker(30, Marker::Contents),
            text(35, "Subject: x"),
            text(46, "X-Long: a"),
            text(56, " b"),
            text(59, ""),
            text(60, "body"),
            marker(65, Marker::Extracted),
            field(65, "named_attribute", "encoding=8bit"),
            marker(70, Marker::End),
            field(80, "never", "shown"),
        ]
    }

    fn render(flags: Flags, start: u64, recs: &[Rec<'_>]) -> String {
        let mut out = Vec::new();
        let mut p = Printer::new(&mut out, flags.with_default_parts(), "deferred/A/ID", start)
            .expect("write");
        for r in recs {
            if p.feed(r).expect("write") == Flow::Stop {
                break;
            }
        }
        String::from_utf8(out).expect("utf-8")
    }

    fn flags(s: &str) -> Flags {
        Flags {
            envelope: s.contains('e'),
            header: s.contains('h'),
            body: s.contains('b'),
            offsets: s.contains('o'),
            decimal: s.contains('d'),
            verbose: s.contains('v'),
        }
    }

    #[test]
    fn flag_combinations() {
        let all = "*** ENVELOPE RECORDS deferred/A/ID ***\nsender: a@example.com\n\
                   *** MESSAGE CONTENTS deferred/A/ID ***\nSubject: x\nX-Long: a\n b\n\nbody\n\
                   *** HEADER EXTRACTED deferred/A/ID ***\nnamed_attribute: encoding=8bit\n\
                   *** MESSAGE FILE END deferred/A/ID ***\n";
        let cases: &[(&str, &str)] = &[
            ("", all),
            ("ehb", all),
            ("h", "Subject: x\nX-Long: a\n b\n"),
            ("b", "\nbody\n"),
            ("bh", "Subject: x\nX-Long: a\n b\n\nbody\n"),
            (
                "e",
                "*** ENVELOPE RECORDS deferred/A/ID ***\nsender: a@example.com\n\
                 *** MESSAGE CONTENTS deferred/A/ID ***\n*** HEADER EXTRACTED deferred/A/ID ***\n\
                 named_attribute: encoding=8bit\n*** MESSAGE FILE END deferred/A/ID ***\n",
            ),
            (
                "hv",
                "regular_text: Subject: x\nregular_text: X-Long: a\nregular_text:  b\n",
            ),
            ("bo", "       59 \n       60 body\n"),
            ("hd", " 78 Subject: x\n 78 X-Long: a\n 78  b\n"),
        ];
        for (f, want) in cases {
            assert_eq!(render(flags(f), 0, &sample()), *want, "flags {f:?}");
        }
    }

    #[test]
    fn offsets_and_types_on_envelope_and_markers() {
        let got = render(flags("eod"), 0, &sample());
        assert!(got.starts_with("*** ENVELOPE RECORDS deferred/A/ID ***\n"));
        assert!(
            got.contains("       12  65 sender: a@example.com\n"),
            "{got}"
        );
        assert!(got.contains("       30  77 *** MESSAGE CONTENTS"), "{got}");
        assert!(got.ends_with("       70  69 *** MESSAGE FILE END deferred/A/ID ***\n"));
    }

    #[test]
    fn start_offset_skips_banner_and_earlier_records() {
        let got = render(flags(""), 56, &sample());
        // The content marker was skipped: the state is still the envelope, so the text
        // lines print as envelope records do (Postfix prints what it finds there).
        assert!(!got.contains("ENVELOPE RECORDS"), "{got}");
        assert!(got.starts_with(" b\n\nbody\n"), "{got}");
    }

    #[test]
    fn continued_lines() {
        let recs = [
            marker(0, Marker::Contents),
            Rec::Text {
                offset: 1,
                line: b"Subject: ab",
                more: true,
            },
            Rec::Text {
                offset: 5,
                line: b"cd",
                more: false,
            },
            Rec::Text {
                offset: 9,
                line: b"body",
                more: true,
            },
            marker(12, Marker::Extracted),
        ];
        assert_eq!(render(flags("h"), 0, &recs), "Subject: abcd\n");
        // Postfix remembers only printed records: with -b alone the header's second piece
        // is taken for the first body line (postcat.c's prev_type).
        assert_eq!(render(flags("b"), 0, &recs), "cd\nbody\n");
        // With -o a piece ends its line and counts as complete: the next piece is
        // judged as a line of its own (postcat.c sets rec_type to 0).
        assert_eq!(render(flags("ho"), 0, &recs), "        1 Subject: ab\n");
    }

    #[test]
    fn header_names() {
        let cases: &[(&str, usize)] = &[
            ("Subject: x", 7),
            ("Subject : x", 7),
            ("Subject\t:x", 7),
            ("X-A:", 3),
            (": x", 0),
            (" Subject: x", 0),
            ("Sub ject: x", 0),
            ("Subject x", 0),
            ("", 0),
            ("Sübject: x", 0),
            ("From foo", 0),
        ];
        for (line, want) in cases {
            assert_eq!(is_header(line.as_bytes()), *want, "{line:?}");
        }
    }
}
