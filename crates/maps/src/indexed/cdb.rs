//! `cdb:` tables: `NAME.cdb` in D. J. Bernstein's constant-database format, as tinycdb
//! (which Postfix's dict_cdb.c uses) writes and reads it.
//!
//! Layout, all numbers little-endian u32: a 2048-byte header of 256 (position, slots)
//! pairs, one per hash table; the records, each (key length, value length, key, value);
//! then the 256 hash tables, each slot a (hash, record position) pair. A key's hash is
//! `h = ((h << 5) + h) ^ byte` from 5381; table `h & 255`, first slot `(h >> 8) % slots`,
//! then linear probing; a slot with position 0 ends the search.
//!
//! The same body, after a 16-byte header, is Tern's `hash:`/`btree:` file ([`super::db`]):
//! every reader and writer here takes the offset where the cdb body begins.
//!
//! Postfix's cdb tables cannot be listed (`postmap -s`) or changed in place (`postmap -i`);
//! Tern gives Postfix's messages for both.
//!
//! Trust: every position and length read from the file is checked against the file's size
//! before use; a bad one gives `error reading PATH: Protocol error`, as tinycdb's EPROTO.

use std::borrow::Cow;

use super::file::{ReadAt, ReadError, TempFile, strerror};
use super::{Entry, NulForms, text};
use crate::{Map, MapError, Owner};

/// The header: 256 (position, slots) pairs.
const HEADER: usize = 2048;

/// How many hash-table slots one read fetches.
const SLOTS_PER_READ: u64 = 8;

/// cdb's hash of `key`.
pub fn hash(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |h, &byte| {
        (h.wrapping_shl(5).wrapping_add(h)) ^ u32::from(byte)
    })
}

/// An open cdb body for lookups.
#[derive(Debug)]
pub(crate) struct Cdb {
    file: ReadAt,
    /// Where the cdb body begins in the file.
    base: u64,
    /// The body's size.
    size: u64,
    /// The 256 (position, slots) pairs.
    tables: Vec<(u32, u32)>,
    /// Where the records end, as tinycdb's cdb_init() takes it: the first hash table's
    /// position, kept within [HEADER, size]. Hash tables must lie at or after it and
    /// records before it; tinycdb answers EPROTO otherwise, so a damaged header gives
    /// Postfix's "Protocol error" here too rather than a lucky answer.
    dend: u64,
    /// The path, for messages.
    path: String,
}

impl Cdb {
    /// Opens the cdb body that begins at `base` in `file`; `None` when the file is too short
    /// to hold a header (tinycdb's cdb_init() refuses it).
    pub(crate) fn new(file: ReadAt, base: u64, path: &str) -> Option<Cdb> {
        let size = file.len.checked_sub(base)?;
        let head = file.read(base, HEADER).ok()?;
        let tables: Vec<(u32, u32)> = head
            .chunks_exact(8)
            .map(|pair| (le32(pair, 0), le32(pair, 4)))
            .collect();
        let first = tables.first().map_or(0, |&(pos, _)| u64::from(pos));
        let dend = first.clamp(HEADER as u64, size.max(HEADER as u64));
        Some(Cdb {
            file,
            base,
            size,
            tables,
            dend,
            path: path.to_owned(),
        })
    }

    pub(crate) fn uid(&self) -> Option<u32> {
        self.file.uid()
    }

    /// The value stored under exactly `key`.
    pub(crate) fn find(&self, key: &[u8]) -> Result<Option<Vec<u8>>, MapError> {
        // A key longer than the whole data section cannot be stored (tinycdb: not found).
        if key.len() as u64 >= self.dend {
            return Ok(None);
        }
        let h = hash(key);
        let (start, slots) = self.tables[(h & 255) as usize];
        if slots == 0 {
            return Ok(None);
        }
        // 32-bit division: slots is a nonzero u32 (checked above).
        let first = (h >> 8) % slots;
        let (start, slots) = (u64::from(start), u64::from(slots));
        if slots > self.size / 8 || start < self.dend || start + slots * 8 > self.size {
            return Err(self.corrupt());
        }
        let mut slot = u64::from(first);
        // Slots are read several at a time: probing usually ends within a few.
        let mut window: Cow<'_, [u8]> = Cow::Borrowed(&[]);
        let mut window_start = 0;
        for _ in 0..slots {
            let in_window = slot >= window_start && slot - window_start < (window.len() / 8) as u64;
            if !in_window {
                // At most SLOTS_PER_READ slots, 8 bytes each.
                let count = usize::try_from((slots - slot).min(SLOTS_PER_READ)).unwrap_or(8);
                window = self.read(start + slot * 8, count * 8)?;
                window_start = slot;
            }
            let at = usize::try_from(slot - window_start).unwrap_or(0) * 8;
            let (slot_hash, pos) = (le32(&window, at), u64::from(le32(&window, at + 4)));
            if pos == 0 {
                return Ok(None);
            }
            if slot_hash == h
                && let Some(value) = self.record_if(pos, key)?
            {
                return Ok(Some(value));
            }
            // The next slot, wrapping to the first (no division per step).
            slot += 1;
            if slot == slots {
                slot = 0;
            }
        }
        Ok(None)
    }

