//! The source-file format that `postmap` builds tables from and `texthash:` reads
//! (postmap(1), "INPUT FILE FORMAT"): logical lines, then `key whitespace value` entries.
//!
//! Logical lines follow Postfix's readllines(): blank lines, whitespace-only lines and lines
//! whose first non-blank character is `#` are skipped anywhere, even between a line and its
//! continuation; a line that starts with whitespace continues the previous one (the line
//! break itself is dropped); the line number of a logical line is the number of its first
//! physical line. A logical line that still starts with whitespace (the file's very first
//! text is indented) is dropped with a warning, as Postfix does.
//!
//! Trust: the file is data. A logical line that is not UTF-8 is dropped with a warning, as
//! Postfix drops it; nothing here panics on any input.

/// One logical line and the number of its first physical line (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalLine {
    pub lineno: usize,
    pub text: String,
}

/// Splits `data` into logical lines. `path` names the file in warnings, which go to `warn`.
/// A logical line that is not UTF-8 is dropped with Postfix's warning (postmap, postalias
/// and texthash do this with `smtputf8_enable = yes`, the default since compatibility
/// level 1; Tern always does).
pub fn logical_lines(data: &[u8], path: &str, warn: &dyn Fn(&str)) -> Vec<LogicalLine> {
    let mut physical: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    // A final newline ends the last line; it does not start an empty one.
    if data.ends_with(b"\n") || data.is_empty() {
        physical.pop();
    }
    let mut out = Vec::new();
    let mut current: Option<(usize, Vec<u8>)> = None;
    for (index, line) in physical.iter().enumerate() {
        let lineno = index + 1;
        let start = line.iter().position(|&b| !is_space_byte(b));
        let Some(start) = start.filter(|&i| line[i] != b'#') else {
            continue;
        };
        let continues = start > 0;
        match current.as_mut() {
            Some((_, cur)) if continues => cur.extend_from_slice(line),
            _ => {
                if let Some(done) = current.take() {
                    finish_line(&mut out, done, path, warn);
                }
                current = Some((lineno, line.to_vec()));
            }
        }
    }
    if let Some(done) = current {
        finish_line(&mut out, done, path, warn);
    }
    out
}

/// A logical line's bytes become its text, unless they are not UTF-8.
fn finish_line(
    out: &mut Vec<LogicalLine>,
    (lineno, bytes): (usize, Vec<u8>),
    path: &str,
    warn: &dyn Fn(&str),
) {
    match String::from_utf8(bytes) {
        Ok(text) => push_line(out, LogicalLine { lineno, text }, path, warn),
        Err(e) => warn(&format!(
            "{path}, line {lineno}: non-UTF-8 input \"{}\" -- ignoring this line",
            tern_config::text::printable_utf8(e.as_bytes())
        )),
    }
}

fn is_space_byte(b: u8) -> bool {
    b.is_ascii() && is_space(char::from(b))
}

/// Keeps a finished logical line, or drops it with Postfix's warning when it starts with
/// whitespace (only the first text of a file can).
fn push_line(out: &mut Vec<LogicalLine>, line: LogicalLine, path: &str, warn: &dyn Fn(&str)) {
    if line.text.starts_with(is_space) {
        let shown: String = line.text.chars().take(30).collect();
        let more = if line.text.chars().count() > 30 {
            "..."
        } else {
            ""
        };
        warn(&format!(
            "{path}: logical line must not start with whitespace: \"{shown}{more}\""
        ));
    } else {
        out.push(line);
    }
}

/// The text of an I/O error as C's strerror() gives it (`No such file or directory`), for
/// Postfix's `%m`.
pub fn strerror(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => err.to_string(),
    }
}

/// Postfix's ISSPACE: the C locale's white space.
pub fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Why a logical line is not an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryError {
    /// A `"` opens a quoted key that never closes.
    Unbalanced,
    /// No key or no value.
    Format,
}

/// One `key whitespace value` entry. The key is as written (quotes and backslashes kept,
/// not folded: the table folds); the value is trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// The key ends in `:`, which Postfix flags as a probable aliases(5) file.
    pub colon_key: bool,
}

