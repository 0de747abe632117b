//! `pcre:` tables: Perl-compatible regular expressions, pcre_table(5), matched by the PCRE2
//! library (the `pcre2` crate), on the key's bytes (no UTF mode, as Postfix).
//!
//! The file is read and compiled at open time. Each rule is `/pattern/flags result` (any
//! delimiter, `!/pattern/` negates) or `if /pattern/` ... `endif`; the first matching rule
//! gives its result with `$n` replaced by the n-th group (a group that did not take part
//! gives nothing). Flags toggle (pcre_table(5)): `i` caseless and `s` dotall are on by
//! default; `m`, `x`, `A` (anchored), `E` (dollar end only), `U` (ungreedy); `X` is
//! obsolete with PCRE2 and only warns.
//!
//! XXX: the `pcre2` crate exposes only some compile options. `U` is given as a leading
//! `(?U)` (error offsets are corrected for it); `A` is checked on the match found (the
//! first match at offset 0 is the anchored one; `\K` would defeat this); `E` is ignored,
//! which only matters for keys that end in a newline.
//!
//! Trust: the table file is data; any content gives warnings, never a panic.

use pcre2::bytes::{Regex, RegexBuilder};

use crate::pattern::{self, ReplaceTexts, Replacement, RuleSyntax, Rules};
use crate::{Map, MapError, OpenFlags, Owner, Warn};

/// Opens a `pcre:` table named `name` (a file).
pub fn open(name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let (text, owner) = pattern::read_table(name)?;
    let mut map = PcreMap::parse(name, &text, flags.warn.clone());
    map.owner = owner;
    Ok(Box::new(map))
}

/// A compiled `pcre:` table.
pub struct PcreMap {
    spec: String,
    owner: Owner,
    path: String,
    rules: Rules<MatchRule, Cond>,
    warn: Warn,
}

impl std::fmt::Debug for PcreMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcreMap")
            .field("spec", &self.spec)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// A compiled pattern with its sense and options that are applied at match time.
#[derive(Debug)]
struct Cond {
    regex: Regex,
    matches: bool,
    anchored: bool,
    line: usize,
}

#[derive(Debug)]
struct MatchRule {
    cond: Cond,
    result: Replacement,
}

const TEXTS: ReplaceTexts = ReplaceTexts {
    kind: "pcre",
    below_one: "out of range",
};

impl PcreMap {
    /// Compiles the table text `text` of the file `path`; warnings (now and at lookup
    /// time) go to `warn`.
    pub fn parse(path: &str, text: &str, warn: Warn) -> PcreMap {
        let mut rules = Rules::default();
        let sink = |w: &str| warn(w);
        for line in pattern::logical_lines(path, text, &sink) {
            let body = pattern::trim_end(&line.text);
            if body.is_empty() {
                continue;
            }
            let ctx = Ctx {
                path,
                line: line.number,
                warn: &sink,
            };
            pattern::add_rule(&ctx, body, &mut rules);
        }
        for line in rules.finish() {
            warn(&format!(
                "pcre map {path}, line {line}: IF has no matching ENDIF"
            ));
        }
        PcreMap {
            owner: Owner::Trusted,
            spec: format!("pcre:{path}"),
            path: path.to_owned(),
            rules,
            warn,
        }
    }

    /// Runs one pattern, in its sense (`!` negates). A matching error is warned about and
    /// counts as "no match" for either sense, as in dict_pcre.c.
    fn exec(&self, cond: &Cond, subject: &[u8]) -> Outcome {
        let mut locs = cond.regex.capture_locations();
        match cond.regex.captures_read(&mut locs, subject) {
            Ok(Some(m)) if !cond.anchored || m.start() == 0 => {
                if cond.matches {
                    Outcome::Captured(locs)
                } else {
                    Outcome::No
                }
            }
            Ok(_) if cond.matches => Outcome::No,
            Ok(_) => Outcome::Yes,
            Err(e) => {
                let text = e.to_string();
                let msg = text
                    .strip_prefix("PCRE2: error matching: ")
                    .unwrap_or(&text);
                (self.warn)(&format!(
                    "pcre map {}, line {}: {msg}",
                    self.path, cond.line
                ));
                Outcome::No
            }
        }
    }
}

/// What one pattern gave.
enum Outcome {
    No,
    /// A negated pattern held (nothing to substitute).
    Yes,
    Captured(pcre2::bytes::CaptureLocations),
}

