//! `master.cf`: the service table.
//!
//! Eight columns (service, type, private, unpriv, chroot, wakeup, maxproc, command + args),
//! `-` for a column's default, continuation lines that start with whitespace, comments, and
//! `-o name=value` overrides (with `{ }` quoting for values that contain spaces). The
//! formatters in [`format`] print what `postconf -M`, `-Mf`, `-F` and `-P` print.
//!
//! The parser reads the file the way `postconf` does (not the way the `master` daemon does):
//! it keeps `-` as written, checks the type, the three y/n columns, wakeup and process limit,
//! and brings the daemon options into one canonical form (`-oname=value` becomes `-o`
//! `name=value`, `-o { name = value }` becomes `-o` `name=value`, `{ }` around other
//! arguments is removed). It trusts nothing in the file: any bytes give a value or a typed
//! error, never a panic. Postfix's warnings (it warns and goes on) are returned as text.
//!
//! XXX: fields are `String`s; bytes that are not UTF-8 are replaced (U+FFFD), so output for
//! such a file is not byte-identical to Postfix's. Messages are built from the raw bytes and
//! are exact.

mod format;
mod lex;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::text::{errno_text, printable};

pub use format::{
    FIELDS, Field, Listing, PatternError, ServicePattern, ShowOptions, fields, format_f,
    format_f_with, format_m, format_m_with, format_p, format_p_with, show_entries,
    show_entries_with, show_fields, show_fields_with, show_params, show_params_with,
};

/// The service types `postconf` accepts, as written in the second column.
pub const SERVICE_TYPES: [&str; 5] = ["unix", "fifo", "inet", "pass", "unix-dgram"];

/// One master.cf entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The first column as written (`smtp`, `127.0.0.1:2525`, `submission`).
    pub name: String,
    /// `inet`, `unix`, `unix-dgram`, `fifo`, `pass`.
    pub kind: String,
    pub private: String,
    pub unpriv: String,
    pub chroot: String,
    pub wakeup: String,
    pub maxproc: String,
    /// The command name (`smtpd`, `pipe`, ...).
    pub command: String,
    /// The arguments after the command, `-o` included, in the canonical form `postconf`
    /// keeps and prints: `-oname=value` split into `-o` and `name=value`, `-o { a = b }`
    /// as `-o` and `a=b`, `{ }` removed from other arguments that start with `{`.
    pub args: Vec<String>,
    /// The `-o name=value` overrides, in order (duplicates kept; `-o` values without `=` are
    /// left out, as Postfix leaves them out).
    pub overrides: Vec<(String, String)>,
    /// 1-based line number of the entry's first line.
    pub line: usize,
    /// The logical line as read (continuation lines joined without their newlines, cut at a
    /// NUL byte): the text Postfix quotes in its messages.
    pub raw: String,
}

/// A parsed master.cf: the entries in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterCf {
    pub services: Vec<Service>,
    /// Postfix's warnings while reading, in order, each the text after `postconf: warning: `.
    pub warnings: Vec<String>,
}

/// What went wrong reading master.cf; `Display` gives Postfix's message text (after
/// `postconf: fatal: `), with unprintable bytes shown as `?` as Postfix shows them.
#[derive(Debug, thiserror::Error)]
pub enum MasterCfError {
    /// The file cannot be opened (missing, unreadable). Reading errors after a successful
    /// open (a directory) end the file quietly, as in Postfix.
    #[error("open {path}: {reason}")]
    Open { path: String, reason: String },
    /// Fewer than eight fields in an entry.
    #[error("file {path}: line {line}: bad field count")]
    FieldCount { path: String, line: usize },
    /// A column with a bad value: `field` is `type`, `private`, `unprivileged`, `chroot`,
    /// `wakeup` or `process_limit`; `text` is the whole logical line.
    #[error("invalid {field} field \"{value}\" in \"{text}\"")]
    InvalidField {
        field: &'static str,
        value: String,
        text: String,
    },
}

impl MasterCf {
    /// Parses master.cf text. `path` is used in messages only.
    pub fn parse(text: &[u8], path: &str) -> Result<MasterCf, MasterCfError> {
        let mut warnings = Vec::new();
        let mut cf = Self::parse_with(text, path, &mut warnings)?;
        cf.warnings = warnings;
        Ok(cf)
    }

