//! What `regexp:`, `pcre:` and `cidr:` tables share: reading the file into logical lines,
//! the `if` / `endif` block structure, and `$number` results.
//!
//! - [`read_table`]: the whole file at open time, with Postfix's message when it cannot be
//!   opened (`open /path: No such file or directory`).
//! - [`logical_lines`]: comments, blank lines and continuation lines as Postfix's
//!   readllines() treats them (a line that starts with whitespace continues the previous
//!   one; the pieces are joined with nothing between them).
//! - [`Rules`]: a list of match / `if` / `endif` rules and the first-match walk over them
//!   (regexp_table(5), pcre_table(5), cidr_table(5): "if ... endif" skips the block when
//!   the condition does not match).
//! - [`Replacement`]: the result text with `$1`, `${1}`, `$(1)` and `$$`, pre-scanned at
//!   open time as Postfix does, with its warnings.
//!
//! Trust: the table file is data; any byte sequence gives warnings, never a panic.

mod replace;

pub use replace::{ReplaceTexts, Replacement};

use std::os::unix::fs::MetadataExt;

use crate::{MapError, Owner};

/// Postfix's ISSPACE: ASCII white space (space, tab, newline, vertical tab, form feed, CR).
pub fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// Reads a table file whole, with its owner (root's tables are trusted, as Postfix's
/// dict owner). A file that cannot be opened or read gives Postfix's `open PATH: REASON`
/// (dict_stream_open()), which postmap reports as fatal.
pub fn read_table(path: &str) -> Result<(String, Owner), MapError> {
    let fail = |e: &std::io::Error| MapError::Config(format!("open {path}: {}", io_reason(e)));
    let bytes = std::fs::read(path).map_err(|e| fail(&e))?;
    let uid = std::fs::metadata(path).map_err(|e| fail(&e))?.uid();
    let owner = if uid == 0 {
        Owner::Trusted
    } else {
        Owner::User(uid)
    };
    // XXX: Postfix matches bytes; a table that is not UTF-8 is read lossily here.
    Ok((String::from_utf8_lossy(&bytes).into_owned(), owner))
}

/// The C library's text for an I/O error (strerror), as Postfix's `%m` prints it.
pub fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => e.to_string(),
    }
}

/// One logical line: the number of its first physical line and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub text: String,
}

/// Splits `text` into logical lines as Postfix's readllines() does: lines that are empty,
/// all white space, or whose first non-space character is `#` are dropped; a line that
/// starts with white space continues the previous logical line. A logical line that would
/// start with white space (continuation text with nothing before it) gives Postfix's
/// warning and is dropped.
pub fn logical_lines(path: &str, text: &str, warn: &dyn Fn(&str)) -> Vec<Line> {
    let mut out = Vec::new();
    let mut current: Option<Line> = None;
    let flush = |line: Option<Line>, out: &mut Vec<Line>| {
        if let Some(line) = line {
            if line.text.starts_with(is_space) {
                let head: String = line.text.chars().take(30).collect();
                let more = if line.text.len() > 30 { "..." } else { "" };
                warn(&format!(
                    "{path}: logical line must not start with whitespace: \"{head}{more}\""
                ));
            } else {
                out.push(line);
            }
        }
    };
    for (index, raw) in physical_lines(text).enumerate() {
        let number = index + 1;
        let trimmed = raw.trim_start_matches(is_space);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let continues = raw.starts_with(is_space);
        match current.as_mut() {
            Some(line) if continues => line.text.push_str(raw),
            _ => {
                flush(current.take(), &mut out);
                current = Some(Line {
                    number,
                    text: raw.to_owned(),
                });
            }
        }
    }
    flush(current, &mut out);
    out
}

/// Physical lines without their newline; a last line without a newline still counts.
fn physical_lines(text: &str) -> impl Iterator<Item = &str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let empty = text.is_empty();
    body.split('\n').filter(move |_| !empty)
}

