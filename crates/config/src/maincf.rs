//! `main.cf`: the lexer and the text edits behind `postconf -e`, `-X` and `-#`.
//!
//! Postfix reads main.cf line by line: blank lines and lines whose first non-blank character
//! is `#` are skipped, a line that starts with whitespace continues the logical line before
//! it, and each logical line is `name = value` with whitespace trimmed around both. A later
//! definition of the same name wins. The edits are pure functions from file text to file text
//! that keep every byte they do not have to change.

use std::path::Path;

/// One `name = value` definition, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    pub value: String,
    /// 1-based number of the line where the definition starts.
    pub line: usize,
}

/// A parsed main.cf: every definition in file order (duplicates kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MainCf {
    pub definitions: Vec<Definition>,
}

/// What went wrong reading main.cf; `Display` gives Postfix's message text (without the
/// `postconf: fatal: ` prefix).
#[derive(Debug, thiserror::Error)]
pub enum MainCfError {
    #[error("placeholder")]
    Placeholder,
}

impl MainCf {
    /// Parses main.cf text. `path` is used in messages only.
    pub fn parse(text: &[u8], path: &str) -> Result<MainCf, MainCfError> {
        let _ = (text, path);
        unimplemented!()
    }

    /// Reads and parses `dir/main.cf`.
    pub fn load(dir: &Path) -> Result<MainCf, MainCfError> {
        let _ = dir;
        unimplemented!()
    }

    /// The value in force for `name` (the last definition), if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.definitions
            .iter()
            .rev()
            .find(|d| d.name == name)
            .map(|d| d.value.as_str())
    }
}

/// `postconf -e name=value...`: replaces each named definition in place (the first line of the
/// definition takes the new text, its continuation lines go), appends names not yet present.
pub fn edit_set(text: &[u8], assignments: &[(String, String)]) -> Vec<u8> {
    let _ = (text, assignments);
    unimplemented!()
}

/// `postconf -X name...`: removes each named definition with its continuation lines.
pub fn edit_remove(text: &[u8], names: &[String]) -> Vec<u8> {
    let _ = (text, names);
    unimplemented!()
}

/// `postconf -# name...`: comments out each named definition.
pub fn edit_comment_out(text: &[u8], names: &[String]) -> Vec<u8> {
    let _ = (text, names);
    unimplemented!()
}
