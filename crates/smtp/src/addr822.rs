//! The address inside a MAIL FROM, RCPT TO or VRFY argument, found the way Postfix 3.7's
//! smtpd finds it (smtpd.c extract_addr() over the RFC 822 parser of tok822_parse.c):
//! one outer `<...>` pair is stripped, an obsolete source route `@a,@b:` dropped, the
//! rest split into RFC 822 tokens and grouped into addresses from right to left; `<`
//! and `>` left at the top level are ignored, so `<<a@b>>`, `<a@b>>` and `< <a@b> >`
//! all name `a@b` and `<<>>` is the null address (verified live against 3.7.11), while
//! two addresses (`<a@b>x`, `<<<a@b>>>`) are refused.
//!
//! Only behaviour is reproduced here: the right-to-left grouping with its resync
//! commas, comments set aside, and the count of address and non-address forms that
//! strict_rfc821_envelopes looks at. The domain checks that Postfix leaves to
//! trivial-rewrite are in [`crate::params::extract_address`].
//!
//! # Security
//! The input is an untrusted command argument (at most a line, line_length_limit
//! bytes). Parsing allocates in proportion to it, loops are bounded by its length,
//! and nothing panics: every index is checked.

/// The outcome of parsing the text between the outer brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// The address forms found at the top level, each in internal form.
    pub addresses: Vec<String>,
    /// Top-level forms that are neither an address nor `<` / `>` (phrases, comments,
    /// the commas the parser inserts between words).
    pub non_address: usize,
}

/// Parses `text` as tok822_parse() does and reports its top-level forms.
pub(crate) fn parse(text: &str) -> Parsed {
    let (tokens, comments) = scan(text);
    let mut list = List::new(tokens);
    list.group_right_to_left();
    let mut parsed = Parsed {
        addresses: Vec::new(),
        non_address: comments,
    };
    let mut at = list.next[HEAD];
    // Bounded: every node is visited once.
    for _ in 0..list.kind.len() {
        if at == TAIL {
            break;
        }
        match &list.kind[at] {
            Kind::Addr(children) => parsed.addresses.push(list.internalize(children)),
            Kind::Op('<' | '>') => {}
            _ => parsed.non_address += 1,
        }
        at = list.next[at];
    }
    parsed
}

/// tok822's single-character operators: `|%!` and the RFC 822 specials.
const OPERATORS: &str = "|%!()<>@,;:\\\".[]";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Sentinel,
    /// An atom or a quoted string (both words), in internal form.
    Word(String),
    /// A domain literal's contents, without the brackets.
    DomainLiteral(String),
    Op(char),
    /// `:` that starts a named group.
    StartGroup,
    /// A grouped address: its member nodes, left to right.
    Addr(Vec<usize>),
}

/// Splits `text` into tokens as tok822_scan() does; comments are counted and dropped
/// (the parser only moves them aside: they are never part of an address).
fn scan(text: &str) -> (Vec<Kind>, usize) {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut comments = 0;
    let mut i = 0;
    let space = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if space(c) {
            continue;
        }
        if c == '(' {
            let mut level = 1;
            while i < chars.len() {
                let d = chars[i];
                i += 1;
                match d {
                    '(' => level += 1,
                    ')' => {
                        level -= 1;
                        if level == 0 {
                            break;
                        }
                    }
                    '\\' => i += 1,
                    _ => {}
                }
            }
            comments += 1;
        } else if c == '[' || c == '"' {
            let close = if c == '[' { ']' } else { '"' };
            let (s, next) = collect(&chars, i, |d| d != close);
            // COLLECT_SKIP_LAST: the closing character, if any, is consumed.
            i = (next + 1).min(chars.len());
            out.push(if c == '[' {
                Kind::DomainLiteral(s)
            } else {
                Kind::Word(s)
            });
        } else if c != '\\' && OPERATORS.contains(c) {
            out.push(Kind::Op(c));
        } else {
            let (s, next) = collect(&chars, i - 1, |d| !space(d) && !OPERATORS.contains(d));
            i = next.max(i);
            out.push(Kind::Word(s));
        }
    }
    (out, comments)
}

/// tok822's COLLECT: characters while `keep` holds, a backslash taking the next one
/// literally; white space inside becomes a space. Returns the text and the stop index.
fn collect(chars: &[char], mut i: usize, keep: impl Fn(char) -> bool) -> (String, usize) {
    let mut s = String::new();
    while let Some(&c) = chars.get(i) {
        let c = if c == '\\' {
            i += 1;
            match chars.get(i) {
                Some(&d) => d,
                None => break,
            }
        } else if keep(c) {
            c
        } else {
            break;
        };
        s.push(if matches!(c, '\t' | '\r' | '\n') {
            ' '
        } else {
            c
        });
        i += 1;
    }
    (s, i)
}

const HEAD: usize = 0;
const TAIL: usize = 1;
const DO_WORD: u8 = 1;
const DO_GROUP: u8 = 2;

/// tok822's doubly linked token list, in an arena: node 0 and 1 are the sentinels.
struct List {
    kind: Vec<Kind>,
    prev: Vec<usize>,
    next: Vec<usize>,
}

impl List {
    fn new(tokens: Vec<Kind>) -> Self {
        let mut l = Self {
            kind: vec![Kind::Sentinel, Kind::Sentinel],
            prev: vec![HEAD, HEAD],
            next: vec![TAIL, TAIL],
        };
        for k in tokens {
            let n = l.alloc(k);
            let last = l.prev[TAIL];
            l.link(last, n);
            l.link(n, TAIL);
        }
        l
    }