    /// The value of the record at `pos` when its key is `key`.
    fn record_if(&self, pos: u64, key: &[u8]) -> Result<Option<Vec<u8>>, MapError> {
        // A record lies in the data section, before the hash tables (tinycdb's bounds).
        if pos.saturating_add(8) > self.dend {
            return Err(self.corrupt());
        }
        // One read for the lengths, the key and (usually) the value.
        let head = self.read_upto(pos, 8 + key.len() + 256)?;
        if head.len() < 8 {
            return Err(self.corrupt());
        }
        let (klen, vlen) = (le32(&head, 0) as usize, le32(&head, 4) as usize);
        if klen != key.len() {
            return Ok(None);
        }
        let key_end = pos + 8 + klen as u64;
        if key_end > self.dend {
            return Err(self.corrupt());
        }
        let Some(found) = head.get(8..8 + klen) else {
            return Err(self.corrupt());
        };
        if found != key {
            return Ok(None);
        }
        if key_end.saturating_add(vlen as u64) > self.dend {
            return Err(self.corrupt());
        }
        let from = 8 + klen;
        match head.get(from..from + vlen) {
            Some(value) => Ok(Some(value.to_vec())),
            None => Ok(Some(self.read(pos + from as u64, vlen)?.into_owned())),
        }
    }

    /// Every record, in file order.
    pub(crate) fn records(&self) -> Result<Vec<Entry>, MapError> {
        // The records end where the first hash table begins.
        let end = self
            .tables
            .iter()
            .map(|&(pos, _)| u64::from(pos))
            .min()
            .unwrap_or(HEADER as u64)
            .clamp(HEADER as u64, self.size);
        let len = usize::try_from(end - HEADER as u64).map_err(|_| self.corrupt())?;
        let body = self.read(HEADER as u64, len)?;
        let mut out = Vec::new();
        let mut at = 0usize;
        while at < body.len() {
            let lens = body.get(at..at + 8).ok_or_else(|| self.corrupt())?;
            let (klen, vlen) = (le32(lens, 0) as usize, le32(lens, 4) as usize);
            let key_end = (at + 8).checked_add(klen).ok_or_else(|| self.corrupt())?;
            let end = key_end.checked_add(vlen).ok_or_else(|| self.corrupt())?;
            let key = body.get(at + 8..key_end).ok_or_else(|| self.corrupt())?;
            let value = body.get(key_end..end).ok_or_else(|| self.corrupt())?;
            out.push((key.to_vec(), value.to_vec()));
            at = end;
        }
        Ok(out)
    }

    fn read(&self, pos: u64, len: usize) -> Result<Cow<'_, [u8]>, MapError> {
        if pos.saturating_add(len as u64) > self.size {
            return Err(self.corrupt());
        }
        self.file
            .read(self.base + pos, len)
            .map_err(|err| self.read_error(err))
    }

    fn read_upto(&self, pos: u64, len: usize) -> Result<Cow<'_, [u8]>, MapError> {
        self.file
            .read_upto(self.base + pos, len)
            .map_err(|err| self.read_error(err))
    }

    fn read_error(&self, err: ReadError) -> MapError {
        match err {
            ReadError::Short => self.corrupt(),
            ReadError::Io(err) => {
                MapError::Retry(format!("error reading {}: {}", self.path, strerror(&err)))
            }
        }
    }

    /// tinycdb's EPROTO for a position or length outside the file.
    fn corrupt(&self) -> MapError {
        MapError::Retry(format!("error reading {}: Protocol error", self.path))
    }
}

/// An open `cdb:` table.
#[derive(Debug)]
pub struct CdbMap {
    spec: String,
    cdb: Cdb,
    forms: NulForms,
}