    /// Like [`MasterCf::parse`], but the warnings go to `warnings` as they arise, so that a
    /// caller that fails still has the warnings Postfix printed before its fatal error.
    /// The returned value's `warnings` field is left empty.
    pub fn parse_with(
        text: &[u8],
        path: &str,
        warnings: &mut Vec<String>,
    ) -> Result<MasterCf, MasterCfError> {
        let mut lines = lex::Lines::new(text, path);
        let mut services = Vec::new();
        while let Some(logical) = lines.next_line(warnings) {
            services.push(parse_entry(&logical, path, warnings)?);
        }
        Ok(MasterCf {
            services,
            warnings: Vec::new(),
        })
    }

    /// Reads and parses `dir/master.cf`.
    pub fn load(dir: &Path) -> Result<MasterCf, MasterCfError> {
        let mut warnings = Vec::new();
        let mut cf = Self::load_with(dir, &mut warnings)?;
        cf.warnings = warnings;
        Ok(cf)
    }

    /// Like [`MasterCf::load`], with the warnings sent to `warnings` as they arise.
    pub fn load_with(dir: &Path, warnings: &mut Vec<String>) -> Result<MasterCf, MasterCfError> {
        // Postfix pastes the directory and the file name together as text: `-c dir/` gives
        // `dir//master.cf` in messages.
        let path = format!("{}/master.cf", dir.display());
        let mut file = std::fs::File::open(&path).map_err(|e| MasterCfError::Open {
            path: printable(path.as_bytes()),
            reason: errno_text(&e),
        })?;
        let mut text = Vec::new();
        // Postfix's stream reader treats a read error as the end of the file (a directory
        // named master.cf reads as an empty table), so a failed read keeps what was read.
        let _ = file.read_to_end(&mut text);
        Self::parse_with(&text, &path, warnings)
    }

    /// The `-o` parameters each entry shows to `postconf -P`, aligned with `services`.
    ///
    /// Postfix keeps one parameter table per `name/type`, shared by every entry with that
    /// name and type: the last value of a name wins across all of them, and an entry sees
    /// the table only once it exists, that is when it or an earlier entry with the same
    /// name and type has an override. `None` means the entry has no table at all.
    pub fn service_params(&self) -> Vec<Option<BTreeMap<String, String>>> {
        let mut tables: BTreeMap<(&str, &str), BTreeMap<String, String>> = BTreeMap::new();
        let mut present = Vec::with_capacity(self.services.len());
        for svc in &self.services {
            let key = (svc.name.as_str(), svc.kind.as_str());
            if !svc.overrides.is_empty() {
                let table = tables.entry(key).or_default();
                for (name, value) in &svc.overrides {
                    table.insert(name.clone(), value.clone());
                }
            }
            present.push(tables.contains_key(&key));
        }
        self.services
            .iter()
            .zip(present)
            .map(|(svc, has)| {
                has.then(|| tables.get(&(svc.name.as_str(), svc.kind.as_str())).cloned())
                    .flatten()
            })
            .collect()
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Does this daemon option take the next argument as its value? Only `-o` does; `-` alone
/// does too, because Postfix looks up the (empty) option letter with `strchr`, which finds
/// the string's terminator.
pub(crate) fn takes_value(arg: &[u8]) -> bool {
    matches!(arg.get(1), None | Some(b'o'))
}

/// Is `arg` still a daemon option (the options end at the first non-option or `--`)?
pub(crate) fn is_option(arg: &[u8]) -> bool {
    arg.first() == Some(&b'-') && arg != b"--"
}

fn parse_entry(
    logical: &lex::LogicalLine,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<Service, MasterCfError> {
    let text = lex::c_str(&logical.text);
    let mut argv = lex::split_fields(text);
    if argv.len() < 8 {
        return Err(MasterCfError::FieldCount {
            path: printable(path.as_bytes()),
            line: logical.line,
        });
    }
    check_entry(&argv, text)?;
    normalize_args(&mut argv, warnings);
    let overrides = collect_overrides(&argv[8..]);
    let mut it = argv.into_iter().map(|f| lossy(&f));
    let mut next = || it.next().unwrap_or_default();
    Ok(Service {
        name: next(),
        kind: next(),
        private: next(),
        unpriv: next(),
        chroot: next(),
        wakeup: next(),
        maxproc: next(),
        command: next(),
        args: it.collect(),
        overrides,
        line: logical.line,
        raw: lossy(text),
    })
}

/// The per-column checks, in Postfix's order; the first failure is the error.
fn check_entry(argv: &[Vec<u8>], text: &[u8]) -> Result<(), MasterCfError> {
    let bad = |field: &'static str, value: &[u8]| MasterCfError::InvalidField {
        field,
        value: printable(value),
        text: printable(text),
    };
    if !SERVICE_TYPES
        .iter()
        .any(|t| t.as_bytes() == argv[1].as_slice())
    {
        return Err(bad("type", &argv[1]));
    }
    for (field, value) in [
        ("private", &argv[2]),
        ("unprivileged", &argv[3]),
        ("chroot", &argv[4]),
    ] {
        if !matches!(value.as_slice(), b"y" | b"n" | b"-") {
            return Err(bad(field, value));
        }
    }
    // wakeup: `-`, or digits with one optional trailing `?` (a bare `?` passes too).
    let wakeup = argv[5].as_slice();
    let digits = wakeup.strip_suffix(b"?").unwrap_or(wakeup);
    if wakeup != b"-" && wakeup != b"-?" && !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad("wakeup", wakeup));
    }
    let maxproc = argv[6].as_slice();
    if maxproc != b"-" && !maxproc.iter().all(u8::is_ascii_digit) {
        return Err(bad("process_limit", maxproc));
    }
    Ok(())
}

