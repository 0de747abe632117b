//! The table files that `postmap` and `postalias` build: `hash:`, `btree:`, `lmdb:`, `cdb:`.
//!
//! - [`lmdb`]: `NAME.lmdb`, an LMDB 0.9 data file (MDB_NOSUBDIR, no lock file) that Postfix's
//!   `lmdb:` reads and writes, and that we read and write in our own safe code.
//! - [`cdb`]: `NAME.cdb`, D. J. Bernstein's constant database as tinycdb writes it.
//! - [`db`]: `NAME.db` for `hash:` and `btree:`. Postfix keeps those in Berkeley DB, which
//!   Tern does not link; Tern's `.db` is a versioned cdb (see that module), and a Berkeley DB
//!   file left by Postfix is recognised and refused with the command that rebuilds it.
//!
//! Keys and values are stored with a terminating NUL or without one (Postfix's
//! DICT_FLAG_TRY1NULL / DICT_FLAG_TRY0NULL): a lookup tries the key with a NUL first, then
//! without, and sticks to whichever form found something first, as Postfix's dict_*.c do.
//! `lmdb:`, `hash:` and `btree:` are written with the NUL by default, `cdb:` without
//! ([`default_nul`]).
//!
//! Every writer builds a temporary file beside the table and renames it over the old one
//! after an fsync, so a reader sees the old table or the new one. Updates (`postmap -i`,
//! `postmap -d`) read the table, change it in memory and write it anew the same way.
//!
//! Trust: a table file may be truncated, corrupt or hostile; reading it gives a
//! [`MapError`], never a panic. Keys and values are bytes; values are returned up to their
//! first NUL (as Postfix's C strings end there), with invalid UTF-8 replaced.

pub mod cdb;
pub mod db;
mod file;
pub mod lmdb;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime};

use crate::{Map, MapError, OpenFlags};

pub use db::is_berkeley_db;

/// A stored key and value, as bytes (with their NUL when the table keeps one).
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

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
    /// `false` for `-n`. Postfix's default differs per type: see [`default_nul`].
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

/// Whether Postfix writes keys and values of `kind` with a terminating NUL when neither
/// `-N` nor `-n` is given: yes for `hash:`, `btree:` and `lmdb:`, no for `cdb:`
/// (dict_cdb.c chooses DICT_FLAG_TRY0NULL when undecided).
pub fn default_nul(kind: &str) -> bool {
    kind != "cdb"
}

/// Opens an indexed table for lookups.
pub fn open(kind: &str, name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let map: Box<dyn Map> = match kind {
        "lmdb" => Box::new(lmdb::LmdbMap::open(name)?),
        "cdb" => Box::new(cdb::CdbMap::open(name)?),
        "hash" | "btree" => Box::new(db::DbMap::open(kind, name)?),
        other => return Err(unsupported(other)),
    };
    if let Some(warning) = staleness(kind, name, SystemTime::now()) {
        (flags.warn)(&warning);
    }
    Ok(map)
}

/// Postfix's warning when a table's source file is newer than its indexed file, except when
/// the source changed in the last 100 seconds (a rebuild may be under way); beyond
/// Postfix, it names the command that rebuilds the table. (Postfix warns for `lmdb:` only in
/// its daemons; Tern warns for every indexed type.)
fn staleness(kind: &str, name: &str, now: SystemTime) -> Option<String> {
    let mtime = |path: &str| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let db = file_path(kind, name);
    let (source, indexed) = (mtime(name)?, mtime(&db)?);
    let settled = now.checked_sub(Duration::from_secs(100))?;
    (source > indexed && source < settled).then(|| {
        format!(
            "database {db} is older than source file {name}; rebuild it with \"postmap \
             {kind}:{name}\" (\"postalias {kind}:{name}\" for an aliases file)"
        )
    })
}

/// Starts building a new table file.
pub fn create(kind: &str, name: &str, opts: CreateOptions) -> Result<Box<dyn Writer>, MapError> {
    match kind {
        "lmdb" | "cdb" | "hash" | "btree" => Ok(Box::new(TableWriter::new(kind, name, opts))),
        other => Err(unsupported(other)),
    }
}