impl CdbMap {
    /// Opens `NAME.cdb`, with Postfix's messages for a missing or too short file.
    pub fn open(name: &str) -> Result<CdbMap, MapError> {
        let path = super::file_path("cdb", name);
        let file = ReadAt::open(&path)?;
        let cdb = Cdb::new(file, 0, &path).ok_or_else(|| {
            MapError::Config(format!(
                "dict_cdbq_open: unable to init {path}: Protocol error"
            ))
        })?;
        // dict_cdb.c names the table by its file: `cdb:NAME.cdb`.
        Ok(CdbMap {
            spec: format!("cdb:{path}"),
            cdb,
            forms: NulForms::both(),
        })
    }
}

impl Map for CdbMap {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, MapError> {
        self.forms.lookup(key, |stored| self.cdb.find(stored))
    }

    /// Postfix's cdb tables cannot be listed.
    fn sequence(&self) -> Result<Vec<(String, String)>, MapError> {
        Err(MapError::Config(format!(
            "table {}: sequence operation is not supported",
            self.spec
        )))
    }

    fn owner(&self) -> Owner {
        match self.cdb.uid() {
            Some(0) => Owner::Trusted,
            Some(uid) => Owner::User(uid),
            None => Owner::Unknown,
        }
    }
}

/// Every record of a cdb body as text pairs.
pub(crate) fn text_records(cdb: &Cdb) -> Result<Vec<(String, String)>, MapError> {
    Ok(cdb
        .records()?
        .iter()
        .map(|(key, value)| (text(key), text(value)))
        .collect())
}

/// Writes `entries` as `PATH` (through `PATH.tmp`).
pub(crate) fn write(path: &str, entries: &[Entry], mode: u32) -> Result<(), MapError> {
    let mut out = TempFile::create(path, mode)?;
    write_body(&mut out, entries)?;
    out.commit()
}

/// Writes a cdb body for `entries`, in their order, to `out`. Every position is known
/// before anything is written, so the file is written front to back in one pass.
pub(crate) fn write_body(out: &mut TempFile, entries: &[Entry]) -> Result<(), MapError> {
    // A cdb file cannot exceed 4 GiB: its positions are 32-bit.
    let tmp_path = out.tmp_path.clone();
    let too_large = || MapError::Config(format!("error writing {tmp_path}: File too large"));
    // Record positions and hashes, grouped by table.
    let mut pos = HEADER as u64;
    let mut by_table: Vec<Vec<(u32, u32)>> = vec![Vec::new(); 256];
    for (key, value) in entries {
        let h = hash(key);
        let at = u32::try_from(pos).map_err(|_| too_large())?;
        by_table[(h & 255) as usize].push((h, at));
        pos += 8 + key.len() as u64 + value.len() as u64;
    }
    // Each table has twice as many slots as entries, so probing ends.
    let mut header = Vec::with_capacity(HEADER);
    let mut tables = Vec::new();
    for table in &by_table {
        let slots = table.len() * 2;
        let at = u32::try_from(pos).map_err(|_| too_large())?;
        let count = u32::try_from(slots).map_err(|_| too_large())?;
        header.extend_from_slice(&at.to_le_bytes());
        header.extend_from_slice(&count.to_le_bytes());
        let mut filled = vec![(0u32, 0u32); slots];
        for &(h, rec) in table {
            let mut slot = (h >> 8) as usize % slots;
            while filled[slot].1 != 0 {
                // The next slot, wrapping to the first (no division per step).
                slot += 1;
                if slot == slots {
                    slot = 0;
                }
            }
            filled[slot] = (h, rec);
        }
        tables.push(filled);
        pos += slots as u64 * 8;
    }
    u32::try_from(pos).map_err(|_| too_large())?;
    out.write(&header)?;
    for (key, value) in entries {
        // Lengths fit: the total size was checked above.
        let klen = u32::try_from(key.len()).map_err(|_| too_large())?;
        let vlen = u32::try_from(value.len()).map_err(|_| too_large())?;
        out.write(&klen.to_le_bytes())?;
        out.write(&vlen.to_le_bytes())?;
        out.write(key)?;
        out.write(value)?;
    }
    let mut buf = Vec::new();
    for filled in tables {
        buf.clear();
        for (h, rec) in filled {
            buf.extend_from_slice(&h.to_le_bytes());
            buf.extend_from_slice(&rec.to_le_bytes());
        }
        out.write(&buf)?;
    }
    Ok(())
}