/// Where a `/pattern/` ends, or why it could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delimited<'a> {
    /// `negated` after any number of `!`; `regex` is the text between the delimiters
    /// (backslashes kept); `rest` follows the closing delimiter.
    Found {
        negated: bool,
        regex: &'a str,
        rest: &'a str,
    },
    /// Nothing after the `!`s: "no regexp".
    NoRegexp,
    /// No closing delimiter: "no closing regexp delimiter".
    NoClosing(char),
}

/// Reads `[!...]<delim>regex<delim>` as dict_regexp.c and dict_pcre.c do: `!` and white
/// space may precede the pattern, each `!` flips the sense; the first other character is
/// the delimiter; a backslash protects the character after it.
pub fn delimited(text: &str) -> Delimited<'_> {
    let mut negated = false;
    let mut rest = text;
    loop {
        match rest.chars().next() {
            Some('!') => negated = !negated,
            Some(c) if is_space(c) => {}
            _ => break,
        }
        rest = &rest[1..];
    }
    let Some(delim) = rest.chars().next() else {
        return Delimited::NoRegexp;
    };
    // XXX: Postfix's delimiter is one byte; a non-ASCII delimiter is one character here.
    let body = &rest[delim.len_utf8()..];
    let mut chars = body.char_indices();
    while let Some((at, c)) = chars.next() {
        if c == '\\' {
            if chars.next().is_none() {
                break;
            }
        } else if c == delim {
            return Delimited::Found {
                negated,
                regex: &body[..at],
                rest: &body[at + delim.len_utf8()..],
            };
        }
    }
    Delimited::NoClosing(delim)
}

/// Postfix's trimblanks(): the text without trailing ASCII white space.
pub fn trim_end(text: &str) -> &str {
    text.trim_end_matches(is_space)
}

/// Skips leading ASCII white space.
pub fn skip_space(text: &str) -> &str {
    text.trim_start_matches(is_space)
}

/// Whether `line` starts with the keyword `word` (any case) not followed by a letter or
/// digit, as Postfix recognizes `if` and `endif`; gives the text after the keyword.
pub fn keyword<'a>(line: &'a str, word: &str) -> Option<&'a str> {
    let head = line.get(..word.len())?;
    let rest = &line[word.len()..];
    if head.eq_ignore_ascii_case(word) && !rest.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        Some(rest)
    } else {
        None
    }
}

/// One compiled rule of a pattern table.
#[derive(Debug)]
pub enum Rule<M, C> {
    /// A match rule: the first one that matches gives the result.
    Match(M),
    /// `if COND`: the rules up to the matching `endif` apply only when `COND` matches.
    If {
        cond: C,
        line: usize,
        /// Index of the matching `endif`; `None` when the file has none (then a failed
        /// condition ends the lookup, as in Postfix).
        endif: Option<usize>,
    },
    /// `endif`.
    Endif,
}

/// What a pattern table type (regexp:, pcre:) supplies to [`add_rule`]: its warnings, its
/// match-rule parser, and its `/pattern/flags` reader and compiler for `if` conditions.
pub trait RuleSyntax {
    type Match;
    type Cond;
    type Pat<'t>;
    /// Warns about the current line (`TYPE map PATH, line N: WHAT`).
    fn warn(&self, what: &str);
    /// The current line's number.
    fn line(&self) -> usize;
    /// A `/pattern/flags result` rule, or `None` after warning.
    fn match_rule(&self, body: &str) -> Option<Self::Match>;
    /// Reads `[!]/pattern/flags`, returning the rest of the text.
    fn pattern<'t>(&self, text: &'t str) -> Option<(Self::Pat<'t>, &'t str)>;
    /// Compiles an `if` condition.
    fn condition(&self, pat: &Self::Pat<'_>) -> Option<Self::Cond>;
    /// What the warning for a missing closing delimiter says is done: regexp: says
    /// "skipping", pcre: "ignoring" (their sources differ).
    const ON_NO_CLOSING: &'static str;

    /// Splits `[!]/regex/rest`, warning as Postfix does when there is no regexp or no
    /// closing delimiter: (regex, negated, rest).
    fn delimited<'t>(&self, text: &'t str) -> Option<(&'t str, bool, &'t str)> {
        match delimited(text) {
            Delimited::Found {
                negated,
                regex,
                rest,
            } => Some((regex, negated, rest)),
            Delimited::NoRegexp => {
                self.warn("no regexp: skipping this rule");
                None
            }
            Delimited::NoClosing(d) => {
                self.warn(&format!(
                    "no closing regexp delimiter \"{d}\": {} this rule",
                    Self::ON_NO_CLOSING
                ));
                None
            }
        }
    }
}

