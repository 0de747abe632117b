//! `main.cf`: the lexer and the text edits behind `postconf -e`, `-X` and `-#`.
//!
//! Postfix reads main.cf line by line: blank lines and lines whose first non-blank character
//! is `#` are skipped, a line that starts with whitespace continues the logical line before
//! it, and each logical line is `name = value` with whitespace trimmed around both. A later
//! definition of the same name wins. The edits ([`edit`]) are pure functions from file text
//! to file text that keep every byte they do not have to change.
//!
//! The file is untrusted: any byte sequence parses to definitions, warnings, or a typed error.
//! What Postfix 3.7 does with hostile input, and what we therefore do:
//!
//! - Physical lines are joined with nothing in between: `a = 1` + `  cont` is `a = 1  cont`.
//!   A comment or blank line between a line and its continuation is dropped and does not end
//!   the logical line.
//! - A logical line that starts with whitespace (a continuation at the top of the file or
//!   after only comments) is dropped with the warning `PATH: logical line must not start with
//!   whitespace: "first 30 bytes..."`.
//! - Whitespace is C's `isspace` in ASCII: space, `\t`, `\n`, `\v`, `\f`, `\r`. So CRLF files
//!   work (the `\r` is trailing whitespace) and a line of `\r` alone is blank.
//! - A NUL byte ends the logical line's text (Postfix handles it as a C string): what follows
//!   on that logical line is silently lost. A line that starts with NUL is not blank: it starts
//!   a logical line whose text is empty, which is fatal (`missing attribute name: ""`).
//! - A definition whose value differs from the one in force warns `PATH, line N: overriding
//!   earlier entry: NAME=OLD`. Postfix seeds its table with `config_directory` before it
//!   reads the file, so `config_directory = x` in main.cf warns too (see [`MainCf::parse_over`]).
//! - No length limit on lines or values.
//!
//! Postfix re-reads main.cf every 300 ms while the file's mtime is within a second of now
//! ("hot" file), printing its warnings again on each pass (with the `overriding` warnings
//! alternating between the duplicates). That is the reader's business, not the lexer's.

mod edit;

use std::fmt;
use std::path::Path;

pub use edit::{
    EditOp, Edited, edit_comment_out, edit_main, edit_remove, edit_set, parse_edit_args,
};

/// One `name = value` definition, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    pub value: String,
    /// 1-based number of the line where the definition starts.
    pub line: usize,
}

/// A parsed main.cf: every definition in file order (duplicates kept), and the warnings
/// Postfix prints while reading it (without the `postconf: warning: ` prefix), in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MainCf {
    pub definitions: Vec<Definition>,
    pub warnings: Vec<String>,
}

/// What went wrong reading main.cf or a `postconf -e/-X/-#` argument; `Display` gives
/// Postfix's message text (without the `postconf: fatal: ` prefix). Postfix exits 1.
///
/// The syntax variants carry the warnings printed before the fatal error, in order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MainCfError {
    /// The file could not be opened (missing, permission denied).
    #[error("open {path}: {reason}")]
    Open { path: String, reason: String },
    /// The file opened but could not be read (e.g. it is a directory).
    #[error("read {path}: {reason}")]
    Read { path: String, reason: String },
    /// A logical line that starts with `=` or is empty after a NUL byte.
    #[error("{path}, line {line}: missing attribute name: \"{text}\"")]
    MissingName {
        path: String,
        line: usize,
        text: String,
        warnings: Vec<String>,
    },
    /// A logical line without `=` after its first word (`a b = 1` is one too).
    #[error("{path}, line {line}: missing '=' after attribute name: \"{text}\"")]
    MissingEquals {
        path: String,
        line: usize,
        text: String,
        warnings: Vec<String>,
    },
    /// `postconf -e`, `-X` or `-#` given an argument with a newline.
    #[error("-e, -X, or -# accepts no multi-line input")]
    EditMultiLine,
    /// `postconf -e`, `-X` or `-#` given an argument starting with `#`.
    #[error("-e, -X, or -# accepts no comment input")]
    EditComment,
    /// `postconf -e` given an argument that is not `name=value`.
    #[error("{reason}: \"{text}\"")]
    EditSyntax { reason: SyntaxReason, text: String },
    /// `postconf -X` or `-#` given an empty or all-blank name.
    #[error("-X or -# requires non-blank parameter names")]
    EditBlankName,
    /// `postconf -X` or `-#` given `name=value`.
    #[error("-X or -# requires parameter names without value")]
    EditNameWithValue,
}

impl MainCfError {
    /// The warnings printed before this error (a syntax error ends a read that may have warned).
    pub fn warnings(&self) -> &[String] {
        match self {
            MainCfError::MissingName { warnings, .. }
            | MainCfError::MissingEquals { warnings, .. } => warnings,
            _ => &[],
        }
    }
}

/// Why a `name = value` text did not split (Postfix's split_nameval messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntaxReason {
    MissingName,
    MissingEquals,
}

impl fmt::Display for SyntaxReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyntaxReason::MissingName => "missing attribute name",
            SyntaxReason::MissingEquals => "missing '=' after attribute name",
        })
    }
}

impl MainCf {
    /// Parses main.cf text. `path` is used in messages only.
    pub fn parse(text: &[u8], path: &str) -> Result<MainCf, MainCfError> {
        MainCf::parse_over(text, path, &[])
    }

