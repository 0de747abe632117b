//! Message text as Postfix prints it: shared by every part that builds a warning or fatal.

/// Text as Postfix's logging shows it: every byte that is not printable ASCII becomes `?`
/// (Postfix's msg layer does this to every warning and fatal line it prints, e.g. the `\r` of
/// a CRLF line in `missing '=' after attribute name: "b?"`, and `ö` as `??` in postconf).
/// Programs that turn Postfix's UTF-8 support on keep valid UTF-8: [`printable_utf8`].
pub fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

/// [`printable`] as Postfix's programs with UTF-8 support on (`smtputf8_enable = yes`, e.g.
/// postmap and postalias) show text: a valid UTF-8 character outside ASCII is kept; a
/// control character, and each byte that is not part of a valid sequence, becomes `?`
/// (`é\xff 3` shows as `é? 3`).
pub fn printable_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.extend(chunk.valid().chars().map(|c| {
            if c.is_ascii() && !(' '..='~').contains(&c) {
                '?'
            } else {
                c
            }
        }));
        out.extend(chunk.invalid().iter().map(|_| '?'));
    }
    out
}

/// The C library's text for an I/O error, as Postfix's `%m` prints it ("No such file or
/// directory"), without Rust's " (os error N)" suffix.
pub fn errno_text(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}

/// Column before which postconf's `-f` folds.
pub const LINE_LIMIT: usize = 80;
/// The indent of a folded continuation line.
pub const INDENT: &str = "    ";

/// postconf's `name = value` printer (Postfix's pcf_print_line): the words of `text`
/// separated by one space (runs of blanks collapse, blanks at the ends go), with `fold`
/// folded before a word that would reach column 80; newline included.
pub fn print_line(text: &str, fold: bool) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    let mut line_len = 0;
    for word in text
        .split([' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty())
    {
        if line_len > 0 {
            if !fold || line_len + word.len() < LINE_LIMIT {
                out.push(' ');
                line_len += 1;
            } else {
                out.push('\n');
                out.push_str(INDENT);
                line_len = INDENT.len();
            }
        }
        out.push_str(word);
        line_len += word.len();
    }
    out.push('\n');
    out
}

/// A main.cf time value in seconds: digits and an optional unit (`s`, `m`, `h`, `d`,
/// `w`); `default_unit` seconds per unit when none is given (Postfix's time parameters
/// each have their own default unit: seconds for most, days for maximal_queue_lifetime).
/// `None` for anything else, or a value that overflows.
pub fn time_seconds(text: &str, default_unit: u64) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "" => default_unit,
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_values() {
        for (text, unit, want) in [
            ("300", 1, Some(300)),
            ("300s", 1, Some(300)),
            ("5m", 1, Some(300)),
            ("1h", 1, Some(3600)),
            ("5d", 1, Some(432_000)),
            ("1w", 1, Some(604_800)),
            ("5", 86_400, Some(432_000)),
            (" 7s ", 86_400, Some(7)),
            ("", 1, None),
            ("5x", 1, None),
            ("m", 1, None),
            ("-1", 1, None),
            ("99999999999999999999", 1, None),
            ("18446744073709551615w", 1, None),
        ] {
            assert_eq!(time_seconds(text, unit), want, "{text:?} unit {unit}");
        }
    }

    #[test]
    fn printable_replaces_each_byte() {
        assert_eq!(printable(b"a\tb\r\xc3\xb6~"), "a?b???~");
        assert_eq!(printable("b\r\u{e9}".as_bytes()), "b???");
    }

    #[test]
    fn printable_utf8_keeps_valid_characters() {
        // Debian's postmap: `é\xff 3` is shown as `é? 3`.
        assert_eq!(printable_utf8(b"\xc3\xa9\xff 3"), "\u{e9}? 3");
        assert_eq!(printable_utf8(b"a\tb\r\xc3\x28~"), "a?b??(~");
        assert_eq!(printable_utf8(b"\xe2\x82"), "??");
    }

    #[test]
    fn print_line_normalises_and_folds() {
        assert_eq!(print_line("a  =\t b\n c", false), "a = b c\n");
        assert_eq!(print_line("name =", false), "name =\n");
        assert_eq!(print_line("", false), "\n");
        let long = format!("name = {}", ["word"; 20].join(" "));
        let folded = print_line(&long, true);
        assert!(folded.lines().all(|l| l.len() < 80), "{folded}");
        assert!(folded.lines().skip(1).all(|l| l.starts_with("    ")));
        assert_eq!(folded.split_whitespace().count(), 22);
    }

    #[test]
    fn errno_text_is_the_c_library_text() {
        let err = std::io::Error::from_raw_os_error(2);
        assert_eq!(errno_text(&err), "No such file or directory");
    }
}
