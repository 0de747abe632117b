//! The byte-level pieces of the master.cf reader: logical lines, `{ }`-aware splitting into
//! fields, `{ }` extraction, `name = value` splitting and the sanitising of message text.
//!
//! These mirror the Postfix utility routines that `postconf` uses on master.cf (its logical
//! line reader, quoted tokenizer, parenthesis extractor and name=value splitter), so that the
//! same bytes give the same fields and the same warnings. They trust nothing: every function
//! takes arbitrary bytes and cannot panic.

/// Postfix's `ISSPACE`: ASCII `isspace` in the C locale (includes `\v` and `\f`).
pub(crate) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The field separators of a master.cf entry. Narrower than [`is_space`]: `\v` and `\f` are
/// whitespace for line continuation but not field separators.
pub(crate) fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Text as a C string sees it: everything before the first NUL byte. Postfix reads NUL bytes
/// into its line buffer but then handles the line as a C string, so the rest is lost.
pub(crate) fn c_str(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

pub(crate) use crate::text::printable;

/// One logical line: the physical lines it came from joined (without their newlines), and
/// the number of its first non-blank, non-comment physical line.
#[derive(Debug)]
pub(crate) struct LogicalLine {
    pub line: usize,
    pub text: Vec<u8>,
}

/// Postfix's logical line reader over a whole file held in memory.
///
/// Blank lines and `#` comment lines are dropped wherever they are, even between an entry and
/// its continuation lines; a line that starts with whitespace continues the logical line
/// before it. A logical line that itself starts with whitespace is dropped with a warning.
pub(crate) struct Lines<'a> {
    input: &'a [u8],
    pos: usize,
    lineno: usize,
    path: &'a str,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(input: &'a [u8], path: &'a str) -> Self {
        Lines {
            input,
            pos: 0,
            lineno: 0,
            path,
        }
    }

    /// The next logical line, or `None` at the end of the input. Warnings go to `warnings`
    /// in the order Postfix would print them.
    pub(crate) fn next_line(&mut self, warnings: &mut Vec<String>) -> Option<LogicalLine> {
        loop {
            let mut buf: Vec<u8> = Vec::new();
            let mut first_line = 0;
            loop {
                let start = buf.len();
                let rest = &self.input[self.pos.min(self.input.len())..];
                let (segment, newline) = match rest.iter().position(|&b| b == b'\n') {
                    Some(end) => (&rest[..end], true),
                    None => (rest, false),
                };
                buf.extend_from_slice(segment);
                self.pos += segment.len() + usize::from(newline);
                // A last line without a newline counts only when it has text.
                if newline || buf.len() > start {
                    self.lineno += 1;
                }
                match buf[start..].iter().position(|&b| !is_space(b)) {
                    None => buf.truncate(start),
                    Some(i) if buf[start + i] == b'#' => buf.truncate(start),
                    Some(_) => {
                        if start == 0 {
                            first_line = self.lineno;
                        }
                    }
                }
                if !newline {
                    break;
                }
                if !buf.is_empty() {
                    match self.input.get(self.pos) {
                        Some(&next) if next == b'#' || is_space(next) => {}
                        _ => break,
                    }
                }
            }
            if buf.is_empty() {
                return None;
            }
            if is_space(buf[0]) {
                // The message shows at most 30 bytes of the C string, and "..." when the
                // whole buffer (NUL bytes included) is longer than that.
                let shown = c_str(&buf);
                let shown = &shown[..shown.len().min(30)];
                let mut msg = self.path.as_bytes().to_vec();
                msg.extend_from_slice(b": logical line must not start with whitespace: \"");
                msg.extend_from_slice(shown);
                if buf.len() > 30 {
                    msg.extend_from_slice(b"...");
                }
                msg.push(b'"');
                warnings.push(printable(&msg));
                continue;
            }
            return Some(LogicalLine {
                line: first_line,
                text: buf,
            });
        }
    }
}

/// Splits an entry into fields on blanks, keeping `{ ... }` groups (nested, anywhere in a
/// field) together. An unbalanced `{` swallows the rest of the line into one field.
pub(crate) fn split_fields(text: &[u8]) -> Vec<Vec<u8>> {
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        while i < text.len() && is_blank(text[i]) {
            i += 1;
        }
        if i >= text.len() {
            return fields;
        }
        let start = i;
        let mut level = 0usize;
        while i < text.len() {
            let c = text[i];
            if c == b'{' {
                level += 1;
            } else if level > 0 && c == b'}' {
                level -= 1;
            } else if level == 0 && is_blank(c) {
                break;
            }
            i += 1;
        }
        fields.push(text[start..i].to_vec());
    }
}

/// Length of the balanced `{ ... }` group at the start of `text`, or 0 when it is not closed.
fn balanced_len(text: &[u8]) -> usize {
    if text.first() != Some(&b'{') {
        return 0;
    }
    let mut level = 1usize;
    for (i, &c) in text.iter().enumerate().skip(1) {
        if c == b'}' {
            level -= 1;
            if level == 0 {
                return i + 1;
            }
        } else if c == b'{' {
            level += 1;
        }
    }
    0
}

fn trim_space(mut text: &[u8]) -> &[u8] {
    while let [rest @ .., last] = text {
        if !is_space(*last) {
            break;
        }
        text = rest;
    }
    while let [first, rest @ ..] = text {
        if !is_space(*first) {
            break;
        }
        text = rest;
    }
    text
}

