//! RFC 5322 address lists (section 3.4) as they appear in From:, To:, Cc:, Sender:,
//! Reply-To: and friends: a tokenizer, a forgiving parser, and Postfix's two address forms.
//!
//! Postfix keeps addresses in an *internal* form, unquoted (`john smith@example.com`), and
//! writes them in the *external* form, with the local part quoted when it is not a dot-atom
//! (`"john smith"@example.com`); quote_822_local(3) and unquote_822_local(3) convert between
//! the two, and [`quote_822_local`] / [`unquote_822_local`] here do the same.
//!
//! # Security
//! Header values come from anyone. The tokenizer accepts every byte string (unbalanced quotes,
//! comments and brackets end at the end of input, stray bytes become atoms), stops after
//! header_address_token_limit tokens as tok822_parse_limit(3) does, never recurses, and never
//! panics (a proptest below feeds it random bytes).

/// One lexical token of RFC 5322 3.2 / 3.4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A run of atom text (any byte that is not blank, control or special).
    Atom(Vec<u8>),
    /// The contents of a quoted string, quoted-pairs resolved.
    Quoted(Vec<u8>),
    /// The contents of a comment, nesting kept, without the outer parentheses.
    Comment(Vec<u8>),
    /// The contents of a domain literal, without the brackets.
    DomainLiteral(Vec<u8>),
    /// One of `<>@,;:.` (and a stray `)` or `]`).
    Special(u8),
}

/// RFC 5322 3.2.3 specials, as Postfix's LEX_822_SPECIALS.
const SPECIALS: &[u8] = b"()<>@,;:\\\".[]";

/// Splits a header value into tokens, at most `limit` of them (the rest is ignored, as
/// header_address_token_limit makes Postfix do).
pub fn tokenize(input: &[u8], limit: usize) -> Vec<Token> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < input.len() && out.len() < limit {
        let c = input[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'"' => {
                let (text, next) = delimited(input, i + 1, b'"', None);
                out.push(Token::Quoted(text));
                i = next;
            }
            b'(' => {
                let (text, next) = delimited(input, i + 1, b')', Some(b'('));
                out.push(Token::Comment(text));
                i = next;
            }
            b'[' => {
                let (text, next) = delimited(input, i + 1, b']', None);
                out.push(Token::DomainLiteral(text));
                i = next;
            }
            b'\\' => {
                // A quoted-pair outside quotes: Postfix treats it as atom text.
                let (text, next) = atom(input, i);
                out.push(Token::Atom(text));
                i = next;
            }
            _ if SPECIALS.contains(&c) => {
                out.push(Token::Special(c));
                i += 1;
            }
            _ => {
                let (text, next) = atom(input, i);
                out.push(Token::Atom(text));
                i = next;
            }
        }
    }
    out
}

/// Reads up to the closing `close` (honouring `\` quoting and, for comments, nesting);
/// returns the inner text and the index after the closing byte (or the input's end).
fn delimited(input: &[u8], mut i: usize, close: u8, open: Option<u8>) -> (Vec<u8>, usize) {
    let mut text = Vec::new();
    let mut depth = 0usize;
    while i < input.len() {
        let c = input[i];
        if c == b'\\' && i + 1 < input.len() {
            if open.is_some() {
                // Keep the backslash in comments: they are copied, not interpreted.
                text.push(c);
            }
            text.push(input[i + 1]);
            i += 2;
            continue;
        }
        if Some(c) == open {
            depth += 1;
        } else if c == close {
            if depth == 0 {
                return (text, i + 1);
            }
            depth -= 1;
        }
        text.push(c);
        i += 1;
    }
    (text, i)
}

fn atom(input: &[u8], mut i: usize) -> (Vec<u8>, usize) {
    let mut text = Vec::new();
    while i < input.len() {
        let c = input[i];
        if c == b'\\' && i + 1 < input.len() {
            text.extend_from_slice(&input[i..i + 2]);
            i += 2;
            continue;
        }
        if c.is_ascii_whitespace() || SPECIALS.contains(&c) {
            break;
        }
        text.push(c);
        i += 1;
    }
    (text, i)
}

