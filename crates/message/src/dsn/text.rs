//! The small text transformations bounce(8) applies on the way out: printable(3), line_wrap(3)
//! at 79 columns with a 4-space hanging indent, quote_822_local(3) without the 8-bit-clean flag
//! (the X-Postfix-Sender: form), the "is this a UTF-8 address" test and the transliteration
//! that turns $mail_name into an RFC 822 atom.
//!
//! # Security
//! Every input here may hold bytes from the network (addresses, remote replies, headers of the
//! original message). Nothing indexes without a bound check; control characters are replaced
//! before they reach a notice.

/// Postfix's printable(3) with `?` (the bounce log reader's replacement) or another byte:
/// printable ASCII is kept; with `utf8` (util_utf8_enable, which follows smtputf8_enable) a
/// lead byte 0xC2..=0xFE followed by a continuation byte is kept with all the continuation
/// bytes after it; everything else becomes `replacement`.
pub(crate) fn printable(text: &[u8], utf8: bool, replacement: u8) -> Vec<u8> {
    let mut out = text.to_vec();
    let mut i = 0;
    while i < out.len() {
        let c = out[i];
        let next_cont = |j: usize, v: &[u8]| v.get(j).is_some_and(|&b| (0x80..0xc0).contains(&b));
        if c.is_ascii_graphic() || c == b' ' {
            // ok
        } else if utf8 && (194..=254).contains(&c) && next_cont(i + 1, &out) {
            while next_cont(i + 1, &out) {
                i += 1;
            }
        } else {
            out[i] = replacement;
        }
        i += 1;
    }
    out
}

/// The column limit and hanging indent of bounce_notify_util.c's bounce_print_wrap().
const WRAP_LENGTH: usize = 79;
const WRAP_INDENT: usize = 4;

/// line_wrap(3) as bounce(8) calls it: words (separated by space or tab) are gathered until the
/// next word would pass column 79; the first line is not indented, every later one by four
/// spaces (and so gets 75 columns). A single word longer than the limit stays whole. Trailing
/// white space of each piece is dropped. Each returned line has no newline.
pub(crate) fn wrap(text: &[u8]) -> Vec<Vec<u8>> {
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let piece = |from: usize, to: usize, indent: usize| {
        let mut end = to;
        while end > from && is_space(text[end - 1]) {
            end -= 1;
        }
        let mut line = vec![b' '; indent];
        line.extend_from_slice(&text[from..end]);
        line
    };
    let mut lines = Vec::new();
    let mut curr_indent = 0;
    let mut curr_len = WRAP_LENGTH;
    let mut start_line = 0;
    let mut word = Some(0);
    while let Some(mut w) = word {
        let next_space = w + text[w..]
            .iter()
            .position(|&c| c == b' ' || c == b'\t')
            .unwrap_or(text.len() - w);
        if w > start_line && next_space - start_line > curr_len {
            lines.push(piece(start_line, w, curr_indent));
            while w < text.len() && is_space(text[w]) {
                w += 1;
            }
            if start_line == 0 {
                curr_indent += WRAP_INDENT;
                curr_len -= WRAP_INDENT;
            }
            start_line = w;
        }
        // As in line_wrap.c, the next word is found from where this word's search ended,
        // not from the blanks skipped above.
        word = (next_space < text.len()).then_some(next_space + 1);
    }
    lines.push(piece(start_line, text.len(), curr_indent));
    lines
}

/// quote_822_local_flags(3) with no flags, as bounce(8) formats the original sender: unlike
/// the default (8-bit clean) form, a byte above 127 makes the local part a quoted string and
/// is itself preceded by a backslash. A source route (`@a,@b:`) is kept in front.
pub(crate) fn quote_822_local_7bit(addr: &[u8]) -> Vec<u8> {
    let start = if addr.first() == Some(&b'@') {
        addr.iter().position(|&c| c == b':').map_or(0, |p| p + 1)
    } else {
        0
    };
    let end = addr[start..]
        .iter()
        .rposition(|&c| c == b'@')
        .map_or(addr.len(), |p| start + p);
    let local = &addr[start..end];
    if is_dot_string_7bit(local) {
        return addr.to_vec();
    }
    let mut v = Vec::with_capacity(addr.len() + 4);
    v.extend_from_slice(&addr[..start]);
    v.push(b'"');
    for &c in local {
        if c > 127 || matches!(c, b'"' | b'\\' | b'\r') {
            v.push(b'\\');
        }
        v.push(c);
    }
    v.push(b'"');
    v.extend_from_slice(&addr[end..]);
    v
}

