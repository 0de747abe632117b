//! placeholder: the table files `postmap` and `postalias` build: `hash:`, `btree:`, `lmdb:`,
//! `cdb:`.

use crate::{Map, MapError, OpenFlags};

/// What to do with a key that is already in the table being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicates {
    /// Keep the first value and report the duplicate (postmap's default).
    Warn,
    /// Keep the first value silently (`postmap -w`).
    Ignore,
    /// The later value wins (`postmap -r`).
    Replace,
}

/// What `Writer::put` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Inserted,
    /// The key was there already; what happened follows [`Duplicates`].
    Duplicate,
}

/// Options for building a table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateOptions {
    pub duplicates: Duplicates,
    /// Store keys and values with a terminating NUL, as Postfix does by default (`-N`);
    /// `false` for `-n`.
    pub nul_terminated: bool,
    /// The file's mode; Postfix gives the new file the source file's owner and mode.
    pub mode: u32,
}

/// A table file being built: entries go in, and `finish` replaces the old file atomically,
/// so that a reader sees the old table or the new one, never a half-built file.
pub trait Writer {
    fn put(&mut self, key: &str, value: &str) -> Result<Put, MapError>;
    fn finish(self: Box<Self>) -> Result<(), MapError>;
}

/// An existing table file opened for in-place changes (`postmap -i`, `postmap -d`).
pub trait Updater {
    fn put(&mut self, key: &str, value: &str, duplicates: Duplicates) -> Result<Put, MapError>;
    /// Deletes `key`; `false` when it was not there.
    fn delete(&mut self, key: &str) -> Result<bool, MapError>;
    fn finish(self: Box<Self>) -> Result<(), MapError>;
}

/// The file an indexed table of `kind` named `name` lives in (`name.db`, `name.lmdb`,
/// `name.cdb`).
pub fn file_path(kind: &str, name: &str) -> String {
    match kind {
        "lmdb" => format!("{name}.lmdb"),
        "cdb" => format!("{name}.cdb"),
        _ => format!("{name}.db"),
    }
}

/// Opens an indexed table for lookups.
pub fn open(kind: &str, name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let _ = (name, flags);
    Err(MapError::Config(format!(
        "unsupported dictionary type: {kind}"
    )))
}

/// Starts building a new table file.
pub fn create(kind: &str, name: &str, opts: CreateOptions) -> Result<Box<dyn Writer>, MapError> {
    let _ = (name, opts);
    Err(MapError::Config(format!(
        "unsupported dictionary type: {kind}"
    )))
}

/// Opens an existing table file for in-place changes.
pub fn update(kind: &str, name: &str, opts: CreateOptions) -> Result<Box<dyn Updater>, MapError> {
    let _ = (name, opts);
    Err(MapError::Config(format!(
        "unsupported dictionary type: {kind}"
    )))
}