/// One mailbox of an address list (RFC 5322 3.4), in Postfix's internal (unquoted) form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name (phrase), words joined by one space, quoting removed.
    pub display_name: Option<Vec<u8>>,
    /// An obsolete source route (`@a,@b`), RFC 5322 4.4, without the final colon.
    pub route: Option<Vec<u8>>,
    /// The local part, unquoted.
    pub local: Vec<u8>,
    /// The domain, if there was an `@`; a domain literal keeps its brackets.
    pub domain: Option<Vec<u8>>,
    /// Whether the address was written in angle brackets.
    pub angle: bool,
    /// Comments that followed the address, without parentheses.
    pub comments: Vec<Vec<u8>>,
}

impl Mailbox {
    /// The address in internal form: `[@route:]local[@domain]`, unquoted.
    pub fn internal(&self) -> Vec<u8> {
        let mut v = Vec::new();
        if let Some(r) = &self.route {
            v.extend_from_slice(r);
            v.push(b':');
        }
        v.extend_from_slice(&self.local);
        if let Some(d) = &self.domain {
            v.push(b'@');
            v.extend_from_slice(d);
        }
        v
    }

    /// The address in external form (quote_822_local of the internal form).
    pub fn external(&self) -> Vec<u8> {
        quote_822_local_bytes(&self.internal())
    }

    /// The mailbox as header text: `Name <addr>`, `<addr>` or `addr`, then any comments.
    pub fn to_header_text(&self) -> Vec<u8> {
        let mut v = Vec::new();
        if let Some(name) = &self.display_name {
            v.extend_from_slice(&phrase(name));
            v.push(b' ');
        }
        if self.angle || self.display_name.is_some() {
            v.push(b'<');
            v.extend_from_slice(&self.external());
            v.push(b'>');
        } else {
            v.extend_from_slice(&self.external());
        }
        for c in &self.comments {
            v.extend_from_slice(b" (");
            v.extend_from_slice(c);
            v.push(b')');
        }
        v
    }
}

/// One entry of an address list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A single mailbox.
    Mailbox(Mailbox),
    /// `name: member, member;` (RFC 5322 3.4), possibly empty (`undisclosed-recipients:;`).
    Group {
        /// The group's display name.
        name: Vec<u8>,
        /// The members.
        members: Vec<Mailbox>,
    },
}

/// A parsed address list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressList {
    /// The entries in order.
    pub entries: Vec<Entry>,
}

impl AddressList {
    /// Every mailbox, group members included, in order.
    pub fn mailboxes(&self) -> impl Iterator<Item = &Mailbox> {
        self.entries.iter().flat_map(|e| match e {
            Entry::Mailbox(m) => std::slice::from_ref(m),
            Entry::Group { members, .. } => members.as_slice(),
        })
    }

    /// Every mailbox, mutably (for the rewriting hooks).
    pub fn mailboxes_mut(&mut self) -> impl Iterator<Item = &mut Mailbox> {
        self.entries.iter_mut().flat_map(|e| match e {
            Entry::Mailbox(m) => std::slice::from_mut(m),
            Entry::Group { members, .. } => members.as_mut_slice(),
        })
    }

    /// The list as header text with one entry per line (`a,\nb`), the form
    /// [`crate::header::fold_address_lines`] folds.
    pub fn to_header_lines(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for (n, e) in self.entries.iter().enumerate() {
            if n > 0 {
                v.extend_from_slice(b",\n");
            }
            match e {
                Entry::Mailbox(m) => v.extend_from_slice(&m.to_header_text()),
                Entry::Group { name, members } => {
                    v.extend_from_slice(&phrase(name));
                    v.push(b':');
                    for (k, m) in members.iter().enumerate() {
                        v.extend_from_slice(if k == 0 { b" " } else { b", " });
                        v.extend_from_slice(&m.to_header_text());
                    }
                    v.push(b';');
                }
            }
        }
        v
    }
}

/// Parses an address list value, tolerating garbage: whatever cannot be a mailbox is
/// skipped up to the next comma. `limit` is header_address_token_limit.
pub fn parse_address_list(value: &[u8], limit: usize) -> AddressList {
    let tokens = tokenize(value, limit);
    let mut list = AddressList::default();
    let mut group: Option<(Vec<u8>, Vec<Mailbox>)> = None;
    let mut i = 0;
    while i < tokens.len() {
        let (item, next, stop) = parse_item(&tokens, i, group.is_none());
        i = next;
        match item {
            Item::GroupStart(name) => {
                if let Some((n, m)) = group.take() {
                    list.entries.push(Entry::Group {
                        name: n,
                        members: m,
                    });
                }
                group = Some((name, Vec::new()));
                continue;
            }
            Item::Mailbox(m) => match group.as_mut() {
                Some((_, members)) => members.push(m),
                None => list.entries.push(Entry::Mailbox(m)),
            },
            Item::Nothing => {}
        }
        if stop == Some(b';')
            && let Some((n, m)) = group.take()
        {
            list.entries.push(Entry::Group {
                name: n,
                members: m,
            });
        }
    }
    if let Some((name, members)) = group {
        list.entries.push(Entry::Group { name, members });
    }
    list
}

