//! Result text with `$number` references (regexp_table(5), pcre_table(5): "Substitution of
//! substrings from the matched expression into the result string is requested with $1,
//! $2, etc.; specify $$ to produce a $ character as output"). `${n}` and `$(n)` work too,
//! since Postfix parses the text with its macro parser (mac_parse()).
//!
//! The text is scanned once at open time; a bad reference gives Postfix's warnings and the
//! rule is skipped. Trust: any text is accepted as input; errors are warnings.

/// The message texts that differ between `regexp:` and `pcre:`.
#[derive(Debug, Clone, Copy)]
pub struct ReplaceTexts {
    /// `regexp` or `pcre`, as in `regexp map /path, line N: ...`.
    pub kind: &'static str,
    /// The words for `$0`: `out-of-range` in dict_regexp.c, `out of range` in dict_pcre.c.
    pub below_one: &'static str,
}

/// A parsed result text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    parts: Vec<Part>,
    max_sub: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Group(usize),
}

/// What the macro parser found in one piece of the text.
enum Piece<'a> {
    Literal(String),
    Name(&'a str),
}

impl Replacement {
    /// Parses `text` for the rule on line `line` of table `path`. On a bad reference, every
    /// warning Postfix gives is sent to `warn` (the last one being "bad replacement syntax:
    /// skipping this rule") and `None` comes back.
    pub fn parse(
        texts: ReplaceTexts,
        path: &str,
        line: usize,
        text: &str,
        warn: &dyn Fn(&str),
    ) -> Option<Replacement> {
        let where_ = format!("{} map {path}, line {line}", texts.kind);
        let mut parts = Vec::new();
        let mut max_sub = 0;
        let mut failed = false;
        let ok = mac_parse(text, warn, &mut |piece| match piece {
            Piece::Literal(s) => parts.push(Part::Text(s)),
            Piece::Name(name) => {
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
                    warn(&format!(
                        "{where_}: non-numeric replacement index \"{name}\""
                    ));
                    failed = true;
                    return;
                }
                // C's atoi(): a number too large for an int is out of range either way.
                let n = name.parse::<usize>().unwrap_or(usize::MAX);
                if n < 1 {
                    warn(&format!(
                        "{where_}: {} replacement index \"{name}\"",
                        texts.below_one
                    ));
                    failed = true;
                    return;
                }
                max_sub = max_sub.max(n);
                parts.push(Part::Group(n));
            }
        });
        if !ok || failed {
            warn(&format!(
                "{where_}: bad replacement syntax: skipping this rule"
            ));
            return None;
        }
        Some(Replacement { parts, max_sub })
    }

    /// The largest `$number` used (0 when the text is a constant).
    pub fn max_sub(&self) -> usize {
        self.max_sub
    }

    /// The result for a match whose group `n` is `group(n)`: an unset or empty group
    /// adds nothing.
    pub fn expand<'k>(&self, group: impl Fn(usize) -> Option<&'k [u8]>) -> String {
        let mut out = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(s) => out.extend_from_slice(s.as_bytes()),
                Part::Group(n) => {
                    if let Some(bytes) = group(*n) {
                        out.extend_from_slice(bytes);
                    }
                }
            }
        }
        // XXX: a group that splits a UTF-8 sequence (POSIX and PCRE match bytes here) gives
        // U+FFFD where Postfix would return the raw bytes.
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Postfix's mac_parse(): splits `value` into literal text (with `$$` made `$`) and `$name`,
/// `${name}`, `$(name)` references. Returns false on a syntax error (after warning as
/// Postfix does, without a table prefix). A literal piece is only reported at the end when
/// there was no error, as in Postfix.
fn mac_parse<'a>(value: &'a str, warn: &dyn Fn(&str), action: &mut dyn FnMut(Piece<'a>)) -> bool {
    let bytes = value.as_bytes();
    let mut buf = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            // Copy up to the next '$' in one go (keeps multi-byte characters whole).
            let end = value[i..].find('$').map_or(bytes.len(), |off| i + off);
            buf.push_str(&value[i..end]);
            i = end;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'$') {
            buf.push('$');
            i += 2;
            continue;
        }
        if !buf.is_empty() {
            action(Piece::Literal(std::mem::take(&mut buf)));
        }
        i += 1;
        let name: &str;
        if let Some(&open @ (b'{' | b'(')) = bytes.get(i) {
            {
                let close = if open == b'{' { b'}' } else { b')' };
                let start = i + 1;
                let mut level = 1;
                let mut end = start;
                loop {
                    match bytes.get(end) {
                        None => {
                            warn(&format!("truncated macro reference: \"{value}\""));
                            return false;
                        }
                        Some(&c) if c == open => level += 1,
                        Some(&c) if c == close => {
                            level -= 1;
                            if level == 0 {
                                break;
                            }
                        }
                        Some(_) => {}
                    }
                    end += 1;
                }
                name = &value[start..end];
                i = end + 1;
            }
        } else {
            {
                let start = i;
                while bytes
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    i += 1;
                }
                name = &value[start..i];
            }
        }
        if name.is_empty() {
            warn(&format!("empty macro name: \"{value}\""));
            return false;
        }
        action(Piece::Name(name));
    }
    if !buf.is_empty() {
        action(Piece::Literal(buf));
    }
    true
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const RE: ReplaceTexts = ReplaceTexts {
        kind: "regexp",
        below_one: "out-of-range",
    };

    fn parse(text: &str) -> (Option<Replacement>, Vec<String>) {
        let seen = Mutex::new(Vec::new());
        let r = Replacement::parse(RE, "/t", 3, text, &|w| {
            seen.lock().unwrap().push(w.to_owned());
        });
        (r, seen.into_inner().unwrap())
    }

    #[test]
    fn expands_like_postfix() {
        let groups: [Option<&[u8]>; 3] = [Some(b"all"), Some(b"one"), None];
        let cases = [
            ("plain", "plain", 0),
            ("a$$b", "a$b", 0),
            ("x$1-$2-$$-${1}y", "xone--$-oney", 2),
            ("$(1)$(2)", "one", 2),
            ("${01}", "one", 1),
        ];
        for (text, want, max) in cases {
            let (r, w) = parse(text);
            let r = r.unwrap_or_else(|| panic!("{text}: {w:?}"));
            assert_eq!(r.max_sub(), max, "{text}");
            assert_eq!(r.expand(|n| groups.get(n).copied().flatten()), want);
        }
    }

    #[test]
    fn bad_references_warn() {
        let skip = "regexp map /t, line 3: bad replacement syntax: skipping this rule";
        let cases: &[(&str, &[&str])] = &[
            (
                "$0",
                &[
                    "regexp map /t, line 3: out-of-range replacement index \"0\"",
                    skip,
                ],
            ),
            (
                "$b",
                &[
                    "regexp map /t, line 3: non-numeric replacement index \"b\"",
                    skip,
                ],
            ),
            (
                "$1a",
                &[
                    "regexp map /t, line 3: non-numeric replacement index \"1a\"",
                    skip,
                ],
            ),
            (
                "${{1}}",
                &[
                    "regexp map /t, line 3: non-numeric replacement index \"{1}\"",
                    skip,
                ],
            ),
            ("${1", &["truncated macro reference: \"${1\"", skip]),
            ("$", &["empty macro name: \"$\"", skip]),
            ("x $ y", &["empty macro name: \"x $ y\"", skip]),
            (
                "$a $b",
                &[
                    "regexp map /t, line 3: non-numeric replacement index \"a\"",
                    "regexp map /t, line 3: non-numeric replacement index \"b\"",
                    skip,
                ],
            ),
        ];
        for (text, want) in cases {
            let (r, w) = parse(text);
            assert!(r.is_none(), "{text}");
            assert_eq!(&w, want, "{text}");
        }
    }
}