/// Takes the text out of `{ ... }` and trims whitespace around it. Like Postfix, it always
/// returns the best text it can find, with an error message when the braces were wrong:
/// an unclosed group gives everything after the `{`, text after the `}` is dropped.
pub(crate) fn extract_braced(token: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let quoted = |pre: &[u8]| {
        let mut m = pre.to_vec();
        m.extend_from_slice(b" in \"");
        m.extend_from_slice(token);
        m.push(b'"');
        m
    };
    if token.first() != Some(&b'{') {
        let err = quoted(b"no '{' at start of text");
        return (trim_space(token).to_vec(), Some(err));
    }
    let len = balanced_len(token);
    if len == 0 {
        return (
            trim_space(&token[1..]).to_vec(),
            Some(quoted(b"missing '}'")),
        );
    }
    let err = (len != token.len()).then(|| quoted(b"syntax error after '}'"));
    (trim_space(&token[1..len - 1]).to_vec(), err)
}

/// Splits `name = value` with whitespace trimmed around both; the error is Postfix's text.
pub(crate) fn split_nameval(text: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    let np = text
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(text.len());
    if np == text.len() || text[np] == b'=' {
        return Err("missing attribute name");
    }
    let ep = np
        + text[np..]
            .iter()
            .position(|&b| is_space(b) || b == b'=')
            .unwrap_or(text.len() - np);
    let eq = ep
        + text[ep..]
            .iter()
            .position(|&b| !is_space(b))
            .unwrap_or(text.len() - ep);
    if text.get(eq) != Some(&b'=') {
        return Err("missing '=' after attribute name");
    }
    Ok((&text[np..ep], trim_space(&text[eq + 1..])))
}

#[cfg(test)]
// Case tables are tuples of slices; naming each tuple type would not make them clearer.
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> (Vec<(usize, String)>, Vec<String>) {
        let mut warnings = Vec::new();
        let mut reader = Lines::new(input, "P");
        let mut out = Vec::new();
        while let Some(l) = reader.next_line(&mut warnings) {
            out.push((l.line, String::from_utf8_lossy(&l.text).into_owned()));
        }
        (out, warnings)
    }

    #[test]
    fn logical_lines() {
        let cases: &[(&[u8], &[(usize, &str)], &[&str])] = &[
            (b"", &[], &[]),
            (b"a b\n", &[(1, "a b")], &[]),
            (b"a b", &[(1, "a b")], &[]),
            (b"# c\n\na\n  b\nc\n", &[(3, "a  b"), (5, "c")], &[]),
            // Blank and comment lines do not end a logical line.
            (b"a\n\n# x\n  b\n", &[(1, "a  b")], &[]),
            (b"a\r\n  b\r\n", &[(1, "a\r  b\r")], &[]),
            (
                b"  x\nb\n",
                &[(2, "b")],
                &["P: logical line must not start with whitespace: \"  x\""],
            ),
            (
                b"\tabcdefghijklmnopqrstuvwxyz0123456789\n",
                &[],
                &[
                    "P: logical line must not start with whitespace: \"?abcdefghijklmnopqrstuvwxyz012...\"",
                ],
            ),
            (
                b"  \0a\nb\n",
                &[(2, "b")],
                &["P: logical line must not start with whitespace: \"  \""],
            ),
        ];
        for (input, want, warn) in cases {
            let (got, warnings) = lines(input);
            let want: Vec<(usize, String)> =
                want.iter().map(|(n, s)| (*n, (*s).to_string())).collect();
            assert_eq!(got, want, "{input:?}");
            assert_eq!(warnings, *warn, "{input:?}");
        }
    }

    #[test]
    fn fields() {
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"", &[]),
            (b"  foo  bar ", &[b"foo", b"bar"]),
            (b"foo { bar } baz", &[b"foo", b"{ bar }", b"baz"]),
            (b"foo{ bar } baz", &[b"foo{ bar }", b"baz"]),
            (b"foo { bar }baz", &[b"foo", b"{ bar }baz"]),
            (b"a {b {c d} e} f", &[b"a", b"{b {c d} e}", b"f"]),
            (b"a {b c", &[b"a", b"{b c"]),
            (b"a}b c", &[b"a}b", b"c"]),
            (b"a\x0bb\tc\rd", &[b"a\x0bb", b"c", b"d"]),
        ];
        for (input, want) in cases {
            let got = split_fields(input);
            let want: Vec<Vec<u8>> = want.iter().map(|s| s.to_vec()).collect();
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn braces() {
        let cases: &[(&[u8], &[u8], Option<&str>)] = &[
            (b"{ a = b }", b"a = b", None),
            (b"{}", b"", None),
            (b"{  }", b"", None),
            (b"{c = d", b"c = d", Some("missing '}' in \"{c = d\"")),
            (b"{x}y", b"x", Some("syntax error after '}' in \"{x}y\"")),
            (b"{a}}", b"a", Some("syntax error after '}' in \"{a}}\"")),
            (b"{a {b} c}", b"a {b} c", None),
        ];
        for (input, want, err) in cases {
            let (got, e) = extract_braced(input);
            assert_eq!(got, *want, "{input:?}");
            assert_eq!(e.map(|e| printable(&e)).as_deref(), *err, "{input:?}");
        }
    }

    #[test]
    fn nameval() {
        let cases: &[(&[u8], Result<(&[u8], &[u8]), &str>)] = &[
            (b"a=b", Ok((b"a", b"b"))),
            (b" a = b c  ", Ok((b"a", b"b c"))),
            (b"a=", Ok((b"a", b""))),
            (b"=x", Err("missing attribute name")),
            (b"", Err("missing attribute name")),
            (b"  ", Err("missing attribute name")),
            (b"novalue", Err("missing '=' after attribute name")),
            (b"a b=c", Err("missing '=' after attribute name")),
        ];
        for (input, want) in cases {
            assert_eq!(split_nameval(input), *want, "{input:?}");
        }
    }
}