enum Item {
    Mailbox(Mailbox),
    GroupStart(Vec<u8>),
    Nothing,
}

/// Parses one entry starting at `i`; returns it, the index after its terminator, and the
/// terminator (`,` or `;`) if any.
fn parse_item(tokens: &[Token], mut i: usize, top: bool) -> (Item, usize, Option<u8>) {
    let mut words: Vec<&Token> = Vec::new();
    let mut comments: Vec<Vec<u8>> = Vec::new();
    let mut mailbox: Option<Mailbox> = None;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Special(c @ (b',' | b';')) => {
                let c = *c;
                return (finish(&words, mailbox, comments), i + 1, Some(c));
            }
            Token::Special(b':') if top && mailbox.is_none() && !words.is_empty() => {
                return (Item::GroupStart(phrase_text(&words)), i + 1, None);
            }
            Token::Special(b'<') if mailbox.is_none() => {
                let (m, next) = angle_addr(tokens, i + 1);
                let mut m = m;
                if !words.is_empty() {
                    m.display_name = Some(phrase_text(&words));
                }
                words.clear();
                mailbox = Some(m);
                i = next;
                continue;
            }
            Token::Comment(c) => comments.push(c.clone()),
            t if mailbox.is_none() => words.push(t),
            _ => {} // Garbage after an angle address: skipped.
        }
        i += 1;
    }
    (finish(&words, mailbox, comments), i, None)
}

fn finish(words: &[&Token], mailbox: Option<Mailbox>, comments: Vec<Vec<u8>>) -> Item {
    let mut m = match mailbox {
        Some(m) => m,
        None if words.is_empty() => return Item::Nothing,
        None => addr_spec(words),
    };
    m.comments = comments;
    Item::Mailbox(m)
}

/// `<[route:]addr-spec>` from after the `<` up to and including the `>`.
fn angle_addr(tokens: &[Token], mut i: usize) -> (Mailbox, usize) {
    let start = i;
    while i < tokens.len() && tokens[i] != Token::Special(b'>') {
        i += 1;
    }
    let inner: Vec<&Token> = tokens[start..i]
        .iter()
        .filter(|t| !matches!(t, Token::Comment(_)))
        .collect();
    let next = (i + 1).min(tokens.len());
    // RFC 5322 4.4 obs-route: "@a,@b:" before the addr-spec.
    let (route, spec) = match inner.iter().position(|t| **t == Token::Special(b':')) {
        Some(colon) if inner.first() == Some(&&Token::Special(b'@')) => {
            (Some(join(&inner[..colon])), &inner[colon + 1..])
        }
        _ => (None, &inner[..]),
    };
    let mut m = addr_spec(spec);
    m.route = route;
    m.angle = true;
    (m, next)
}

/// local-part [@ domain]; the last `@` splits them, as Postfix does.
fn addr_spec(words: &[&Token]) -> Mailbox {
    let at = words.iter().rposition(|t| **t == Token::Special(b'@'));
    let (local, domain) = match at {
        Some(at) => (join(&words[..at]), Some(join(&words[at + 1..]))),
        None => (join(words), None),
    };
    Mailbox {
        local,
        domain,
        ..Mailbox::default()
    }
}

/// Tokens concatenated in internal form (no quotes, no spaces).
fn join(words: &[&Token]) -> Vec<u8> {
    let mut v = Vec::new();
    for t in words {
        match t {
            Token::Atom(a) | Token::Quoted(a) => v.extend_from_slice(a),
            Token::DomainLiteral(d) => {
                v.push(b'[');
                v.extend_from_slice(d);
                v.push(b']');
            }
            Token::Special(c) => v.push(*c),
            Token::Comment(_) => {}
        }
    }
    v
}

