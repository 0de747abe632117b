//! The aliases(5) format that `postalias` builds tables from: `name: value, value, ...`.
//!
//! Lines are postmap's logical lines ([`crate::source::logical_lines`]: comments, blank
//! lines, continuation by leading white space). Each logical line is cut into RFC 822 tokens
//! the way Postfix's tok822 scanner does it (atoms, `"quoted strings"`, `(comments)`,
//! `[domain literals]`, and the operators `| % ! ) < > @ , ; : . ]`; a backslash quotes the
//! next character). The name is the tokens before the first `:` in internal (unquoted)
//! form; the value is the tokens after it in external (quoted) form, because local(8)
//! parses it again at delivery: so `a ,b` is stored as `a, b`, `a\ b` as `"a b"`, and
//! `:include:/file`, `|command`, `/file/name` and `user@remote` keep their text.
//!
//! A line with no `:`, or nothing before or after it, gets "need name:value pair"; a name
//! with `@` or `%` gets "name must be local"; both lines are skipped, as postalias(1) does.
//!
//! Trust: the file is data; nothing here panics on any input. Whether a value may run
//! commands or write files is decided at delivery time from the table's owner.

use crate::source;

/// One alias entry: the name in internal form (not folded: the table folds) and the value
/// in external form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasEntry {
    pub lineno: usize,
    pub name: String,
    pub value: String,
}

/// Reads every entry of an aliases file, warning about bad lines with Postfix's text, and
/// hands each entry to `each` in file order.
pub fn entries(data: &[u8], path: &str, warn: &dyn Fn(&str), each: &mut dyn FnMut(AliasEntry)) {
    for line in source::logical_lines(data, path, warn) {
        let n = line.lineno;
        match parse_line(&line.text) {
            Ok((name, value)) => each(AliasEntry {
                lineno: n,
                name,
                value,
            }),
            Err(LineError::NeedPair) => warn(&format!("{path}, line {n}: need name:value pair")),
            Err(LineError::NotLocal) => warn(&format!("{path}, line {n}: name must be local")),
        }
    }
}

/// Why a line is not an alias entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    NeedPair,
    NotLocal,
}

/// Splits one logical line into the name (internal form) and the value (external form).
pub fn parse_line(line: &str) -> Result<(String, String), LineError> {
    let tokens = scan(line);
    let colon = tokens
        .iter()
        .position(|t| *t == Token::Op(':'))
        .ok_or(LineError::NeedPair)?;
    if colon == 0 || colon + 1 == tokens.len() {
        return Err(LineError::NeedPair);
    }
    let name = &tokens[..colon];
    if name
        .iter()
        .any(|t| *t == Token::Op('@') || *t == Token::Op('%'))
    {
        return Err(LineError::NotLocal);
    }
    Ok((internalize(name), externalize(&tokens[colon + 1..])))
}

/// The entries postalias adds after the file's own (Sendmail and NIS compatibility): `@`
/// (Sendmail's "the alias database is complete" mark), the build time and the host name.
/// Their keys are stored as written, not folded.
pub fn trailer(now: u64, hostname: &str) -> [(String, String); 3] {
    [
        ("@".to_owned(), "@".to_owned()),
        ("YP_LAST_MODIFIED".to_owned(), format!("{now:010}")),
        ("YP_MASTER_NAME".to_owned(), hostname.to_owned()),
    ]
}

/// An RFC 822 token as Postfix's tok822 scanner makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Atom(String),
    /// The text between the quotes, unquoted.
    Quoted(String),
    /// The whole comment with its parentheses, as written.
    Comment(String),
    /// The text between the brackets, unquoted.
    DomainLiteral(String),
    Op(char),
}

/// tok822's operators: RFC 822's specials plus `|`, `%` and `!`.
const OPERATORS: &str = "|%!()<>@,;:\\\".[]";

fn is_operator(c: char) -> bool {
    OPERATORS.contains(c)
}

fn is_white(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Cuts `text` into tokens. Never fails: unclosed quotes, comments and literals run to the
/// end of the text, as in Postfix.
pub fn scan(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if is_white(c) {
            continue;
        }
        match c {
            '(' => {
                let mut body = String::from('(');
                let mut level = 1;
                while i < chars.len() {
                    let ch = chars[i];
                    body.push(ch);
                    i += 1;
                    if ch == '(' {
                        level += 1;
                    } else if ch == ')' {
                        level -= 1;
                        if level == 0 {
                            break;
                        }
                    } else if ch == '\\' {
                        if i >= chars.len() {
                            break;
                        }
                        body.push(chars[i]);
                        i += 1;
                    }
                }
                tokens.push(Token::Comment(body));
            }
            '[' => {
                let body = collect(&chars, &mut i, |ch| ch != ']');
                i = (i + 1).min(chars.len());
                tokens.push(Token::DomainLiteral(body));
            }
            '"' => {
                let body = collect(&chars, &mut i, |ch| ch != '"');
                i = (i + 1).min(chars.len());
                tokens.push(Token::Quoted(body));
            }
            _ if c != '\\' && is_operator(c) => tokens.push(Token::Op(c)),
            _ => {
                // The atom starts at this character, which may be a backslash.
                i -= 1;
                let body = collect(&chars, &mut i, |ch| !is_white(ch) && !is_operator(ch));
                // An atom that holds a space, a control or an operator character (put there
                // with a backslash) is quoted when written out.
                if body
                    .chars()
                    .any(|ch| ch == ' ' || ch.is_ascii_control() || is_operator(ch))
                {
                    tokens.push(Token::Quoted(body));
                } else {
                    tokens.push(Token::Atom(body));
                }
            }
        }
    }
    tokens
}