    fn alloc(&mut self, k: Kind) -> usize {
        self.kind.push(k);
        self.prev.push(HEAD);
        self.next.push(TAIL);
        self.kind.len() - 1
    }

    fn link(&mut self, a: usize, b: usize) {
        self.next[a] = b;
        self.prev[b] = a;
    }

    fn is_sentinel(&self, n: usize) -> bool {
        self.kind[n] == Kind::Sentinel
    }

    fn op(&self, n: usize) -> Option<char> {
        match self.kind[n] {
            Kind::Op(c) => Some(c),
            _ => None,
        }
    }

    /// tok822_group(): the nodes strictly between `left` and `right` become one
    /// address node, preceded by a resync comma when `comma`. Returns `left`.
    fn group(&mut self, left: usize, right: usize, comma: bool) -> usize {
        let first = self.next[left];
        if left == right || first == right {
            return left;
        }
        let mut members = Vec::new();
        let mut at = first;
        while at != right && members.len() < self.kind.len() {
            members.push(at);
            at = self.next[at];
        }
        let g = self.alloc(Kind::Addr(members));
        self.link(left, g);
        self.link(g, right);
        if comma {
            let c = self.alloc(Kind::Op(','));
            self.link(left, c);
            self.link(c, g);
        }
        left
    }

    /// tok822_parse_limit()'s right-to-left pass.
    fn group_right_to_left(&mut self) {
        let mut state = DO_WORD;
        let mut right = TAIL;
        let mut tp = self.prev[TAIL];
        // Bounded: each pass moves tp left or turns a `>`/`:` into a finished group;
        // the arena grows by at most two nodes per token.
        for _ in 0..4 * self.kind.len() + 8 {
            if self.is_sentinel(tp) {
                break;
            }
            match self.kind[tp].clone() {
                Kind::Op(';') => {
                    right = self.group(tp, right, true);
                    state = DO_GROUP | DO_WORD;
                }
                Kind::Op(':') if state & DO_GROUP != 0 => {
                    self.kind[tp] = Kind::StartGroup;
                    self.group(tp, right, false);
                    while !self.is_sentinel(tp) && self.op(tp) != Some(',') {
                        tp = self.prev[tp];
                    }
                    right = tp;
                    continue;
                }
                Kind::Op('>') => {
                    // The right side of a <route-addr>: group what lies to its right,
                    // then what lies between it and the matching `<`.
                    right = self.group(tp, right, true);
                    while !self.is_sentinel(tp) && self.op(tp) != Some('<') {
                        tp = self.prev[tp];
                    }
                    self.group(tp, right, false);
                    while !self.is_sentinel(tp)
                        && !matches!(self.op(tp), Some('>' | ';' | ',' | ':'))
                    {
                        tp = self.prev[tp];
                    }
                    right = tp;
                    state |= DO_WORD;
                    continue;
                }
                Kind::Word(_) | Kind::DomainLiteral(_) => {
                    if state & DO_WORD == 0 {
                        let left = self.group(tp, right, true);
                        right = self.next[left];
                    }
                    state &= !DO_WORD;
                }
                Kind::Op(',') => {
                    right = self.group(tp, right, false);
                    state |= DO_WORD;
                }
                _ => state |= DO_WORD,
            }
            tp = self.prev[tp];
        }
        self.group(HEAD, right, false);
    }

    /// tok822_internalize() of an address's members: no spaces inside an address.
    fn internalize(&self, members: &[usize]) -> String {
        let mut s = String::new();
        for &m in members {
            match &self.kind[m] {
                Kind::Word(w) => s.push_str(w),
                Kind::DomainLiteral(d) => {
                    s.push('[');
                    s.push_str(d);
                    s.push(']');
                }
                Kind::Op(c) => s.push(*c),
                Kind::StartGroup => s.push(':'),
                Kind::Addr(inner) => s.push_str(&self.internalize(inner)),
                Kind::Sentinel => {}
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_forms() {
        // (text between the outer brackets, addresses, non-address forms)
        let table: &[(&str, &[&str], usize)] = &[
            ("a@b", &["a@b"], 0),
            ("<a@b>", &["a@b"], 0),
            (" <a@b> ", &["a@b"], 0),
            ("a@b>", &["a@b"], 0),
            (">", &[], 0),
            ("<>", &[], 0),
            ("<", &["<"], 0),
            ("<a@b", &["<a@b"], 0),
            ("<<a@b>>", &["a@b>"], 0),
            ("a@b><c@d", &["a@b", "<c@d"], 1),
            ("a b@c", &["a", "b@c"], 1),
            ("Name <a@b>", &["a@b"], 1),
            ("a@b (comment)", &["a@b"], 1),
            ("\"q u\"@b", &["q u@b"], 0),
            ("a@[1.2.3.4]", &["a@[1.2.3.4]"], 0),
            ("a\\ b@c", &["a b@c"], 0),
            ("a@b,c@d", &["a@b", "c@d"], 1),
            ("g: a@b;", &["a@b"], 3),
            ("", &[], 0),
            ("\"unterminated", &["unterminated"], 0),
        ];
        for (text, addrs, non) in table {
            let p = parse(text);
            let want: Vec<String> = addrs.iter().map(|s| (*s).to_string()).collect();
            assert_eq!(p.addresses, want, "{text:?}");
            assert_eq!(p.non_address, *non, "{text:?}");
        }
    }
}