/// Brings the daemon options into canonical form, as `postconf` does before it prints.
fn normalize_args(argv: &mut Vec<Vec<u8>>, warnings: &mut Vec<String>) {
    let mut field = 8;
    while field < argv.len() {
        if !is_option(&argv[field]) {
            break;
        }
        // "-vo" splits into "-v" "-o": the first `o` after the option's first letter starts a
        // new option (so "-verbose" becomes "-verb" "-ose").
        if let Some(at) = argv[field].iter().skip(2).position(|&b| b == b'o') {
            let at = at + 2;
            let mut tail = b"-".to_vec();
            tail.extend_from_slice(&argv[field][at..]);
            argv[field].truncate(at);
            argv.insert(field + 1, tail);
        }
        if !takes_value(&argv[field]) {
            field += 1;
            continue;
        }
        let extract;
        if argv[field].len() > 2 {
            // "-oname=value" becomes "-o" "name=value".
            let value = argv[field].split_off(2);
            argv.insert(field + 1, value);
            field += 1;
            extract = argv[field].first() == Some(&b'{');
        } else if field + 1 < argv.len() {
            field += 1;
            extract = argv[field].first() == Some(&b'{');
        } else {
            extract = false;
        }
        if extract {
            extract_field(&mut argv[field], warnings);
            if argv[field - 1].get(1) == Some(&b'o') {
                normalize_nameval(&mut argv[field], warnings);
            }
        }
        field += 1;
    }
    for arg in argv.iter_mut().skip(field) {
        if arg.first() == Some(&b'{') {
            extract_field(arg, warnings);
        }
    }
}

fn extract_field(arg: &mut Vec<u8>, warnings: &mut Vec<String>) {
    let (inner, err) = lex::extract_braced(arg);
    if let Some(err) = err {
        // Postfix names the file "master.cf" here, not its full path.
        let mut msg = b"master.cf: ".to_vec();
        msg.extend_from_slice(&err);
        warnings.push(printable(&msg));
    }
    *arg = inner;
}

fn normalize_nameval(arg: &mut Vec<u8>, warnings: &mut Vec<String>) {
    match lex::split_nameval(arg) {
        Ok((name, value)) => {
            let mut joined = name.to_vec();
            joined.push(b'=');
            joined.extend_from_slice(value);
            *arg = joined;
        }
        Err(err) => {
            let mut msg = format!("master.cf: {err}: \"").into_bytes();
            msg.extend_from_slice(arg);
            msg.push(b'"');
            warnings.push(printable(&msg));
        }
    }
}

/// The `-o name=value` pairs among the (normalized) daemon options.
fn collect_overrides(args: &[Vec<u8>]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() && is_option(&args[i]) {
        if takes_value(&args[i]) && i + 1 < args.len() {
            if args[i] == b"-o"
                && let Ok((name, value)) = lex::split_nameval(&args[i + 1])
            {
                out.push((lossy(name), lossy(value)));
            }
            i += 1;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
// Case tables are tuples of slices; naming each tuple type would not make them clearer.
#[allow(clippy::type_complexity)]
mod tests;