    /// Parses main.cf text as if `earlier` had been defined before it: a definition in the
    /// text that changes one of them warns `overriding earlier entry`, as Postfix does for
    /// the `config_directory` it sets before reading the file.
    pub fn parse_over(
        text: &[u8],
        path: &str,
        earlier: &[(&str, &str)],
    ) -> Result<MainCf, MainCfError> {
        let mut in_force: std::collections::HashMap<String, String> = earlier
            .iter()
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect();
        let mut reader = LineReader {
            text,
            pos: 0,
            lineno: 0,
        };
        let mut cf = MainCf::default();
        while let Some((logical, line)) = reader.next_logical(path, &mut cf.warnings) {
            // Postfix handles the logical line as a C string from here on.
            let logical = until_nul(&logical);
            let (name, value) = match split_nameval(logical) {
                Ok(pair) => pair,
                Err(reason) => {
                    let text = lossy(logical);
                    let warnings = std::mem::take(&mut cf.warnings);
                    let path = path.to_string();
                    return Err(match reason {
                        SyntaxReason::MissingName => MainCfError::MissingName {
                            path,
                            line,
                            text,
                            warnings,
                        },
                        SyntaxReason::MissingEquals => MainCfError::MissingEquals {
                            path,
                            line,
                            text,
                            warnings,
                        },
                    });
                }
            };
            let (name, value) = (lossy(name), lossy(value));
            if let Some(old) = in_force.get(&name).filter(|old| **old != value) {
                cf.warnings.push(format!(
                    "{path}, line {line}: overriding earlier entry: {name}={old}"
                ));
            }
            in_force.insert(name.clone(), value.clone());
            cf.definitions.push(Definition { name, value, line });
        }
        Ok(cf)
    }

    /// Reads and parses `dir/main.cf`, with `config_directory` preset to `dir` as Postfix
    /// does (so a `config_directory` line in the file with another value warns).
    pub fn load(dir: &Path) -> Result<MainCf, MainCfError> {
        let dir_text = dir.to_string_lossy();
        let path = format!("{dir_text}/main.cf");
        let mut file = std::fs::File::open(&path).map_err(|e| MainCfError::Open {
            path: path.clone(),
            reason: errno_text(&e),
        })?;
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut text).map_err(|e| MainCfError::Read {
            path: path.clone(),
            reason: errno_text(&e),
        })?;
        MainCf::parse_over(&text, &path, &[("config_directory", &dir_text)])
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

pub use crate::text::errno_text;

/// C's `isspace` in the C locale, as Postfix's `ISSPACE` uses it.
pub(crate) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The bytes before the first NUL: what C code sees of a buffer.
pub(crate) fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

/// Bytes as text. XXX: main.cf is not required to be UTF-8 but our API holds `String`s;
/// invalid sequences become U+FFFD.
pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Splits `name = value` as Postfix's split_nameval: the name runs from the first non-blank
/// to the first blank or `=`, only blanks may follow it before `=`, and the value is trimmed.
/// Postfix's split_nameval(): `name = value` with blanks trimmed around both.
pub fn split_nameval(text: &[u8]) -> Result<(&[u8], &[u8]), SyntaxReason> {
    let start = text
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(text.len());
    if start == text.len() || text[start] == b'=' {
        return Err(SyntaxReason::MissingName);
    }
    let end = text[start..]
        .iter()
        .position(|&b| is_space(b) || b == b'=')
        .map_or(text.len(), |n| start + n);
    let eq = text[end..]
        .iter()
        .position(|&b| !is_space(b))
        .map_or(text.len(), |n| end + n);
    if eq == text.len() || text[eq] != b'=' {
        return Err(SyntaxReason::MissingEquals);
    }
    let value = trim(&text[eq + 1..]);
    Ok((&text[start..end], value))
}

/// Strips leading and trailing `isspace` bytes.
pub(crate) fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(start, |n| n + 1);
    &bytes[start..end.max(start)]
}

/// Postfix's readllines over a byte buffer: yields each logical line with the number of the
/// physical line it starts on.
struct LineReader<'a> {
    text: &'a [u8],
    pos: usize,
    lineno: usize,
}

impl LineReader<'_> {
    fn next_logical(&mut self, path: &str, warnings: &mut Vec<String>) -> Option<(Vec<u8>, usize)> {
        loop {
            let mut buf: Vec<u8> = Vec::new();
            let mut first_line = self.lineno;
            loop {
                let start = buf.len();
                let rest = &self.text[self.pos..];
                let (line, newline) = match rest.iter().position(|&b| b == b'\n') {
                    Some(n) => (&rest[..n], true),
                    None => (rest, false),
                };
                self.pos += line.len() + usize::from(newline);
                if newline || !line.is_empty() {
                    self.lineno += 1;
                }
                match line.iter().position(|&b| !is_space(b)) {
                    // Comment, blank or empty line: contributes nothing.
                    None => {}
                    Some(n) if line[n] == b'#' => {}
                    Some(_) => {
                        if start == 0 {
                            first_line = self.lineno;
                        }
                        buf.extend_from_slice(line);
                    }
                }
                if !newline {
                    break;
                }
                if !buf.is_empty() {
                    // A line starting with `#` or whitespace may continue this logical line.
                    match self.text.get(self.pos) {
                        Some(&next) if next == b'#' || is_space(next) => {}
                        _ => break,
                    }
                }
            }
            if buf.is_empty() {
                return None;
            }
            if is_space(buf[0]) {
                let shown = until_nul(&buf);
                let shown = &shown[..shown.len().min(30)];
                let dots = if buf.len() > 30 { "..." } else { "" };
                warnings.push(format!(
                    "{path}: logical line must not start with whitespace: \"{}{dots}\"",
                    lossy(shown)
                ));
                continue;
            }
            return Some((buf, first_line));
        }
    }
}

#[cfg(test)]
mod tests;