fn is_dot_string_7bit(local: &[u8]) -> bool {
    if local.is_empty() || local[0] == b'.' || local[local.len() - 1] == b'.' {
        return false;
    }
    !local.windows(2).any(|w| w == b"..")
        && local.iter().all(|&c| {
            !(c > 127 || c == b' ' || c.is_ascii_control() || b"()<>@,;:\\\"[]".contains(&c))
        })
}

/// bounce_notify_util.c's IS_UTF8_ADDRESS: not empty, not all ASCII, and valid UTF-8.
pub(crate) fn is_utf8_address(addr: &[u8]) -> bool {
    !addr.is_empty() && !addr.is_ascii() && std::str::from_utf8(addr).is_ok()
}

/// $mail_name made into an RFC 822 atom for the `X-<name>-` fields: RFC 3464's
/// diagnostic-type is an atom, so bounce(8) turns white space and specials into `-`.
pub(crate) fn mail_name_atom(mail_name: &str) -> String {
    mail_name
        .chars()
        .map(|c| {
            if " \t\r\n()<>@,;:\\\".[]".contains(c) {
                '-'
            } else {
                c
            }
        })
        .collect()
}

/// The case-insensitive comparison of strcasecmp_utf8(3): full Unicode lower-casing of valid
/// UTF-8 when `utf8` is on, ASCII case folding otherwise.
pub(crate) fn same_address(a: &[u8], b: &[u8], utf8: bool) -> bool {
    if utf8 && let (Ok(x), Ok(y)) = (std::str::from_utf8(a), std::str::from_utf8(b)) {
        return x.to_lowercase() == y.to_lowercase();
    }
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_table() {
        let cases: &[(&[u8], bool, &[u8])] = &[
            (b"plain text", false, b"plain text"),
            (b"tab\there", false, b"tab?here"),
            (b"caf\xc3\xa9", true, b"caf\xc3\xa9"),
            (b"caf\xc3\xa9", false, b"caf??"),
            (b"bad \xff\x80", true, b"bad ??"),
            (b"lone \xc3", true, b"lone ?"),
            (b"nl\nx", true, b"nl?x"),
        ];
        for (input, utf8, want) in cases {
            assert_eq!(printable(input, *utf8, b'?'), *want, "{input:?}");
        }
    }

    fn wrapped(s: &str) -> Vec<String> {
        wrap(s.as_bytes())
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn wrap_table() {
        assert_eq!(wrapped("short line"), ["short line"]);
        assert_eq!(wrapped(""), [""]);
        let long = "<user@example.com>: host mx.example.com[192.0.2.1] said: 550 5.1.1 \
                    <user@example.com>: Recipient address rejected: User unknown in local \
                    recipient table (in reply to RCPT TO command)";
        let got = wrapped(long);
        assert_eq!(
            got,
            [
                "<user@example.com>: host mx.example.com[192.0.2.1] said: 550 5.1.1",
                "    <user@example.com>: Recipient address rejected: User unknown in local",
                "    recipient table (in reply to RCPT TO command)",
            ]
        );
        for l in &got {
            assert!(l.len() <= 79);
        }
        // One word longer than the limit stays whole, on a line of its own.
        let word = "x".repeat(100);
        assert_eq!(
            wrapped(&format!("a {word} b")),
            ["a", &format!("    {word}"), "    b"]
        );
    }

    #[test]
    fn quote_7bit_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"alice@example.com", b"alice@example.com"),
            (b"john smith@example.com", b"\"john smith\"@example.com"),
            (
                b"jos\xc3\xa9@example.com",
                b"\"jos\\\xc3\\\xa9\"@example.com",
            ),
            (b"@r1,@r2:a b@x", b"@r1,@r2:\"a b\"@x"),
            (b"MAILER-DAEMON", b"MAILER-DAEMON"),
        ];
        for (input, want) in cases {
            assert_eq!(quote_822_local_7bit(input), *want);
        }
    }

    #[test]
    fn atoms_and_addresses() {
        assert_eq!(mail_name_atom("Postfix"), "Postfix");
        assert_eq!(mail_name_atom("My Mail.Server"), "My-Mail-Server");
        assert!(is_utf8_address("jos\u{e9}@x".as_bytes()));
        assert!(!is_utf8_address(b"ascii@x"));
        assert!(!is_utf8_address(b"bad\xff@x"));
        assert!(same_address(b"Other.User@X", b"other.user@x", false));
        assert!(same_address(
            "\u{c9}@x".as_bytes(),
            "\u{e9}@x".as_bytes(),
            true
        ));
        assert!(!same_address(
            "\u{c9}@x".as_bytes(),
            "\u{e9}@x".as_bytes(),
            false
        ));
    }
}