/// A phrase's words joined by single spaces (RFC 5322 3.2.5), quotes removed.
fn phrase_text(words: &[&Token]) -> Vec<u8> {
    let mut v: Vec<u8> = Vec::new();
    for t in words {
        let piece: &[u8] = match t {
            Token::Atom(a) | Token::Quoted(a) | Token::DomainLiteral(a) => a,
            Token::Special(c) => std::slice::from_ref(c),
            Token::Comment(_) => continue,
        };
        if !v.is_empty() && !matches!(t, Token::Special(b'.')) {
            v.push(b' ');
        }
        v.extend_from_slice(piece);
    }
    v
}

/// A display name as header text: as is when it is atoms and blanks, else a quoted string
/// with `"`, `\`, CR and LF escaped (tok822_externalize's QSTRING case).
pub fn phrase(name: &[u8]) -> Vec<u8> {
    let plain = !name.is_empty()
        && name.iter().all(|&c| {
            c == b' ' || !(c.is_ascii_control() || SPECIALS.contains(&c) || c == b'%' || c == b'!')
        });
    if plain {
        return name.to_vec();
    }
    let mut v = vec![b'"'];
    for &c in name {
        if matches!(c, b'"' | b'\\' | b'\r' | b'\n') {
            v.push(b'\\');
        }
        v.push(c);
    }
    v.push(b'"');
    v
}

/// Postfix's quote_822_local(3) with its default flags (8-bit clean): the local part of
/// `[@route:]local[@domain]` (split at the last `@`) is written as a quoted string unless it
/// is a dot-atom. `john smith@example.com` gives `"john smith"@example.com`.
pub fn quote_822_local(addr: &str) -> String {
    String::from_utf8_lossy(&quote_822_local_bytes(addr.as_bytes())).into_owned()
}

/// [`quote_822_local`] on bytes.
pub fn quote_822_local_bytes(addr: &[u8]) -> Vec<u8> {
    let start = route_len(addr);
    let end = addr[start..]
        .iter()
        .rposition(|&c| c == b'@')
        .map_or(addr.len(), |p| start + p);
    let local = &addr[start..end];
    if is_dot_string(local) {
        return addr.to_vec();
    }
    let mut v = Vec::with_capacity(addr.len() + 4);
    v.extend_from_slice(&addr[..start]);
    v.push(b'"');
    for &c in local {
        if matches!(c, b'"' | b'\\' | b'\r') {
            v.push(b'\\');
        }
        v.push(c);
    }
    v.push(b'"');
    v.extend_from_slice(&addr[end..]);
    v
}

/// Postfix's unquote_822_local(3): removes the quotes and backslashes of the local part;
/// the domain is the part after the last `@` outside quotes.
pub fn unquote_822_local(addr: &str) -> String {
    let a = addr.as_bytes();
    let start = route_len(a);
    let mut v: Vec<u8> = a[..start].to_vec();
    let mut in_quote = false;
    let mut bare_at: Option<(usize, usize)> = None;
    let mut i = start;
    while i < a.len() {
        let c = a[i];
        if c == b'"' {
            in_quote = !in_quote;
            i += 1;
            continue;
        }
        if c == b'@' && !in_quote {
            bare_at = Some((v.len(), i));
        }
        if c == b'\\' {
            if i + 1 == a.len() {
                i += 1;
                continue;
            }
            i += 1;
        }
        v.push(a[i]);
        i += 1;
    }
    if let Some((dst, src)) = bare_at {
        v.truncate(dst);
        v.extend_from_slice(&a[src..]);
    }
    String::from_utf8_lossy(&v).into_owned()
}

/// The length of a leading `@route:` (with its colon), or 0.
fn route_len(addr: &[u8]) -> usize {
    if addr.first() == Some(&b'@')
        && let Some(colon) = addr.iter().position(|&c| c == b':')
    {
        return colon + 1;
    }
    0
}

