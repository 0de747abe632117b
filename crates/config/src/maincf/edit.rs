//! The main.cf edits of `postconf -e name=value`, `-X name` and `-# name`, as text-to-text
//! functions that reproduce Debian's postconf 3.7 byte for byte.
//!
//! Postfix edits line by line, not by logical line, and trusts nothing else:
//!
//! - Comment and blank lines are always copied, even between a definition being replaced or
//!   removed and its continuation lines; `-#` copies them without adding `#`.
//! - A line that starts with a name whose name (up to blank or `=`) is requested starts an
//!   edit: `-e` writes `name = value\n` in its place (LF even in a CRLF file), `-X` drops it,
//!   `-#` prefixes `#`. Its continuation lines are dropped (`-e`, `-X`) or prefixed with `#`
//!   (`-#`). Every definition of the name is edited, not only the last; the second one found
//!   warns `PATH: multiple entries for "NAME"` (once, however many there are).
//! - A continuation line at the top of the file is copied.
//! - `-e` appends names not found as `name = value\n` at the very end, right after the last
//!   byte: a file without a final newline gets `a = 1b = 2\n`. Postfix appends several new
//!   names in hash-table order, randomised per run (XXX: we append in argument order).
//! - A NUL byte ends its physical line's text: the rest of that line, newline included, is not
//!   written (Postfix writes the line as a C string).
//! - The `-X`/`-#` name keeps trailing blanks (Postfix skips only leading ones), so `-X 'a '`
//!   matches nothing; a name with blanks inside matches nothing.

use std::collections::HashMap;

use super::{MainCfError, is_space, lossy, split_nameval, until_nul};

/// One `postconf -e`, `-X` or `-#` request, its arguments already checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditOp {
    /// `-e`: (name, value) pairs, value already trimmed.
    Set(Vec<(String, String)>),
    /// `-X`: names.
    Remove(Vec<String>),
    /// `-#`: names.
    CommentOut(Vec<String>),
}

/// The edited file and the warnings Postfix prints while editing (without the
/// `postconf: warning: ` prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edited {
    pub text: Vec<u8>,
    pub warnings: Vec<String>,
}

/// Checks `postconf -e/-X/-#` arguments as Postfix does, one by one in order, and builds the
/// request. `set` is true for `-e`; `comment_out` picks `-#` over `-X` otherwise.
///
/// A name given twice keeps the later value; for `-e` the earlier one warns `ignoring
/// earlier request: 'NAME = VALUE'` (these warnings come back with the request). Postfix 3.7
/// crashes (SIGSEGV) on a name given twice to `-X` or `-#`; we keep one silently.
pub fn parse_edit_args(
    set: bool,
    comment_out: bool,
    args: &[String],
) -> Result<(EditOp, Vec<String>), MainCfError> {
    let mut warnings = Vec::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    for arg in args {
        if arg.contains('\n') {
            return Err(MainCfError::EditMultiLine);
        }
        let arg = arg.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
        if arg.starts_with('#') {
            return Err(MainCfError::EditComment);
        }
        let (name, value) = if set {
            let text = until_nul(arg.as_bytes());
            match split_nameval(text) {
                Ok((name, value)) => (lossy(name), lossy(value)),
                Err(reason) => {
                    return Err(MainCfError::EditSyntax {
                        reason,
                        text: arg.to_string(),
                    });
                }
            }
        } else {
            if arg.is_empty() {
                return Err(MainCfError::EditBlankName);
            }
            if arg.contains('=') {
                return Err(MainCfError::EditNameWithValue);
            }
            (arg.to_string(), String::new())
        };
        if let Some(at) = pairs.iter().position(|(n, _)| *n == name) {
            let (old_name, old_value) = pairs.remove(at);
            if set {
                warnings.push(format!(
                    "ignoring earlier request: '{old_name} = {old_value}'"
                ));
            }
        }
        pairs.push((name, value));
    }
    let op = if set {
        EditOp::Set(pairs)
    } else {
        let names = pairs.into_iter().map(|(n, _)| n).collect();
        if comment_out {
            EditOp::CommentOut(names)
        } else {
            EditOp::Remove(names)
        }
    };
    Ok((op, warnings))
}

