//! `$name` expansion as Postfix's mac_expand does it.
//!
//! Forms: `$name`, `${name}`, `$(name)`, `$$`, `${name?value}`, `${name:value}`,
//! `${name?{value}}`, `${name:{value}}`, `${name?{a}:{b}}`, the comparisons of Postfix 3.0
//! (`${{$a} == {b} ? {x} : {y}}` with `==`, `!=`, `<`, `<=`, `>`, `>=`) and the
//! compatibility-level comparisons of 3.6 (`<level`, `<=level`, `>level`, `>=level`,
//! `==level`, `!=level`).
//!
//! The text and the looked-up values are untrusted. Postfix reports each syntax problem as a
//! warning, stops producing output, and its caller (postconf -x) then dies with `macro
//! processing error`; [`ExpandError`] carries the warnings in the order Postfix prints them.
//! Behaviour verified against Debian's postconf 3.7.11 (`postconf -xh`):
//!
//! - `$name` takes ASCII letters, digits and `_`: `$a-b` is `$a` then `-b`.
//! - `${name?x}` gives `x` when name is defined and non-empty; `${name:x}` when it is
//!   undefined or empty. Undefined names expand to nothing and are listed in
//!   [`Expanded::undefined`]. Whitespace around the name is allowed: `${ a ?x}`.
//! - In `${name?text}` without braces, the text runs to the closing `}`, colons included.
//! - A comparison alone gives `true` or nothing. Both sides all digits: numeric compare,
//!   else byte compare (`{-1} < {1}` compares bytes). A number too large for a C long is fatal
//!   at once: `mac_exp_eval: bad conversion: N`, with no `macro processing error`.
//! - `<level` and friends compare `major[.minor[.patch]]` numerically: `3.6 < 3.10`,
//!   `3 == 3.0`; a malformed level warns `malformed compatibility level syntax: "X"`.
//! - Recursion: a nesting level counter per expansion; the call that finds it above 100
//!   warns `unreasonable macro call nesting: "TEXT"`. Postfix never decrements the counter
//!   after an error, so every later piece of text in every pending level warns again (`a =
//!   $a $a` gives ~200 warnings); we reproduce that. A comparison operand starts a fresh
//!   counter in Postfix, so `a = ${{$a} == {x}}` crashes Postfix (SIGSEGV); we stop at a
//!   total depth of [`MAX_DEPTH`] with the nesting warning instead.

mod engine;
mod level;
#[cfg(test)]
mod tests;

pub use level::{compare_levels, parse_level};

/// Where expansion looks names up. `None` is an undefined name.
pub trait Lookup {
    fn lookup(&self, name: &str) -> Option<String>;
}

/// Any map from names to values is a lookup.
impl<S: std::hash::BuildHasher> Lookup for std::collections::HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// How deep expansion goes: `Recursive` expands looked-up values again (postconf -x, the
/// daemons); `Once` expands only the text given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Recursive,
    Once,
}

/// An expansion result: the text, and the undefined names met on the way (Postfix warns
/// about each: `undefined parameter: NAME`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    pub text: String,
    pub undefined: Vec<String>,
}

/// Why expansion failed. `Display` gives Postfix's fatal text (after `postconf: fatal: `);
/// [`ExpandError::warnings`] gives the warnings Postfix prints before it, in order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// A syntax error, a bad compatibility level, or runaway recursion.
    #[error("macro processing error")]
    Macro { warnings: Vec<String> },
    /// A number in a comparison does not fit a C long; fatal at once in Postfix.
    #[error("mac_exp_eval: bad conversion: {number}")]
    BadConversion {
        number: String,
        warnings: Vec<String>,
    },
}

impl ExpandError {
    /// The warnings printed before the fatal message (without `postconf: warning: `).
    pub fn warnings(&self) -> &[String] {
        match self {
            ExpandError::Macro { warnings } | ExpandError::BadConversion { warnings, .. } => {
                warnings
            }
        }
    }
}

/// Total nesting (values within values, comparison operands) at which Tern gives up where
/// Postfix would overflow its stack. Above the 101 levels one expansion allows, so that only
/// nested comparisons reach it. XXX: a comparison deep in a long chain of values that
/// Postfix would expand fails here.
pub const MAX_DEPTH: usize = 150;

/// Tokens one expansion may evaluate before it fails with the nesting warning. Each
/// comparison operand starts a fresh nesting count (as in Postfix), so `a = ${{$a} ==
/// {$a}}` doubles the work at every level up to [`MAX_DEPTH`]: without this bound it never
/// ends (Postfix overflows its stack instead). Real values take a few hundred tokens.
pub const MAX_STEPS: usize = 100_000;

/// Expands `text`.
pub fn expand(text: &str, lookup: &dyn Lookup, mode: Mode) -> Result<Expanded, ExpandError> {
    let mut engine = engine::Engine::new(lookup, mode == Mode::Recursive, false);
    let outcome = engine.expand_top(text.as_bytes());
    let undefined = std::mem::take(&mut engine.undefined);
    let warnings = std::mem::take(&mut engine.warnings);
    match outcome {
        Err(engine::Abort::BadConversion(number)) => {
            Err(ExpandError::BadConversion { number, warnings })
        }
        Ok((_, status)) if status & engine::ERROR != 0 => Err(ExpandError::Macro { warnings }),
        Ok((result, _)) => Ok(Expanded {
            text: String::from_utf8_lossy(&result).into_owned(),
            undefined,
        }),
    }
}

/// The `$name` references in `text` (each name once, in order), for finding user-defined
/// parameters and checking values without expanding them.
pub fn referenced_names(text: &str) -> Vec<String> {
    scan(text).names
}

/// What a syntax scan of a value found: Postfix's postconf scans every main.cf value this
/// way at start-up (both branches of every `?:`, both comparison operands, nothing looked
/// up recursively), printing `warnings` as it goes and going on regardless.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Names referenced, each once, in order.
    pub names: Vec<String>,
    /// Syntax warnings (without `postconf: warning: `).
    pub warnings: Vec<String>,
}

/// Scans `text` for `$name` references and syntax errors without expanding it.
pub fn scan(text: &str) -> Scan {
    struct Nothing;
    impl Lookup for Nothing {
        fn lookup(&self, _: &str) -> Option<String> {
            None
        }
    }
    let mut engine = engine::Engine::new(&Nothing, false, true);
    // Scan mode never evaluates a comparison, so nothing can abort.
    let _ = engine.expand_top(text.as_bytes());
    let mut names: Vec<String> = Vec::new();
    for name in engine.looked_up {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Scan {
        names,
        warnings: engine.warnings,
    }
}