/// Opens an existing table file for in-place changes; a missing file is created, as
/// `postmap -i` and `postmap -d` do. `cdb:` cannot be changed in place: Postfix's message.
pub fn update(kind: &str, name: &str, opts: CreateOptions) -> Result<Box<dyn Updater>, MapError> {
    let entries = match kind {
        "lmdb" => lmdb::read_all(name)?,
        "hash" | "btree" => db::read_all(kind, name)?,
        "cdb" => {
            return Err(MapError::Config(
                "dict_cdb_open: inappropriate open flags for cdb database - specify O_RDONLY \
                 or O_WRONLY|O_CREAT|O_TRUNC"
                    .to_owned(),
            ));
        }
        other => return Err(unsupported(other)),
    };
    let mut writer = TableWriter::new(kind, name, opts);
    for (key, value) in entries {
        writer.entries.put_raw(key, value, Duplicates::Replace);
    }
    Ok(Box::new(writer))
}

fn unsupported(kind: &str) -> MapError {
    MapError::Config(format!("unsupported dictionary type: {kind}"))
}

/// The key and value bytes as stored: with a terminating NUL when `nul` is set, and never
/// past a NUL inside the text (Postfix's strings end there).
fn stored(text: &str, nul: bool) -> Vec<u8> {
    let bytes = c_str(text.as_bytes());
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.extend_from_slice(bytes);
    if nul {
        out.push(0);
    }
    out
}

/// A lookup key as stored, like [`stored`], borrowed when it needs no NUL: a lookup in a
/// table without NULs (every `cdb:` table by default) copies nothing.
fn lookup_form(text: &str, nul: bool) -> Cow<'_, [u8]> {
    if nul {
        Cow::Owned(stored(text, true))
    } else {
        Cow::Borrowed(c_str(text.as_bytes()))
    }
}

/// `bytes` up to its first NUL.
fn c_str(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

/// A stored key or value as text: up to its first NUL, invalid UTF-8 replaced.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(c_str(bytes)).into_owned()
}

