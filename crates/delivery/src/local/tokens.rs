//! The right-hand side of an alias, a `.forward` line or an `:include:` line, cut into the
//! destinations local(8) knows (aliases(5), local(8) "EXTERNAL FILE DELIVERY"): addresses,
//! `|command`, `/file/name`, `~/file`, `:include:/path`.
//!
//! Postfix parses these with its RFC 822 tokenizer (tok822_parse) and takes each address
//! between top-level commas; `Name <addr>` gives `addr`; comments are dropped; quoted
//! strings lose their quotes (`"|cmd arg"` is the command `cmd arg`). Then the first
//! character picks the kind (local/token.c).
//!
//! Security: the text is the alias owner's or the user's; nothing here fails on any input.

use tern_maps::aliases::{Token, internalize, scan};

/// One destination of an expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An address, in internal form (unquoted).
    Address(String),
    /// `|command`: the command text after the `|`.
    Command(String),
    /// `/file/name` (a trailing `/` is a Maildir).
    File(String),
    /// `~/file`: relative to the home directory of the current user (`~user` is refused).
    Home(String),
    /// `:include:/path`: the path after the prefix.
    Include(String),
}

/// Cuts `text` into destinations, in order (tok822_parse + deliver_token).
pub fn destinations(text: &str) -> Vec<Destination> {
    let tokens = scan(text);
    let mut out = Vec::new();
    let mut current: Vec<Token> = Vec::new();
    for t in tokens {
        if t == Token::Op(',') {
            push_address(&mut out, &current);
            current.clear();
        } else {
            current.push(t);
        }
    }
    push_address(&mut out, &current);
    out
}

fn push_address(out: &mut Vec<Destination>, tokens: &[Token]) {
    // Comments are not part of an address.
    let words: Vec<Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Comment(_)))
        .cloned()
        .collect();
    // `phrase <route-addr>`: the part inside the angle brackets.
    let inner: &[Token] = match (
        words.iter().position(|t| *t == Token::Op('<')),
        words.iter().rposition(|t| *t == Token::Op('>')),
    ) {
        (Some(open), Some(close)) if open < close => &words[open + 1..close],
        _ => &words,
    };
    if inner.is_empty() {
        return;
    }
    out.push(classify(&internalize(inner)));
}

/// deliver_token(): the kind of one internalized destination.
pub fn classify(text: &str) -> Destination {
    const INCLUDE: &str = ":include:";
    if text.starts_with('/') {
        Destination::File(text.to_owned())
    } else if text.starts_with('~') {
        Destination::Home(text.to_owned())
    } else if let Some(cmd) = text.strip_prefix('|') {
        Destination::Command(cmd.to_owned())
    } else if text.len() >= INCLUDE.len()
        && text.is_char_boundary(INCLUDE.len())
        && text[..INCLUDE.len()].eq_ignore_ascii_case(INCLUDE)
    {
        Destination::Include(text[INCLUDE.len()..].to_owned())
    } else {
        Destination::Address(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::Destination::{Address, Command, File, Home, Include};
    use super::*;

    #[test]
    fn alias_values() {
        let cases: Vec<(&str, Vec<Destination>)> = vec![
            ("root", vec![Address("root".into())]),
            (
                "a, b@example.com",
                vec![Address("a".into()), Address("b@example.com".into())],
            ),
            (
                "\"|/usr/bin/foo -x\"",
                vec![Command("/usr/bin/foo -x".into())],
            ),
            (
                "|/usr/bin/procmail",
                vec![Command("/usr/bin/procmail".into())],
            ),
            ("/var/log/mail.txt", vec![File("/var/log/mail.txt".into())]),
            ("/home/u/Maildir/", vec![File("/home/u/Maildir/".into())]),
            ("~/inbox", vec![Home("~/inbox".into())]),
            (
                ":include:/etc/postfix/list.inc",
                vec![Include("/etc/postfix/list.inc".into())],
            ),
            (
                ":INCLUDE:/x.inc, bob",
                vec![Include("/x.inc".into()), Address("bob".into())],
            ),
            (
                "Some Body <sb@example.org> (comment), , x",
                vec![Address("sb@example.org".into()), Address("x".into())],
            ),
            (
                "\"john smith\"@ex.com",
                vec![Address("john smith@ex.com".into())],
            ),
            ("", vec![]),
            ("  ,  ", vec![]),
        ];
        for (text, want) in cases {
            assert_eq!(destinations(text), want, "{text}");
        }
    }
}
