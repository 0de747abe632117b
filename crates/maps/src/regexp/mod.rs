//! `regexp:` tables: POSIX regular expressions, regexp_table(5).
//!
//! The file is read and compiled at open time. Each rule is `/pattern/flags result`
//! (any delimiter; `!/pattern/` matches when the pattern does not; `/p1/!/p2/` needs p1 to
//! match and p2 not to), or `if /pattern/` ... `endif`. The first rule that matches gives
//! its result, with `$n` replaced by the n-th parenthesized subexpression. Flags (each
//! toggles, regexp_table(5)): `i` case (insensitive by default), `m` REG_NEWLINE, `x`
//! extended syntax (on by default). Bad rules give Postfix's warnings and are skipped.
//! Keys are matched as given (no case folding by the opener).
//!
//! Patterns are rewritten for the `regex` crate by [`translate`]; see its XXX notes.
//!
//! Trust: the table file is data; any content gives warnings, never a panic.

mod translate;

use regex::bytes::{Regex, RegexBuilder};

use crate::pattern::{self, ReplaceTexts, Replacement, RuleSyntax, Rules};
use crate::{Map, MapError, OpenFlags, Owner};

/// Opens a `regexp:` table named `name` (a file).
pub fn open(name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let (text, owner) = pattern::read_table(name)?;
    let warn = |w: &str| (flags.warn)(w);
    let mut map = RegexpMap::parse(name, &text, &warn);
    map.owner = owner;
    Ok(Box::new(map))
}

/// A compiled `regexp:` table.
#[derive(Debug)]
pub struct RegexpMap {
    spec: String,
    owner: Owner,
    rules: Rules<MatchRule, Cond>,
}

/// A pattern with its sense (`!` negates).
#[derive(Debug)]
struct Cond {
    regex: Regex,
    matches: bool,
}

#[derive(Debug)]
struct MatchRule {
    first: Cond,
    second: Option<Cond>,
    result: Replacement,
}

const TEXTS: ReplaceTexts = ReplaceTexts {
    kind: "regexp",
    below_one: "out-of-range",
};

impl RegexpMap {
    /// Compiles the table text `text` of the file `path`, sending warnings to `warn`.
    pub fn parse(path: &str, text: &str, warn: &dyn Fn(&str)) -> RegexpMap {
        let mut rules = Rules::default();
        for line in pattern::logical_lines(path, text, warn) {
            let body = pattern::trim_end(&line.text);
            if body.is_empty() {
                continue;
            }
            let ctx = Ctx {
                path,
                line: line.number,
                warn,
            };
            pattern::add_rule(&ctx, body, &mut rules);
        }
        for line in rules.finish() {
            warn(&format!(
                "regexp map {path}, line {line}: IF has no matching ENDIF"
            ));
        }
        RegexpMap {
            owner: Owner::Trusted,
            spec: format!("regexp:{path}"),
            rules,
        }
    }
}

impl Map for RegexpMap {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, MapError> {
        let subject = key.as_bytes();
        let found = self.rules.first(
            |cond| cond.regex.is_match(subject) == cond.matches,
            |rule| rule.apply(subject),
        );
        Ok(found)
    }

    fn owner(&self) -> Owner {
        self.owner
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, MapError> {
        Err(MapError::Config(format!(
            "table {}: sequence operation is not supported",
            self.spec
        )))
    }
}

impl MatchRule {
    fn apply(&self, subject: &[u8]) -> Option<String> {
        if self.result.max_sub() == 0 || !self.first.matches {
            if self.first.regex.is_match(subject) != self.first.matches {
                return None;
            }
            if !self.second_ok(subject) {
                return None;
            }
            return Some(self.result.expand(|_| None));
        }
        let caps = self.first.regex.captures(subject)?;
        if !self.second_ok(subject) {
            return None;
        }
        Some(self.result.expand(|n| caps.get(n).map(|m| m.as_bytes())))
    }