/// tok822's COLLECT: characters while `keep` holds; a backslash takes the next character
/// whatever it is; white space becomes a plain space.
fn collect(chars: &[char], i: &mut usize, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::new();
    while *i < chars.len() {
        let mut ch = chars[*i];
        if ch == '\\' {
            *i += 1;
            if *i >= chars.len() {
                break;
            }
            ch = chars[*i];
        } else if !keep(ch) {
            break;
        }
        out.push(if is_white(ch) { ' ' } else { ch });
        *i += 1;
    }
    out
}

/// Whether tok822 writes a space between `this` and `next`.
fn space_between(this: &Token, next: Option<&Token>) -> bool {
    let Some(next) = next else {
        return false;
    };
    if *this == Token::Op(',') || *next == Token::Op('<') {
        return true;
    }
    let word = |t: &Token| !matches!(t, Token::Op(_));
    word(this) && word(next)
}

/// Tokens back to text in internal form (quotes removed), as tok822_internalize does.
pub fn internalize(tokens: &[Token]) -> String {
    let mut out = String::new();
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::Atom(s) | Token::Quoted(s) | Token::Comment(s) => out.push_str(s),
            Token::DomainLiteral(s) => {
                out.push('[');
                out.push_str(s);
                out.push(']');
            }
            Token::Op(c) => out.push(*c),
        }
        if space_between(t, tokens.get(i + 1)) {
            out.push(' ');
        }
    }
    out
}

/// Tokens back to text in external form (quoted again), as tok822_externalize does: a
/// comma is always followed by one space.
pub fn externalize(tokens: &[Token]) -> String {
    let mut out = String::new();
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::Op(',') => {
                out.push_str(", ");
                continue;
            }
            Token::Atom(s) | Token::Comment(s) => out.push_str(s),
            Token::Quoted(s) => {
                out.push('"');
                quote_into(&mut out, s, "\"\\\r\n");
                out.push('"');
            }
            Token::DomainLiteral(s) => {
                out.push('[');
                quote_into(&mut out, s, "\\\r\n");
                out.push(']');
            }
            Token::Op(c) => out.push(*c),
        }
        if space_between(t, tokens.get(i + 1)) {
            out.push(' ');
        }
    }
    out
}

fn quote_into(out: &mut String, text: &str, special: &str) {
    for ch in text.chars() {
        if special.contains(ch) {
            out.push('\\');
        }
        out.push(ch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_postalias_stores_them() {
        let ok = |n: &str, v: &str| Ok((n.to_owned(), v.to_owned()));
        let cases = [
            ("root: admin, Bob", ok("root", "admin, Bob")),
            (
                "Admin:  a@b.c ,  \"|/bin/cmd x\"  ",
                ok("Admin", "a@b.c, \"|/bin/cmd x\""),
            ),
            ("empty:  cont: y", ok("empty", "cont:y")),
            ("x:y", ok("x", "y")),
            ("q\\:x: z", ok("q:x", "z")),
            ("x: a b c", ok("x", "a b c")),
            (
                "y: Foo <foo@bar>, (comment) z",
                ok("y", "Foo <foo@bar>, (comment) z"),
            ),
            ("z: a\\ b", ok("z", "\"a b\"")),
            ("w: :include:/x,|cmd", ok("w", ":include:/x, |cmd")),
            ("v: \"a b\"@c", ok("v", "\"a b\"@c")),
            ("u: [1.2.3.4] x", ok("u", "[1.2.3.4] x")),
            ("\"A B\": x", ok("A B", "x")),
            ("t\\ t: x", ok("t t", "x")),
            ("file: /var/log/f", ok("file", "/var/log/f")),
            ("ab@c: x", Err(LineError::NotLocal)),
            ("%a: x", Err(LineError::NotLocal)),
            (":nokey", Err(LineError::NeedPair)),
            ("noval:", Err(LineError::NeedPair)),
            ("nocolon value", Err(LineError::NeedPair)),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line), want, "{line:?}");
        }
    }

    #[test]
    fn never_panics_on_odd_text() {
        for text in [
            "\\", "\"", "(", "[", "a:\\", "a: (x\\", "a: [x\\", "a: \"x\\",
        ] {
            let _ = parse_line(text);
        }
    }
}