/// RFC 5322 dot-atom, 8-bit allowed (quote_822_local.c's is_822_dot_string).
fn is_dot_string(local: &[u8]) -> bool {
    if local.is_empty() || local[0] == b'.' || local[local.len() - 1] == b'.' {
        return false;
    }
    !local.windows(2).any(|w| w == b"..")
        && local
            .iter()
            .all(|&c| !(c == b' ' || c.is_ascii_control() || b"()<>@,;:\\\"[]".contains(&c)))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn quoting() {
        let cases = [
            ("john smith@example.com", "\"john smith\"@example.com"),
            ("alice@example.com", "alice@example.com"),
            ("a.b@example.com", "a.b@example.com"),
            (".a@example.com", "\".a\"@example.com"),
            ("a..b@example.com", "\"a..b\"@example.com"),
            ("a\"b@x", "\"a\\\"b\"@x"),
            ("a@b@example.com", "\"a@b\"@example.com"),
            (
                "@r1,@r2:john smith@example.com",
                "@r1,@r2:\"john smith\"@example.com",
            ),
            ("MAILER-DAEMON", "MAILER-DAEMON"),
            ("", "\"\""),
            ("j\u{f6}rg@example.com", "j\u{f6}rg@example.com"),
        ];
        for (internal, external) in cases {
            assert_eq!(quote_822_local(internal), external, "{internal}");
            assert_eq!(unquote_822_local(external), internal, "{external}");
        }
    }

    fn internals(value: &str) -> Vec<String> {
        parse_address_list(value.as_bytes(), 10_240)
            .mailboxes()
            .map(|m| String::from_utf8_lossy(&m.internal()).into_owned())
            .collect()
    }

    #[test]
    fn address_lists() {
        let cases: &[(&str, &[&str])] = &[
            ("alice@example.com", &["alice@example.com"]),
            (
                "Alice <alice@example.com>, bob@example.org",
                &["alice@example.com", "bob@example.org"],
            ),
            ("\"Smith, John\" <john@example.com>", &["john@example.com"]),
            ("\"john smith\"@example.com", &["john smith@example.com"]),
            ("john (the man) @ example . com", &["john@example.com"]),
            ("undisclosed-recipients:;", &[]),
            ("friends: a@x, b@y; c@z", &["a@x", "b@y", "c@z"]),
            ("<@r1,@r2:u@example.com>", &["@r1,@r2:u@example.com"]),
            ("u@[192.0.2.1]", &["u@[192.0.2.1]"]),
            ("localuser", &["localuser"]),
            (",,, <>, ", &[""]),
            ("<a@b> junk, c@d", &["a@b", "c@d"]),
            ("\"unterminated@x", &["unterminated@x"]),
            ("John Q. Public <jqp@example.com>", &["jqp@example.com"]),
        ];
        for (value, want) in cases {
            assert_eq!(internals(value), *want, "{value}");
        }
    }

    #[test]
    fn display_names_and_groups() {
        let l = parse_address_list(b"\"Smith, John\" <john@example.com>, friends: a@x;", 100);
        let Entry::Mailbox(m) = &l.entries[0] else {
            panic!("not a mailbox")
        };
        assert_eq!(m.display_name.as_deref(), Some(&b"Smith, John"[..]));
        assert!(
            matches!(&l.entries[1], Entry::Group { name, members } if name == b"friends" && members.len() == 1)
        );
        assert_eq!(
            String::from_utf8(l.to_header_lines()).unwrap(),
            "\"Smith, John\" <john@example.com>,\nfriends: a@x;"
        );
        let l = parse_address_list(b"John Q. Public <jqp@example.com>", 100);
        assert_eq!(
            String::from_utf8(l.to_header_lines()).unwrap(),
            "\"John Q. Public\" <jqp@example.com>"
        );
    }

    #[test]
    fn phrases() {
        // Live, sendmail -F: "John Q. Public" is quoted, "John Smith" is not.
        assert_eq!(phrase(b"John Q. Public"), b"\"John Q. Public\"");
        assert_eq!(phrase(b"John Smith"), b"John Smith");
        assert_eq!(phrase(b"Odd \"q\" (c)"), b"\"Odd \\\"q\\\" (c)\"");
    }

    #[test]
    fn token_limit() {
        assert_eq!(tokenize(b"a@b, c@d, e@f", 3).len(), 3);
        assert_eq!(internals("a@b"), ["a@b"]);
        let l = parse_address_list(b"a@b, c@d, e@f", 5);
        assert_eq!(l.mailboxes().count(), 2);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(v in proptest::collection::vec(any::<u8>(), 0..200), limit in 0usize..50) {
            let l = parse_address_list(&v, limit);
            let _ = l.to_header_lines();
            for m in l.mailboxes() {
                let _ = m.external();
            }
            let s = String::from_utf8_lossy(&v);
            let _ = unquote_822_local(&quote_822_local(&s));
        }

        #[test]
        fn quote_round_trip(local in "[ -~]{0,20}", domain in "[a-z]{1,10}") {
            let internal = format!("{local}@{domain}");
            prop_assume!(!local.starts_with('@'));
            prop_assert_eq!(unquote_822_local(&quote_822_local(&internal)), internal);
        }
    }
}
