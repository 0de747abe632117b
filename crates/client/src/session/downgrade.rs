//! 8BITMIME downgrade, sans-IO: the content of a message that claims 8-bit parts, for a
//! server without 8BITMIME, as Postfix's mime_state(3) with MIME_OPT_DOWNGRADE makes it
//! (smtp(8) unless disable_mime_output_conversion = yes; RFC 6152 3, RFC 2045 6.7).
//!
//! Only what claims to be 8-bit changes: a part whose Content-Transfer-Encoding is
//! `8bit` or `binary` gets `Content-Transfer-Encoding: quoted-printable` (a multipart or
//! message/* part `7bit`) and, for a leaf part, a quoted-printable body. A part without a
//! Content-Transfer-Encoding header is 7-bit by definition and passes unchanged, as
//! does every header (8-bit header text is left alone, as Postfix does).
//!
//! Trust: the content is our queue file's but was written by anyone: MIME structure may
//! be broken or hostile. Nesting is capped at mime_nesting_limit's default (100); header
//! text is kept whole (cleanup already capped it at header_size_limit).

/// mime_nesting_limit's default.
const MAX_DEPTH: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctype {
    Text,
    Message,
    Multipart,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stype {
    Rfc822,
    Global,
    Digest,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Headers of the message, of a multipart part, of a message/rfc822 body.
    Headers {
        primary: bool,
    },
    Body,
}

/// One open multipart: its boundary and the default type of its parts.
#[derive(Debug)]
struct Frame {
    boundary: Vec<u8>,
    digest: bool,
}

/// The line-by-line converter.
#[derive(Debug)]
pub struct Downgrader {
    state: State,
    ctype: Ctype,
    stype: Stype,
    /// The current part claims 8-bit (or binary) content.
    eight_bit: bool,
    header: Vec<u8>,
    stack: Vec<Frame>,
}

impl Default for Downgrader {
    fn default() -> Self {
        Self::new()
    }
}

impl Downgrader {
    pub fn new() -> Self {
        Self {
            state: State::Headers { primary: true },
            ctype: Ctype::Text,
            stype: Stype::Other,
            eight_bit: false,
            header: Vec::new(),
            stack: Vec::new(),
        }
    }

    /// One content line (without its LF); the output lines are appended to `out`.
    pub fn line(&mut self, line: &[u8], out: &mut Vec<Vec<u8>>) {
        if let State::Headers { primary } = self.state {
            if !self.header.is_empty() {
                if matches!(line.first(), Some(b' ' | b'\t')) {
                    self.header.push(b'\n');
                    self.header.extend_from_slice(line);
                    return;
                }
                self.flush_header(out);
            }
            if let Some(name_len) = header_name_len(line) {
                // Postfix drops blanks between the name and the colon.
                self.header.extend_from_slice(&line[..name_len]);
                let rest = &line[name_len..];
                let blanks = rest
                    .iter()
                    .take_while(|&&c| c == b' ' || c == b'\t')
                    .count();
                self.header.extend_from_slice(&rest[blanks..]);
                return;
            }
            self.end_of_headers(out);
            if line.is_empty() {
                self.after_blank_line();
            } else {
                if primary {
                    // No blank line between headers and body: Postfix adds one.
                    out.push(Vec::new());
                }
                self.state = State::Body;
            }
            // The blank line or body line goes out as a body line below.
            if line.is_empty() {
                out.push(Vec::new());
                return;
            }
        }
        self.body_line(line, out);
    }

    /// The end of the content: a header still pending goes out.
    pub fn finish(&mut self, out: &mut Vec<Vec<u8>>) {
        if let State::Headers { .. } = self.state {
            if !self.header.is_empty() {
                self.flush_header(out);
            }
            self.end_of_headers(out);
            self.state = State::Body;
        }
    }

    fn flush_header(&mut self, out: &mut Vec<Vec<u8>>) {
        let header = std::mem::take(&mut self.header);
        let colon = header
            .iter()
            .position(|&c| c == b':')
            .unwrap_or(header.len());
        let name = &header[..colon];
        let value = header.get(colon + 1..).unwrap_or_default();
        let mut is_cte = false;
        if name.eq_ignore_ascii_case(b"Content-Type") {
            self.content_type(value);
        } else if name.eq_ignore_ascii_case(b"Content-Transfer-Encoding") {
            is_cte = true;
            self.content_encoding(value);
        }
        // The part's own 8-bit CTE header is replaced at the end of the headers.
        if !(is_cte && self.eight_bit) {
            out.extend(header.split(|&c| c == b'\n').map(<[u8]>::to_vec));
        }
    }

    fn end_of_headers(&mut self, out: &mut Vec<Vec<u8>>) {
        if self.eight_bit {
            let enc = if self.ctype == Ctype::Multipart
                || (self.ctype == Ctype::Message && self.stype != Stype::Global)
            {
                "7bit"
            } else {
                "quoted-printable"
            };
            out.push(format!("Content-Transfer-Encoding: {enc}").into_bytes());
        }
    }

    fn after_blank_line(&mut self) {
        match (self.ctype, self.stype) {
            (Ctype::Message, Stype::Rfc822) => self.reset(State::Headers { primary: false }),
            (Ctype::Message, Stype::Global) if !self.eight_bit => {
                self.reset(State::Headers { primary: false });
            }
            (Ctype::Multipart, _) => {
                // The preamble.
                self.reset(State::Body);
                self.ctype = Ctype::Other;
            }
            _ => self.state = State::Body,
        }
    }

    fn reset(&mut self, state: State) {
        self.state = state;
        self.ctype = Ctype::Text;
        self.stype = Stype::Other;
        self.eight_bit = false;
    }

    fn body_line(&mut self, line: &[u8], out: &mut Vec<Vec<u8>>) {
        if line.len() > 2 && line.starts_with(b"--") {
            let found = self
                .stack
                .iter()
                .rposition(|f| line[2..].starts_with(&f.boundary));
            if let Some(level) = found {
                self.stack.truncate(level + 1);
                let blen = self.stack[level].boundary.len();
                if line[2 + blen..].starts_with(b"--") {
                    self.stack.pop();
                    self.reset(State::Body);
                    self.ctype = Ctype::Other;
                } else {
                    let digest = self.stack[level].digest;
                    self.reset(State::Headers { primary: false });
                    if digest {
                        self.ctype = Ctype::Message;
                        self.stype = Stype::Rfc822;
                    }
                }
            }
        }
        if self.eight_bit {
            quoted_printable(line, out);
        } else {
            out.push(line.to_vec());
        }
    }

    fn content_type(&mut self, value: &[u8]) {
        let mut tokens = Tokens { text: value };
        let first = tokens.until_semicolon();
        let word = |i: usize| match first.get(i) {
            Some(Tok::Word(w)) => Some(String::from_utf8_lossy(w).to_ascii_lowercase()),
            _ => None,
        };
        let slash = matches!(first.get(1), Some(Tok::Special(b'/')));
        let sub = if slash { word(2) } else { None };
        match word(0).as_deref() {
            Some("text") => self.ctype = Ctype::Text,
            Some("message") => {
                self.ctype = Ctype::Message;
                self.stype = match sub.as_deref() {
                    Some("rfc822") => Stype::Rfc822,
                    Some("global") => Stype::Global,
                    _ => Stype::Other,
                };
            }
            Some("multipart") => {
                self.ctype = Ctype::Multipart;
                let digest = sub.as_deref() == Some("digest");
                if digest {
                    self.stype = Stype::Digest;
                }
                // Bounded: each round consumes input.
                while !tokens.text.is_empty() {
                    let p = tokens.until_semicolon();
                    if let [Tok::Word(name), Tok::Special(b'='), Tok::Word(v), ..] = p.as_slice()
                        && name.eq_ignore_ascii_case(b"boundary")
                        && self.stack.len() < MAX_DEPTH
                    {
                        self.stack.push(Frame {
                            boundary: v.clone(),
                            digest,
                        });
                    }
                }
            }
            // Postfix leaves the type alone for other top-level types.
            _ => {}
        }
    }

    fn content_encoding(&mut self, value: &[u8]) {
        let mut tokens = Tokens { text: value };
        if let Some(Tok::Word(w)) = tokens.all().first() {
            match w.to_ascii_lowercase().as_slice() {
                b"8bit" | b"binary" => self.eight_bit = true,
                b"7bit" | b"quoted-printable" | b"base64" => self.eight_bit = false,
                _ => {}
            }
        }
    }
}

/// mime_state_downgrade(): one line as quoted-printable, soft breaks once a line passes
/// 72 characters, a trailing blank encoded.
fn quoted_printable(line: &[u8], out: &mut Vec<Vec<u8>>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut buf = Vec::with_capacity(80);
    for &c in line {
        if buf.len() > 72 {
            buf.push(b'=');
            out.push(std::mem::take(&mut buf));
        }
        if (c < 32 && c != b'\t') || c == b'=' || c > 126 {
            buf.extend_from_slice(&[b'=', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
        } else {
            buf.push(c);
        }
    }
    if let Some(&c @ (b' ' | b'\t')) = buf.last() {
        buf.pop();
        buf.extend_from_slice(&[b'=', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]);
    }
    out.push(buf);
}

/// is_header_buf(): the length of the header name when `line` starts a header
/// (`Name:` or the obsolete `Name :`).
fn header_name_len(line: &[u8]) -> Option<usize> {
    let name = line
        .iter()
        .take_while(|&&c| c.is_ascii_graphic() && c != b':')
        .count();
    if name == 0 {
        return None;
    }
    let blanks = line[name..]
        .iter()
        .take_while(|&&c| c == b' ' || c == b'\t')
        .count();
    (line.get(name + blanks) == Some(&b':')).then_some(name)
}

#[derive(Debug, PartialEq, Eq)]
enum Tok {
    Word(Vec<u8>),
    Special(u8),
}

/// RFC 2045 5.1 tokens (Postfix's header_token() with RFC2045_TSPECIALS): words and
/// quoted strings, tspecials alone, comments skipped.
struct Tokens<'a> {
    text: &'a [u8],
}

const TSPECIALS: &[u8] = b"()<>@,;:\\\"/[]?=";

impl Tokens<'_> {
    /// Tokens up to the next `;` (consumed).
    fn until_semicolon(&mut self) -> Vec<Tok> {
        let mut v = Vec::new();
        while let Some(t) = self.next_token() {
            if t == Tok::Special(b';') {
                break;
            }
            v.push(t);
        }
        v
    }

    fn all(&mut self) -> Vec<Tok> {
        std::iter::from_fn(|| self.next_token()).collect()
    }

    fn next_token(&mut self) -> Option<Tok> {
        loop {
            let (&c, rest) = self.text.split_first()?;
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.text = rest,
                b'(' => self.skip_comment(),
                b'"' => return Some(Tok::Word(self.quoted())),
                c if TSPECIALS.contains(&c) => {
                    self.text = rest;
                    return Some(Tok::Special(c));
                }
                _ => {
                    let n = self
                        .text
                        .iter()
                        .take_while(|&&c| c > b' ' && c != 127 && !TSPECIALS.contains(&c))
                        .count()
                        .max(1);
                    let w = self.text[..n].to_vec();
                    self.text = &self.text[n..];
                    return Some(Tok::Word(w));
                }
            }
        }
    }

    fn skip_comment(&mut self) {
        let mut depth = 0usize;
        let mut i = 0;
        while i < self.text.len() {
            match self.text[i] {
                b'\\' => i += 1,
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        self.text = &self.text[i + 1..];
                        return;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        self.text = &[];
    }

    fn quoted(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        let mut i = 1;
        while i < self.text.len() {
            match self.text[i] {
                b'\\' if i + 1 < self.text.len() => {
                    v.push(self.text[i + 1]);
                    i += 1;
                }
                b'"' => {
                    self.text = &self.text[i + 1..];
                    return v;
                }
                c => v.push(c),
            }
            i += 1;
        }
        self.text = &[];
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &str) -> String {
        let mut d = Downgrader::new();
        let mut out = Vec::new();
        for line in input.as_bytes().split(|&c| c == b'\n') {
            d.line(line, &mut out);
        }
        d.finish(&mut out);
        let lines: Vec<String> = out
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        lines.join("\n")
    }

    #[test]
    fn conversions() {
        let long = "\u{e9}".repeat(30);
        let table: Vec<(&str, String, String)> = vec![
            (
                "no CTE header: 7-bit by definition, unchanged",
                "Subject: x\n\ncaf\u{e9}".into(),
                "Subject: x\n\ncaf\u{e9}".into(),
            ),
            (
                "8bit leaf",
                "Subject: x\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\ncaf\u{e9} = ok \nend\t".into(),
                "Subject: x\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\ncaf=C3=A9 =3D ok=20\nend=09".into(),
            ),
            (
                "soft line breaks",
                format!("Content-Transfer-Encoding: 8BIT\n\n{long}"),
                format!(
                    "Content-Transfer-Encoding: quoted-printable\n\n{}=C3=\n=A9{}=\n{}",
                    "=C3=A9".repeat(12),
                    "=C3=A9".repeat(12),
                    "=C3=A9".repeat(5)
                ),
            ),
            (
                "7bit and base64 stay",
                "Content-Transfer-Encoding: base64\n\nAAAA".into(),
                "Content-Transfer-Encoding: base64\n\nAAAA".into(),
            ),
            (
                "multipart with an 8bit part",
                "Content-Type: multipart/mixed; boundary=\"b1\"\nContent-Transfer-Encoding: 8bit\n\npre\n--b1\nContent-Transfer-Encoding: 8bit\n\n\u{e9}\n--b1\n\nplain \u{e9}\n--b1--\nepi \u{e9}".into(),
                "Content-Type: multipart/mixed; boundary=\"b1\"\nContent-Transfer-Encoding: 7bit\n\npre\n--b1\nContent-Transfer-Encoding: quoted-printable\n\n=C3=A9\n--b1\n\nplain \u{e9}\n--b1--\nepi \u{e9}".into(),
            ),
            (
                "message/rfc822 part with 8bit nested body",
                "Content-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\nSubject: inner\nContent-Transfer-Encoding: 8bit\n\n\u{e9}".into(),
                "Content-Type: message/rfc822\nContent-Transfer-Encoding: 7bit\n\nSubject: inner\nContent-Transfer-Encoding: quoted-printable\n\n=C3=A9".into(),
            ),
            (
                "folded headers, comments, blanks before the colon",
                "Content-Type : text/plain (x)\nContent-Transfer-Encoding:\n (comment) 8bit\nX: y\n\tz\n\na".into(),
                "Content-Type: text/plain (x)\nX: y\n\tz\nContent-Transfer-Encoding: quoted-printable\n\na".into(),
            ),
            (
                "not a header: the body starts, after a blank line",
                "Subject: x\nContent-Transfer-Encoding: 8bit\nno header\n\u{e9}".into(),
                "Subject: x\nContent-Transfer-Encoding: quoted-printable\n\nno header\n=C3=A9".into(),
            ),
            (
                "headers only",
                "Content-Transfer-Encoding: 8bit".into(),
                "Content-Transfer-Encoding: quoted-printable".into(),
            ),
        ];
        for (what, input, want) in table {
            assert_eq!(run(&input), want, "{what}");
        }
    }

    #[test]
    fn nesting_is_capped() {
        use std::fmt::Write as _;

        let mut input = String::new();
        for i in 0..300 {
            let _ = writeln!(
                input,
                "Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}"
            );
        }
        let mut d = Downgrader::new();
        let mut out = Vec::new();
        for line in input.as_bytes().split(|&c| c == b'\n') {
            d.line(line, &mut out);
        }
        assert!(d.stack.len() <= MAX_DEPTH);
    }
}