/// Applies one edit to main.cf text. `path` is used in warnings only.
pub fn edit_main(text: &[u8], op: &EditOp, path: &str) -> Edited {
    let requests: Vec<(&str, Option<&str>)> = match op {
        EditOp::Set(pairs) => pairs
            .iter()
            .map(|(n, v)| (n.as_str(), Some(v.as_str())))
            .collect(),
        EditOp::Remove(names) | EditOp::CommentOut(names) => {
            names.iter().map(|n| (n.as_str(), None)).collect()
        }
    };
    // A name requested twice: the later request wins, as in parse_edit_args.
    let mut names: Vec<&str> = Vec::new();
    let mut values: Vec<Option<&str>> = Vec::new();
    for (name, value) in requests {
        if let Some(at) = names.iter().position(|n| *n == name) {
            names.remove(at);
            values.remove(at);
        }
        names.push(name);
        values.push(value);
    }
    let comment_out = matches!(op, EditOp::CommentOut(_));
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        index.insert(name.as_bytes(), i);
    }
    let mut found = vec![0usize; names.len()];
    let mut out = Vec::with_capacity(text.len() + 64);
    let mut warnings = Vec::new();
    // Whether the current logical line is being edited.
    let mut editing = false;
    for raw in text.split_inclusive(|&b| b == b'\n') {
        let line = until_nul(raw);
        let Some(first) = line.iter().position(|&b| !is_space(b)) else {
            out.extend_from_slice(line);
            continue;
        };
        if line[first] == b'#' {
            out.extend_from_slice(line);
            continue;
        }
        if first > 0 {
            // Continuation line.
            if !editing {
                out.extend_from_slice(line);
            } else if comment_out {
                out.push(b'#');
                out.extend_from_slice(line);
            }
            continue;
        }
        let key_len = line
            .iter()
            .position(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'='))
            .unwrap_or(line.len());
        let key = &line[..key_len];
        let Some(&i) = index.get(key) else {
            editing = false;
            out.extend_from_slice(line);
            continue;
        };
        editing = true;
        found[i] += 1;
        if found[i] == 2 {
            warnings.push(format!("{path}: multiple entries for \"{}\"", lossy(key)));
        }
        match values[i] {
            Some(value) => {
                out.extend_from_slice(key);
                out.extend_from_slice(b" = ");
                out.extend_from_slice(value.as_bytes());
                out.push(b'\n');
            }
            None if comment_out => {
                out.push(b'#');
                out.extend_from_slice(line);
            }
            None => {}
        }
    }
    for (i, name) in names.iter().enumerate() {
        if let (0, Some(value)) = (found[i], values[i]) {
            out.extend_from_slice(format!("{name} = {value}\n").as_bytes());
        }
    }
    Edited {
        text: out,
        warnings,
    }
}

/// `postconf -e name=value...`: replaces each named definition in place (the first line of the
/// definition takes the new text, its continuation lines go), appends names not yet present.
pub fn edit_set(text: &[u8], assignments: &[(String, String)]) -> Vec<u8> {
    edit_main(text, &EditOp::Set(assignments.to_vec()), "main.cf").text
}

/// `postconf -X name...`: removes each named definition with its continuation lines.
pub fn edit_remove(text: &[u8], names: &[String]) -> Vec<u8> {
    edit_main(text, &EditOp::Remove(names.to_vec()), "main.cf").text
}

/// `postconf -# name...`: comments out each named definition.
pub fn edit_comment_out(text: &[u8], names: &[String]) -> Vec<u8> {
    edit_main(text, &EditOp::CommentOut(names.to_vec()), "main.cf").text
}
