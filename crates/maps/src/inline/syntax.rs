//! The brace syntax that `inline:{...}`, `static:{...}` and `unionmap:{...}` share, as
//! Postfix's string helpers read it (util/balpar.c, extpar.c, mystrtok.c, split_qnameval.c):
//! a `{...}` group is one token even when it holds spaces or commas, and `key = value` may
//! have a quoted key.
//!
//! Trust: the text is configuration; every function answers for any input, without panics.

/// The separators of a table list (Postfix's CHARS_COMMA_SP).
pub(crate) const COMMA_SP: &[char] = &[',', ' ', '\t', '\r', '\n'];

/// The length of the `{...}` group that `text` starts with, including both braces; `None`
/// when `text` does not start with `{` or the group never closes.
pub(crate) fn balanced_len(text: &str) -> Option<usize> {
    if !text.starts_with('{') {
        return None;
    }
    let mut level = 0usize;
    for (at, ch) in text.char_indices() {
        match ch {
            '{' => level += 1,
            '}' => {
                level -= 1;
                if level == 0 {
                    return Some(at + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// The text inside a name that is exactly one `{...}` group with something inside it (the
/// test `inline:` and `unionmap:` apply to their whole name; no space is allowed around the
/// braces). `None` when the name fails it.
pub(crate) fn whole_group(name: &str) -> Option<&str> {
    match balanced_len(name) {
        Some(len) if len == name.len() && len > 2 => Some(&name[1..len - 1]),
        _ => None,
    }
}

/// Splits `text` at runs of `seps`, keeping each `{...}` group inside one token, as
/// mystrtokq() does: a `}` closes a group only when one is open.
pub(crate) fn tokens<'a>(text: &'a str, seps: &[char]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut level = 0usize;
    for (at, ch) in text.char_indices() {
        if start.is_none() {
            if seps.contains(&ch) {
                continue;
            }
            start = Some(at);
        }
        if ch == '{' {
            level += 1;
        } else if level > 0 && ch == '}' {
            level -= 1;
        } else if level == 0
            && seps.contains(&ch)
            && let Some(from) = start.take()
        {
            out.push(&text[from..at]);
        }
    }
    if let Some(from) = start {
        out.push(&text[from..]);
    }
    out
}

/// The inside of a token that starts with `{`, with surrounding white space removed, as
/// extpar() with EXTPAR_FLAG_STRIP does; `Err` carries Postfix's complaint.
pub(crate) fn strip_group(token: &str) -> Result<&str, String> {
    if !token.starts_with('{') {
        return Err(format!("no '{{' at start of text in \"{token}\""));
    }
    match balanced_len(token) {
        None => Err(format!("missing '}}' in \"{token}\"")),
        Some(len) if len != token.len() => Err(format!("syntax error after '}}' in \"{token}\"")),
        Some(len) => Ok(token[1..len - 1].trim_matches(is_space)),
    }
}

/// Splits `key = value` as split_qnameval() does: the key ends at white space or `=`
/// outside double quotes (a backslash protects the next character); quotes and backslashes
/// stay in the key; the value is trimmed of white space at both ends.
pub(crate) fn split_name_value(text: &str) -> Result<(&str, &str), &'static str> {
    let rest = text.trim_start_matches(is_space);
    if rest.is_empty() {
        return Err("no key found; expected format: key = value");
    }
    let mut in_quotes = false;
    let mut key_end = rest.len();
    let mut chars = rest.char_indices();
    while let Some((at, ch)) = chars.next() {
        match ch {
            '\\' if chars.next().is_none() => break,
            '"' => in_quotes = !in_quotes,
            c if (is_space(c) || c == '=') && !in_quotes => {
                key_end = at;
                break;
            }
            _ => {}
        }
    }
    if in_quotes {
        return Err("unbalanced '\"'");
    }
    let key = &rest[..key_end];
    let after = rest[key_end..].trim_start_matches(is_space);
    let Some(value) = after.strip_prefix('=') else {
        return Err("missing '=' after attribute name");
    };
    Ok((key, value.trim_matches(is_space)))
}

/// Postfix's ISSPACE: the ASCII white space characters.
pub(crate) fn is_space(ch: char) -> bool {
    matches!(ch, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_groups_together() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("foo bar", &["foo", "bar"]),
            ("{ bar }  ", &["{ bar }"]),
            ("foo { bar } baz", &["foo", "{ bar }", "baz"]),
            ("foo{ bar } baz", &["foo{ bar }", "baz"]),
            ("foo { bar }baz", &["foo", "{ bar }baz"]),
            (" a=b, ,c=d ", &["a=b", "c=d"]),
            ("a={b, c}, d=e", &["a={b, c}", "d=e"]),
        ];
        for (text, want) in cases {
            assert_eq!(tokens(text, COMMA_SP), *want, "{text:?}");
        }
    }

    #[test]
    fn name_value_pairs() {
        type Case<'a> = (&'a str, Result<(&'a str, &'a str), &'a str>);
        let cases: &[Case<'_>] = &[
            ("xx = yy", Ok(("xx", "yy"))),
            ("xx=yy", Ok(("xx", "yy"))),
            ("xx =", Ok(("xx", ""))),
            ("=b", Ok(("", "b"))),
            ("xx", Err("missing '=' after attribute name")),
            ("\"xx \" = yy", Ok(("\"xx \"", "yy"))),
            ("\"xx = yy", Err("unbalanced '\"'")),
            ("a\\=b=c", Ok(("a\\=b", "c"))),
            ("  ", Err("no key found; expected format: key = value")),
            ("a = b c ", Ok(("a", "b c"))),
        ];
        for (text, want) in cases {
            assert_eq!(split_name_value(text), *want, "{text:?}");
        }
    }

    #[test]
    fn groups() {
        assert_eq!(strip_group("{ a b }"), Ok("a b"));
        assert_eq!(
            strip_group("{a=b}x"),
            Err("syntax error after '}' in \"{a=b}x\"".to_owned())
        );
        assert_eq!(strip_group("{ a"), Err("missing '}' in \"{ a\"".to_owned()));
        assert_eq!(whole_group("{a}"), Some("a"));
        assert_eq!(whole_group("{}"), None);
        assert_eq!(whole_group("{a} "), None);
        assert_eq!(whole_group("{a}}"), None);
    }
}