/// Adds one logical line of a pattern table to `rules`: a match rule, `if /pattern/`, or
/// `endif`, with Postfix's warnings for everything else (dict_regexp.c and dict_pcre.c
/// share these rules and texts).
pub fn add_rule<S: RuleSyntax>(s: &S, body: &str, rules: &mut Rules<S::Match, S::Cond>) {
    if !body.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        if let Some(rule) = s.match_rule(body) {
            rules.push_match(rule);
        }
    } else if let Some(rest) = keyword(body, "if") {
        let Some((pat, rest)) = s.pattern(skip_space(rest)) else {
            return;
        };
        let extra = skip_space(rest);
        if !extra.is_empty() {
            s.warn(&format!(
                "ignoring extra text after IF statement: \"{extra}\""
            ));
            s.warn("do not prepend whitespace to statements between IF and ENDIF");
        }
        if let Some(cond) = s.condition(&pat) {
            rules.push_if(cond, s.line());
        }
    } else if let Some(rest) = keyword(body, "endif") {
        if rules.nesting() == 0 {
            s.warn("ignoring ENDIF without matching IF");
            return;
        }
        if !skip_space(rest).is_empty() {
            s.warn("ignoring extra text after ENDIF");
        }
        rules.push_endif();
    } else {
        s.warn("ignoring unrecognized request");
    }
}

/// The rules of one table, with `if` / `endif` linked up.
#[derive(Debug)]
pub struct Rules<M, C> {
    rules: Vec<Rule<M, C>>,
    open_ifs: Vec<usize>,
}

impl<M, C> Default for Rules<M, C> {
    fn default() -> Self {
        Rules {
            rules: Vec::new(),
            open_ifs: Vec::new(),
        }
    }
}

impl<M, C> Rules<M, C> {
    /// How many `if`s are open (Postfix refuses an `endif` when this is 0).
    pub fn nesting(&self) -> usize {
        self.open_ifs.len()
    }

    /// Adds a match rule.
    pub fn push_match(&mut self, rule: M) {
        self.rules.push(Rule::Match(rule));
    }

    /// Adds an `if` rule.
    pub fn push_if(&mut self, cond: C, line: usize) {
        self.open_ifs.push(self.rules.len());
        self.rules.push(Rule::If {
            cond,
            line,
            endif: None,
        });
    }

    /// Adds an `endif`; the caller has checked that an `if` is open.
    pub fn push_endif(&mut self) {
        let here = self.rules.len();
        if let Some(Rule::If { endif, .. }) =
            self.open_ifs.pop().and_then(|at| self.rules.get_mut(at))
        {
            *endif = Some(here);
        }
        self.rules.push(Rule::Endif);
    }

    /// Ends the file: the line numbers of `if`s without `endif`, innermost first, for
    /// Postfix's "IF has no matching ENDIF" warnings.
    pub fn finish(&mut self) -> Vec<usize> {
        let mut lines = Vec::new();
        while let Some(at) = self.open_ifs.pop() {
            if let Some(Rule::If { line, .. }) = self.rules.get(at) {
                lines.push(*line);
            }
        }
        lines
    }

