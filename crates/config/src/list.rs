//! Postfix's list syntax: elements separated by commas and/or whitespace, `{ ... }` groups one
//! element that may hold spaces, `type:table` and `/file/name` elements kept whole.
//!
//! This is Postfix 3.7's mail_parm_split (mystrtokq then extpar), trusting nothing in the
//! text:
//!
//! - Separators are `,`, space, `\t`, `\r`, `\n`; runs of them count as one.
//! - Inside `{ }` (nested to any depth) separators do not split, so `inline:{ a=b, c=d }` is
//!   one element, kept verbatim with its braces and spaces. A `}` with no open `{` is an
//!   ordinary character.
//! - An element that starts with `{` loses its outer braces and the blanks just inside them:
//!   `{ LESS=-m -C }` gives `LESS=-m -C`, inner spacing kept.
//! - Such an element with no closing brace is fatal: `missing '}' in "{ a b"`; text right after
//!   the closing brace is fatal: `syntax error after '}' in "{a}b"`. Postfix prefixes both
//!   with the parameter name (`import_environment: missing '}' in ...`).
//!
//! Some Postfix lists (match lists such as `mynetworks`) keep the braces of a leading `{`;
//! [`split_keep_braces`] gives those elements.

/// Why a list did not parse; `Display` gives Postfix's message text, which Postfix prefixes
/// with `NAME: ` (the parameter name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// A `{` element whose braces do not balance.
    #[error("missing '}}' in \"{element}\"")]
    MissingClose { element: String },
    /// A `{...}` element with text after the closing brace.
    #[error("syntax error after '}}' in \"{element}\"")]
    TextAfterClose { element: String },
}

/// The separators of a Postfix list (CHARS_COMMA_SP).
const SEPARATORS: &[char] = &[',', ' ', '\t', '\r', '\n'];

/// Splits a list value into its elements.
pub fn split(text: &str) -> Result<Vec<String>, ListError> {
    split_keep_braces(text)
        .into_iter()
        .map(|element| strip_braces(&element))
        .collect()
}

/// Splits a list value into its elements, `{ }` groups kept verbatim (Postfix's mystrtokq).
pub fn split_keep_braces(text: &str) -> Vec<String> {
    let mut elements = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(SEPARATORS);
        if rest.is_empty() {
            return elements;
        }
        let mut depth = 0usize;
        let mut end = rest.len();
        for (at, ch) in rest.char_indices() {
            if ch == '{' {
                depth += 1;
            } else if depth > 0 && ch == '}' {
                depth -= 1;
            } else if depth == 0 && SEPARATORS.contains(&ch) {
                end = at;
                break;
            }
        }
        elements.push(rest[..end].to_string());
        rest = &rest[end..];
    }
}

/// An element as mail_parm_split leaves it: a leading `{...}` group loses its braces and the
/// blanks inside them; anything else is unchanged.
fn strip_braces(element: &str) -> Result<String, ListError> {
    let Some(inner) = element.strip_prefix('{') else {
        return Ok(element.to_string());
    };
    let mut depth = 1usize;
    let mut close = None;
    for (at, ch) in inner.char_indices() {
        if ch == '{' {
            depth += 1;
        } else if ch == '}' {
            depth -= 1;
            if depth == 0 {
                close = Some(at);
                break;
            }
        }
    }
    let Some(close) = close else {
        return Err(ListError::MissingClose {
            element: element.to_string(),
        });
    };
    if close + 1 < inner.len() {
        return Err(ListError::TextAfterClose {
            element: element.to_string(),
        });
    }
    let blank = |c: char| c.is_ascii() && crate::maincf::is_space(c as u8);
    Ok(inner[..close].trim_matches(blank).to_string())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn split_table() {
        // Expectations from Postfix 3.7's own mail_parm_split test (mail_parm_split.ref) and
        // the mystrtokq/extpar rules.
        let cases: &[(&str, Result<&[&str], &str>)] = &[
            (
                "TZ PATH=/bin:/usr/bin XAUTHORITY",
                Ok(&["TZ", "PATH=/bin:/usr/bin", "XAUTHORITY"]),
            ),
            (
                "TZ { LESS=-m -C -s -f -e } XAUTHORITY",
                Ok(&["TZ", "LESS=-m -C -s -f -e", "XAUTHORITY"]),
            ),
            (
                "{ LESS=-m -C -s -f -e } TZ XAUTHORITY",
                Ok(&["LESS=-m -C -s -f -e", "TZ", "XAUTHORITY"]),
            ),
            (
                "TZ XAUTHORITY { LESS=-m -C -s -f -e }",
                Ok(&["TZ", "XAUTHORITY", "LESS=-m -C -s -f -e"]),
            ),
            (
                "TZ { LESS=-m -C -s -f -e  XAUTHORITY",
                Err("missing '}' in \"{ LESS=-m -C -s -f -e  XAUTHORITY\""),
            ),
            (
                "TZ { LESS=-m -C -s -f -e }x XAUTHORITY",
                Err("syntax error after '}' in \"{ LESS=-m -C -s -f -e }x\""),
            ),
            ("a,b , c,,\td\r\ne", Ok(&["a", "b", "c", "d", "e"])),
            ("", Ok(&[])),
            (" ,, ", Ok(&[])),
            (
                "hash:/etc/postfix/virtual, inline:{ a=b, c=d } /file/name",
                Ok(&[
                    "hash:/etc/postfix/virtual",
                    "inline:{ a=b, c=d }",
                    "/file/name",
                ]),
            ),
            ("inline:{ a=b", Ok(&["inline:{ a=b"])),
            ("a} b", Ok(&["a}", "b"])),
            ("{ {a b} c }", Ok(&["{a b} c"])),
            ("{}", Ok(&[""])),
            ("{", Err("missing '}' in \"{\"")),
            ("{a}b", Err("syntax error after '}' in \"{a}b\"")),
        ];
        for (text, want) in cases {
            match (want, split(text)) {
                (Ok(want), Ok(got)) => assert_eq!(got, *want, "{text:?}"),
                (Err(want), Err(err)) => assert_eq!(err.to_string(), *want, "{text:?}"),
                (want, got) => panic!("{text:?}: want {want:?}, got {got:?}"),
            }
        }
        assert_eq!(split_keep_braces("a { b c }, d"), ["a", "{ b c }", "d"]);
    }

    proptest! {
        #[test]
        fn split_never_panics(text in "[{} ,a-c\t\u{e9}]{0,30}") {
            let elements = split_keep_braces(&text);
            for element in &elements {
                prop_assert!(!element.is_empty());
            }
            let _ = split(&text);
        }
    }
}
