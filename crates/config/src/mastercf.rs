//! `master.cf`: the service table.
//!
//! Eight columns (service, type, private, unpriv, chroot, wakeup, maxproc, command + args),
//! `-` for a column's default, continuation lines that start with whitespace, comments, and
//! `-o name=value` overrides (with `{ }` quoting for values that contain spaces). The
//! formatters print what `postconf -M`, `-Mf`, `-F` and `-P` print.

use std::path::Path;

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
    /// The arguments after the command, as written, `-o` included.
    pub args: Vec<String>,
    /// The `-o name=value` overrides, in order.
    pub overrides: Vec<(String, String)>,
    /// 1-based line number of the entry's first line.
    pub line: usize,
}

/// A parsed master.cf: the entries in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MasterCf {
    pub services: Vec<Service>,
}

/// What went wrong reading master.cf; `Display` gives Postfix's message text.
#[derive(Debug, thiserror::Error)]
pub enum MasterCfError {
    #[error("placeholder")]
    Placeholder,
}

impl MasterCf {
    /// Parses master.cf text. `path` is used in messages only.
    pub fn parse(text: &[u8], path: &str) -> Result<MasterCf, MasterCfError> {
        let _ = (text, path);
        unimplemented!()
    }

    /// Reads and parses `dir/master.cf`.
    pub fn load(dir: &Path) -> Result<MasterCf, MasterCfError> {
        let _ = dir;
        unimplemented!()
    }
}