    /// Walks the rules in order: an `if` whose condition fails skips to its `endif` (or ends
    /// the lookup when it has none); the first match rule for which `try_match` gives a
    /// result wins.
    pub fn first<R>(
        &self,
        mut cond_holds: impl FnMut(&C) -> bool,
        mut try_match: impl FnMut(&M) -> Option<R>,
    ) -> Option<R> {
        let mut at = 0;
        while let Some(rule) = self.rules.get(at) {
            match rule {
                Rule::Match(m) => {
                    if let Some(found) = try_match(m) {
                        return Some(found);
                    }
                }
                Rule::If { cond, endif, .. } => {
                    if !cond_holds(cond) {
                        at = (*endif)?;
                    }
                }
                Rule::Endif => {}
            }
            at += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn logical_lines_like_readllines() {
        let cases: &[(&str, &[(usize, &str)])] = &[
            ("", &[]),
            ("a\nb", &[(1, "a"), (2, "b")]),
            ("a\n  b\n#c\n\n d\ne\n", &[(1, "a  b d"), (6, "e")]),
            ("  # comment\n\t\nx\n", &[(3, "x")]),
            ("a\n#c\n  b\n", &[(1, "a  b")]),
        ];
        for (text, want) in cases {
            let got: Vec<(usize, String)> = logical_lines("/f", text, &|_| {})
                .into_iter()
                .map(|l| (l.number, l.text))
                .collect();
            let want: Vec<(usize, String)> =
                want.iter().map(|(n, t)| (*n, (*t).to_owned())).collect();
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn leading_continuation_warns() {
        let seen = Mutex::new(Vec::new());
        let lines = logical_lines("/f", " x\ny\n", &|w| {
            seen.lock().unwrap().push(w.to_owned());
        });
        assert_eq!(lines.len(), 1);
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            ["/f: logical line must not start with whitespace: \" x\""]
        );
    }

    #[test]
    fn delimiters() {
        let found = |negated, regex, rest| Delimited::Found {
            negated,
            regex,
            rest,
        };
        assert_eq!(delimited("/a/ b"), found(false, "a", " b"));
        assert_eq!(delimited("! !/a/i b"), found(false, "a", "i b"));
        assert_eq!(delimited("!#x\\#y# b"), found(true, "x\\#y", " b"));
        assert_eq!(delimited("!"), Delimited::NoRegexp);
        assert_eq!(delimited("/abc"), Delimited::NoClosing('/'));
        assert_eq!(delimited("/ab\\"), Delimited::NoClosing('/'));
    }

    #[test]
    fn keywords() {
        assert_eq!(keyword("IF /x/", "if"), Some(" /x/"));
        assert_eq!(keyword("if/x/", "if"), Some("/x/"));
        assert_eq!(keyword("ifx", "if"), None);
        assert_eq!(keyword("endif", "endif"), Some(""));
        assert_eq!(keyword("é", "if"), None);
    }

    #[test]
    fn nested_blocks() {
        // if a { if b { m1 } m2 } m3, conditions as booleans.
        let mut rules: Rules<&str, bool> = Rules::default();
        rules.push_if(true, 1);
        rules.push_if(false, 2);
        rules.push_match("m1");
        rules.push_endif();
        rules.push_match("m2");
        rules.push_endif();
        rules.push_match("m3");
        assert!(rules.finish().is_empty());
        let got = rules.first(|c| *c, |m| (*m != "m0").then_some(*m));
        assert_eq!(got, Some("m2"));
        let mut open: Rules<&str, bool> = Rules::default();
        open.push_if(false, 7);
        open.push_match("m");
        assert_eq!(open.finish(), [7]);
        assert_eq!(open.first(|c| *c, |m| Some(*m)), None);
    }
}

#[cfg(test)]
mod no_panic {
    use proptest::prelude::*;

    use crate::Map;

    // Table text made of the characters that matter to the three parsers.
    const TABLE: &str = "[/!$(){}\\[\\]\\\\:.0-9a-fA-FiIxXmsAEU ^*+?|#\n\t-]{0,80}";

    proptest! {
        #[test]
        fn tables_never_panic(text in TABLE, key in "[0-9a-f:.\\[\\]/x\n]{0,20}") {
            let re = crate::regexp::RegexpMap::parse("/p", &text, &|_| {});
            let _ = re.lookup(&key);
            let pc = crate::pcre::PcreMap::parse("/p", &text, crate::no_warnings());
            let _ = pc.lookup(&key);
            let ci = crate::cidr::CidrMap::parse("/p", &text, &|_| {});
            let _ = ci.lookup(&key);
        }
    }
}