/// A found value as text, like [`text`], reusing its buffer when it is valid UTF-8.
fn value_text(mut bytes: Vec<u8>) -> String {
    let end = c_str(&bytes).len();
    bytes.truncate(end);
    String::from_utf8(bytes)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

/// Which key forms a table still tries (DICT_FLAG_TRY1NULL, DICT_FLAG_TRY0NULL). After the
/// first hit, only the form that hit is tried, as Postfix's lookups do.
#[derive(Debug)]
struct NulForms(AtomicU8);

const TRY1NULL: u8 = 1;
const TRY0NULL: u8 = 2;

impl NulForms {
    fn both() -> NulForms {
        NulForms(AtomicU8::new(TRY1NULL | TRY0NULL))
    }

    /// Looks `key` up with `get` in the forms still tried; the value as text.
    fn lookup(
        &self,
        key: &str,
        mut get: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, MapError>,
    ) -> Result<Option<String>, MapError> {
        let forms = self.0.load(Ordering::Relaxed);
        if forms & TRY1NULL != 0
            && let Some(value) = get(&lookup_form(key, true))?
        {
            self.0.fetch_and(!TRY0NULL, Ordering::Relaxed);
            return Ok(Some(value_text(value)));
        }
        if forms & TRY0NULL != 0
            && let Some(value) = get(&lookup_form(key, false))?
        {
            self.0.fetch_and(!TRY1NULL, Ordering::Relaxed);
            return Ok(Some(value_text(value)));
        }
        Ok(None)
    }
}

/// Entries collected for a new table, in the order they first came, with the first (or,
/// when replacing, the last) value of each key. A removed entry leaves a hole, so that
/// deleting stays cheap in a large table.
#[derive(Debug, Default)]
struct Entries {
    list: Vec<Option<Entry>>,
    /// Where each key is in `list`, by the key's 64-bit hash: the hash is computed once per
    /// key and the table never rehashes keys when it grows.
    index: HashMap<u64, usize, BuildIdentity>,
    /// Keys whose hash collides with a different key already in `index` (rare).
    collisions: HashMap<Vec<u8>, usize>,
}

/// FNV-1a over a key: fast on short keys; the keys come from the administrator's own source
/// file, so flooding is not a concern here.
fn fnv(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The hasher of a map whose keys are hashes already.
#[derive(Debug, Clone, Copy, Default)]
struct BuildIdentity;

impl std::hash::BuildHasher for BuildIdentity {
    type Hasher = Identity;
    fn build_hasher(&self) -> Identity {
        Identity(0)
    }
}

#[derive(Debug)]
struct Identity(u64);

impl std::hash::Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here (write_u64 below); fold anything else in.
        self.0 = bytes
            .iter()
            .fold(self.0, |h, &b| h.rotate_left(8) ^ u64::from(b));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Entries {
    /// Where `key` is in `list`, if it is there.
    fn find(&self, key: &[u8], hash: u64) -> Option<usize> {
        if let Some(&at) = self.index.get(&hash)
            && self
                .list
                .get(at)
                .and_then(Option::as_ref)
                .is_some_and(|(k, _)| k == key)
        {
            return Some(at);
        }
        self.collisions.get(key).copied()
    }

    fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>, duplicates: Duplicates) -> Put {
        let hash = fnv(&key);
        if let Some(at) = self.find(&key, hash) {
            if duplicates == Duplicates::Replace
                && let Some(entry) = self.list.get_mut(at).and_then(Option::as_mut)
            {
                entry.1 = value;
            }
            return Put::Duplicate;
        }
        let at = self.list.len();
        let slot_taken = self
            .index
            .get(&hash)
            .is_some_and(|&other| self.list.get(other).is_some_and(Option::is_some));
        if slot_taken {
            self.collisions.insert(key.clone(), at);
        } else {
            self.index.insert(hash, at);
        }
        self.list.push(Some((key, value)));
        Put::Inserted
    }

    /// Removes `key`; whether it was there.
    fn remove(&mut self, key: &[u8]) -> bool {
        let hash = fnv(key);
        let Some(at) = self.find(key, hash) else {
            return false;
        };
        if self.index.get(&hash) == Some(&at) {
            self.index.remove(&hash);
        } else {
            self.collisions.remove(key);
        }
        self.list.get_mut(at).and_then(Option::take).is_some()
    }

    fn into_list(self) -> Vec<Entry> {
        self.list.into_iter().flatten().collect()
    }
}

/// The one writer for every indexed type: entries are collected in memory (for duplicate
/// detection and, for `lmdb:` and `btree:`, sorting), then written in one pass.
#[derive(Debug)]
struct TableWriter {
    kind: String,
    name: String,
    opts: CreateOptions,
    entries: Entries,
}

impl TableWriter {
    fn new(kind: &str, name: &str, opts: CreateOptions) -> TableWriter {
        TableWriter {
            kind: kind.to_owned(),
            name: name.to_owned(),
            opts,
            entries: Entries::default(),
        }
    }

    fn write(self) -> Result<(), MapError> {
        let path = file_path(&self.kind, &self.name);
        let list = self.entries.into_list();
        match self.kind.as_str() {
            "lmdb" => lmdb::write(&self.name, &path, list, self.opts.mode),
            "cdb" => cdb::write(&path, &list, self.opts.mode),
            _ => db::write(&self.kind, &path, list, self.opts.mode),
        }
    }
}

impl Writer for TableWriter {
    fn put(&mut self, key: &str, value: &str) -> Result<Put, MapError> {
        let nul = self.opts.nul_terminated;
        let key = stored(key, nul);
        if self.kind == "lmdb" {
            lmdb::check_sizes(&self.name, &key)?;
        }
        Ok(self
            .entries
            .put_raw(key, stored(value, nul), self.opts.duplicates))
    }

    fn finish(self: Box<Self>) -> Result<(), MapError> {
        self.write()
    }
}

impl Updater for TableWriter {
    fn put(&mut self, key: &str, value: &str, duplicates: Duplicates) -> Result<Put, MapError> {
        let nul = self.opts.nul_terminated;
        let key = stored(key, nul);
        if self.kind == "lmdb" {
            lmdb::check_sizes(&self.name, &key)?;
        }
        Ok(self.entries.put_raw(key, stored(value, nul), duplicates))
    }

    /// Postfix tries the key with its NUL first, then without (dict_lmdb_delete()).
    fn delete(&mut self, key: &str) -> Result<bool, MapError> {
        Ok(self.entries.remove(&stored(key, true)) || self.entries.remove(&stored(key, false)))
    }

    fn finish(self: Box<Self>) -> Result<(), MapError> {
        self.write()
    }
}

#[cfg(test)]
mod tests;