/// Splits a logical line at its first white space outside double quotes; a backslash
/// protects the next character from both (postmap(1): quoted keys, Postfix 3.2).
pub fn split_entry(line: &str) -> Result<Entry, EntryError> {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut split = line.len();
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if is_space(c) {
            if !in_quotes {
                split = i;
                break;
            }
        } else if c == '"' {
            in_quotes = !in_quotes;
        }
    }
    if in_quotes {
        return Err(EntryError::Unbalanced);
    }
    let key = &line[..split];
    let value = line[split..].trim_matches(is_space);
    if key.is_empty() || value.is_empty() {
        return Err(EntryError::Format);
    }
    Ok(Entry {
        key: key.to_owned(),
        value: value.to_owned(),
        colon_key: key.ends_with(':'),
    })
}

/// Who reads the file: the messages differ slightly between `postmap` and `texthash:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Postmap,
    Texthash,
}

/// A numbered entry of a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberedEntry {
    pub lineno: usize,
    pub key: String,
    pub value: String,
}

/// Reads every entry of a source file, warning about bad lines with Postfix's text, and
/// hands each entry to `each` in file order (so that the caller's warnings, such as
/// duplicates, interleave with these in line order as Postfix prints them).
pub fn entries(
    data: &[u8],
    path: &str,
    reader: Reader,
    warn: &dyn Fn(&str),
    each: &mut dyn FnMut(NumberedEntry),
) {
    for line in logical_lines(data, path, warn) {
        let n = line.lineno;
        match split_entry(&line.text) {
            Ok(entry) => {
                if entry.colon_key {
                    warn(&format!(
                        "{path}, line {n}: record is in \"key: value\" format; is this an alias file?"
                    ));
                }
                each(NumberedEntry {
                    lineno: n,
                    key: entry.key,
                    value: entry.value,
                });
            }
            Err(EntryError::Unbalanced) => warn(&format!(
                "{path}, line {n}: unbalanced '\"' in '{}' -- ignoring this line",
                line.text
            )),
            Err(EntryError::Format) => {
                // postmap.c and dict_thash.c word this one differently.
                let tail = match reader {
                    Reader::Postmap => "",
                    Reader::Texthash => " -- ignoring this line",
                };
                warn(&format!(
                    "{path}, line {n}: expected format: key whitespace value{tail}"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    fn lines(text: &str) -> (Vec<(usize, String)>, Vec<String>) {
        let warnings = RefCell::new(Vec::new());
        let got = logical_lines(text.as_bytes(), "f", &|w| {
            warnings.borrow_mut().push(w.to_owned());
        });
        (
            got.into_iter().map(|l| (l.lineno, l.text)).collect(),
            warnings.into_inner(),
        )
    }

    #[test]
    fn logical_lines_like_readllines() {
        type Case<'a> = (&'a str, &'a [(usize, &'a str)], usize);
        let cases: &[Case<'_>] = &[
            ("a b\n", &[(1, "a b")], 0),
            ("a b", &[(1, "a b")], 0),
            ("# c\n\n  \na b\n", &[(4, "a b")], 0),
            ("a\n  b\n# x\n\tc\nd e\n", &[(1, "a  b\tc"), (5, "d e")], 0),
            ("a\n  # not a continuation\n b\n", &[(1, "a b")], 0),
            ("  x y\na b\n", &[(2, "a b")], 1),
            ("", &[], 0),
        ];
        for (text, want, nwarn) in cases {
            let (got, warnings) = lines(text);
            let want: Vec<(usize, String)> =
                want.iter().map(|(n, t)| (*n, (*t).to_owned())).collect();
            assert_eq!(got, want, "{text:?}");
            assert_eq!(warnings.len(), *nwarn, "{text:?}");
        }
    }

    #[test]
    fn splits_entries() {
        let ok = |k: &str, v: &str| {
            Ok(Entry {
                key: k.to_owned(),
                value: v.to_owned(),
                colon_key: k.ends_with(':'),
            })
        };
        let cases = [
            ("a b", ok("a", "b")),
            ("key  val  ue  ", ok("key", "val  ue")),
            ("\"x y\" z", ok("\"x y\"", "z")),
            ("a\\ b c", ok("a\\ b", "c")),
            ("k: v", ok("k:", "v")),
            ("novalue", Err(EntryError::Format)),
            ("q\"  v", Err(EntryError::Unbalanced)),
        ];
        for (line, want) in cases {
            assert_eq!(split_entry(line), want, "{line:?}");
        }
    }
}
