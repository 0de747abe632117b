//! `$name` expansion as Postfix's mac_expand does it.
//!
//! Forms: `$name`, `${name}`, `$(name)`, `$$`, `${name?value}`, `${name:value}`,
//! `${name?{value}}`, `${name:{value}}`, `${name?{a}:{b}}`, the comparisons of Postfix 3.0
//! (`${{$a} == {b} ? {x} : {y}}` with `==`, `!=`, `<`, `<=`, `>`, `>=`) and the
//! compatibility-level comparisons of 3.6 (`<level`, `<=level`, `>level`, `>=level`).

/// Where expansion looks names up. `None` is an undefined name.
pub trait Lookup {
    fn lookup(&self, name: &str) -> Option<String>;
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

/// Why expansion failed; `Display` gives Postfix's warning text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("placeholder")]
    Placeholder,
}

/// Expands `text`.
pub fn expand(text: &str, lookup: &dyn Lookup, mode: Mode) -> Result<Expanded, ExpandError> {
    let _ = (text, lookup, mode);
    unimplemented!()
}

/// The `$name` references in `text` (each name once, in order), for finding user-defined
/// parameters and checking values without expanding them.
pub fn referenced_names(text: &str) -> Vec<String> {
    let _ = text;
    unimplemented!()
}