/// The little-endian u32 at `at` in `bytes`; 0 past the end (callers check lengths).
fn le32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::indexed::{CreateOptions, Duplicates, Put, create};

    fn opts(nul: bool) -> CreateOptions {
        CreateOptions {
            duplicates: Duplicates::Warn,
            nul_terminated: nul,
            mode: 0o644,
        }
    }

    #[test]
    fn hash_is_djb() {
        // Known values of cdb's hash.
        assert_eq!(hash(b""), 5381);
        assert_eq!(hash(b"a"), 177_604);
        assert_eq!(hash(b"ab"), 5_860_902);
    }

    #[test]
    fn round_trip_with_and_without_nul() {
        let dir = tempfile::tempdir().unwrap();
        for nul in [false, true] {
            let name = dir.path().join(format!("t{nul}")).display().to_string();
            let mut w = create("cdb", &name, opts(nul)).unwrap();
            for i in 0..1000 {
                assert_eq!(
                    w.put(&format!("k{i}"), &format!("v{i}")).unwrap(),
                    Put::Inserted
                );
            }
            assert_eq!(w.put("k5", "other").unwrap(), Put::Duplicate);
            w.finish().unwrap();
            let map = CdbMap::open(&name).unwrap();
            for i in 0..1000 {
                assert_eq!(map.lookup(&format!("k{i}")).unwrap(), Some(format!("v{i}")));
            }
            assert_eq!(map.lookup("k5").unwrap().as_deref(), Some("v5"));
            assert_eq!(map.lookup("nope").unwrap(), None);
            assert_eq!(map.spec(), format!("cdb:{name}.cdb"));
            let records = map.cdb.records().unwrap();
            assert_eq!(records.len(), 1000);
            assert_eq!(
                records[0].0,
                if nul {
                    b"k0\0".to_vec()
                } else {
                    b"k0".to_vec()
                }
            );
        }
    }

    #[test]
    fn short_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("x").display().to_string();
        let err = CdbMap::open(&name).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("open database {name}.cdb: No such file or directory")
        );
        std::fs::write(format!("{name}.cdb"), [0u8; 100]).unwrap();
        let err = CdbMap::open(&name).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("dict_cdbq_open: unable to init {name}.cdb: Protocol error")
        );
    }

    #[test]
    fn damaged_header_is_a_protocol_error_as_in_tinycdb() {
        // tinycdb takes the first hash table's position as the end of the records: a
        // header whose first entry points past them makes every table "inside the data"
        // and every lookup EPROTO (Debian's postmap: "error reading X: Protocol error").
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("d").display().to_string();
        let mut w = create("cdb", &name, opts(false)).unwrap();
        for i in 0..100 {
            w.put(&format!("key{i}"), &format!("v{i}")).unwrap();
        }
        w.finish().unwrap();
        let path = format!("{name}.cdb");
        let mut bytes = std::fs::read(&path).unwrap();
        let protocol = format!("error reading {path}: Protocol error");
        let original = le32(&bytes, 0);
        // (first header entry's position, whether lookups fail): past the records, at the
        // header's end (no room for records), and as written.
        for (first, fails) in [(u32::MAX, true), (2048, true), (original, false)] {
            bytes[..4].copy_from_slice(&first.to_le_bytes());
            std::fs::write(&path, &bytes).unwrap();
            let map = CdbMap::open(&name).unwrap();
            for key in ["key7", "key99", "nokey"] {
                let got = map.lookup(key).map_err(|e| e.to_string());
                if fails && key != "nokey" {
                    assert_eq!(got, Err(protocol.clone()), "{key}");
                } else if !fails {
                    assert!(got.is_ok(), "{key}: {got:?}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn random_files_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..6000),
            keys in proptest::collection::vec("[a-z]{0,4}", 1..8),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let name = dir.path().join("r").display().to_string();
            std::fs::write(format!("{name}.cdb"), &bytes).unwrap();
            if let Ok(map) = CdbMap::open(&name) {
                for key in &keys {
                    let _ = map.lookup(key);
                }
                let _ = map.cdb.records();
            }
        }

        #[test]
        fn truncated_tables_never_panic(cut in 0usize..4000) {
            let dir = tempfile::tempdir().unwrap();
            let name = dir.path().join("t").display().to_string();
            let mut w = create("cdb", &name, opts(false)).unwrap();
            for i in 0..50 {
                w.put(&format!("key{i}"), &"v".repeat(i)).unwrap();
            }
            w.finish().unwrap();
            let path = format!("{name}.cdb");
            let full = std::fs::read(&path).unwrap();
            std::fs::write(&path, &full[..cut.min(full.len())]).unwrap();
            if let Ok(map) = CdbMap::open(&name) {
                for i in 0..50 {
                    let _ = map.lookup(&format!("key{i}"));
                }
                let _ = map.cdb.records();
            }
        }
    }
}