    fn second_ok(&self, subject: &[u8]) -> bool {
        self.second
            .as_ref()
            .is_none_or(|c| c.regex.is_match(subject) == c.matches)
    }
}

/// Where a rule comes from, for warnings.
struct Ctx<'a> {
    path: &'a str,
    line: usize,
    warn: &'a dyn Fn(&str),
}

/// One `/pattern/flags` before compiling.
struct Pat<'a> {
    regex: &'a str,
    matches: bool,
    syntax: translate::Syntax,
}

impl RuleSyntax for Ctx<'_> {
    type Match = MatchRule;
    const ON_NO_CLOSING: &'static str = "skipping";
    type Cond = Cond;
    type Pat<'t> = Pat<'t>;

    fn line(&self) -> usize {
        self.line
    }

    fn condition(&self, pat: &Pat<'_>) -> Option<Cond> {
        self.compile(pat).map(|(c, _)| c)
    }

    fn warn(&self, what: &str) {
        (self.warn)(&format!(
            "regexp map {}, line {}: {what}",
            self.path, self.line
        ));
    }

    fn match_rule(&self, body: &str) -> Option<MatchRule> {
        let (first, rest) = self.pattern(body)?;
        let (second, rest) = if rest.starts_with('!') {
            let (p, r) = self.pattern(rest)?;
            (Some(p), r)
        } else {
            (None, rest)
        };
        let text = pattern::skip_space(rest);
        if text.is_empty() {
            self.warn("no replacement text: using empty string");
        }
        let result = Replacement::parse(TEXTS, self.path, self.line, text, self.warn)?;
        if result.max_sub() > 0 && !first.matches {
            self.warn("$number found in negative match replacement text: skipping this rule");
            return None;
        }
        let (first, nsub) = self.compile(&first)?;
        if result.max_sub() > nsub {
            self.warn(&format!(
                "out of range replacement index \"{}\": skipping this rule",
                result.max_sub()
            ));
            return None;
        }
        let second = match second {
            Some(p) => Some(self.compile(&p)?.0),
            None => None,
        };
        Some(MatchRule {
            first,
            second,
            result,
        })
    }

    /// Reads `[!]/regex/flags` (dict_regexp.c: flags end at white space or `!`).
    fn pattern<'t>(&self, text: &'t str) -> Option<(Pat<'t>, &'t str)> {
        let (regex, negated, rest) = self.delimited(text)?;
        let mut syntax = translate::Syntax {
            extended: true,
            icase: true,
            newline: false,
        };
        let flags_end = rest
            .find(|c: char| pattern::is_space(c) || c == '!')
            .unwrap_or(rest.len());
        for c in rest[..flags_end].chars() {
            match c {
                'i' => syntax.icase = !syntax.icase,
                'm' => syntax.newline = !syntax.newline,
                'x' => syntax.extended = !syntax.extended,
                other => {
                    self.warn(&format!(
                        "unknown regexp option \"{other}\": skipping this rule"
                    ));
                    return None;
                }
            }
        }
        Some((
            Pat {
                regex,
                matches: !negated,
                syntax,
            },
            &rest[flags_end..],
        ))
    }
}

impl Ctx<'_> {
    /// Compiles a pattern; its number of subexpressions comes back too.
    fn compile(&self, pat: &Pat<'_>) -> Option<(Cond, usize)> {
        let translated = match translate::translate(pat.regex, pat.syntax) {
            Ok(t) => t,
            Err(e) => {
                self.warn(e);
                return None;
            }
        };
        let built = RegexBuilder::new(&translated.pattern)
            .unicode(false)
            .case_insensitive(pat.syntax.icase)
            .multi_line(pat.syntax.newline)
            .dot_matches_new_line(!pat.syntax.newline)
            .build();
        match built {
            Ok(regex) => Some((
                Cond {
                    regex,
                    matches: pat.matches,
                },
                translated.nsub,
            )),
            Err(regex::Error::CompiledTooBig(_)) => {
                self.warn(translate::ESIZE);
                None
            }
            Err(_) => {
                // XXX: a translation the regex crate refuses; glibc would have taken it.
                self.warn(translate::BADPAT);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