impl Map for PcreMap {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, MapError> {
        let subject = key.as_bytes();
        let found = self.rules.first(
            |cond| !matches!(self.exec(cond, subject), Outcome::No),
            |rule| match self.exec(&rule.cond, subject) {
                Outcome::No => None,
                Outcome::Yes => Some(rule.result.expand(|_| None)),
                Outcome::Captured(locs) => Some(rule.result.expand(|n| {
                    let (s, e) = locs.get(n)?;
                    subject.get(s..e)
                })),
            },
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

/// Where a rule comes from, for warnings.
struct Ctx<'a> {
    path: &'a str,
    line: usize,
    warn: &'a dyn Fn(&str),
}

#[derive(Debug, Clone, Copy)]
#[allow(clippy::struct_excessive_bools)]
struct Options {
    caseless: bool,
    dotall: bool,
    multiline: bool,
    extended: bool,
    anchored: bool,
    ungreedy: bool,
}

struct Pat<'a> {
    regex: &'a str,
    matches: bool,
    options: Options,
}

impl RuleSyntax for Ctx<'_> {
    type Match = MatchRule;
    const ON_NO_CLOSING: &'static str = "ignoring";
    type Cond = Cond;
    type Pat<'t> = Pat<'t>;

    fn line(&self) -> usize {
        self.line
    }

    fn condition(&self, pat: &Pat<'_>) -> Option<Cond> {
        self.compile(pat)
    }

    fn warn(&self, what: &str) {
        (self.warn)(&format!(
            "pcre map {}, line {}: {what}",
            self.path, self.line
        ));
    }

    fn match_rule(&self, body: &str) -> Option<MatchRule> {
        let (pat, rest) = self.pattern(body)?;
        let text = pattern::skip_space(rest);
        if text.is_empty() {
            self.warn("no replacement text: using empty string");
        }
        let result = Replacement::parse(TEXTS, self.path, self.line, text, self.warn)?;
        if result.max_sub() > 0 && !pat.matches {
            self.warn("$number found in negative match replacement text: skipping this rule");
            return None;
        }
        let cond = self.compile(&pat)?;
        let groups = cond.regex.captures_len().saturating_sub(1);
        if result.max_sub() > groups {
            self.warn(&format!(
                "out of range replacement index \"{}\": skipping this rule",
                result.max_sub()
            ));
            return None;
        }
        Some(MatchRule { cond, result })
    }

    /// Reads `[!]/regex/flags` (dict_pcre.c: flags end at white space only).
    fn pattern<'t>(&self, text: &'t str) -> Option<(Pat<'t>, &'t str)> {
        let (regex, negated, rest) = self.delimited(text)?;
        let mut o = Options {
            caseless: true,
            dotall: true,
            multiline: false,
            extended: false,
            anchored: false,
            ungreedy: false,
        };
        let flags_end = rest.find(pattern::is_space).unwrap_or(rest.len());
        for c in rest[..flags_end].chars() {
            match c {
                'i' => o.caseless = !o.caseless,
                'm' => o.multiline = !o.multiline,
                's' => o.dotall = !o.dotall,
                'x' => o.extended = !o.extended,
                'A' => o.anchored = !o.anchored,
                // XXX: PCRE2_DOLLAR_ENDONLY is not reachable through the pcre2 crate.
                'E' => {}
                'U' => o.ungreedy = !o.ungreedy,
                'X' => self.warn("ignoring obsolete regexp option \"X\""),
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
                options: o,
            },
            &rest[flags_end..],
        ))
    }
}

impl Ctx<'_> {
    fn compile(&self, pat: &Pat<'_>) -> Option<Cond> {
        let o = pat.options;
        let (source, shift) = if o.ungreedy {
            // Start-of-pattern verbs such as (*UTF) must stay first.
            let verbs = leading_verbs(pat.regex);
            (
                format!("{}(?U){}", &pat.regex[..verbs], &pat.regex[verbs..]),
                (verbs, 4),
            )
        } else {
            (pat.regex.to_owned(), (usize::MAX, 0))
        };
        let built = RegexBuilder::new()
            .caseless(o.caseless)
            .dotall(o.dotall)
            .multi_line(o.multiline)
            .extended(o.extended)
            .build(&source);
        match built {
            Ok(regex) => Some(Cond {
                regex,
                matches: pat.matches,
                anchored: o.anchored,
                line: self.line,
            }),
            Err(e) => {
                let mut offset = e.offset().unwrap_or(0);
                if offset >= shift.0 + shift.1 {
                    offset -= shift.1;
                }
                // The crate's Display is "PCRE2: error compiling pattern at offset N: MSG";
                // Postfix prints PCRE2's MSG alone.
                let text = e.to_string();
                let prefix = match e.offset() {
                    Some(n) => format!("PCRE2: error compiling pattern at offset {n}: "),
                    None => "PCRE2: error compiling pattern: ".to_owned(),
                };
                let msg = text.strip_prefix(&prefix).unwrap_or(&text);
                self.warn(&format!("error in regex at offset {offset}: {msg}"));
                None
            }
        }
    }
}

/// The length of the `(*VERB)` items at the start of a pattern.
fn leading_verbs(regex: &str) -> usize {
    let mut at = 0;
    while regex[at..].starts_with("(*") {
        match regex[at..].find(')') {
            Some(end) => at += end + 1,
            None => break,
        }
    }
    at
}

#[cfg(test)]
mod tests;
