//! `hash:` and `btree:` tables: `NAME.db`.
//!
//! Postfix keeps these in Berkeley DB, which Tern does not link. Tern's `NAME.db` is its
//! own format: a 16-byte header, then a cdb body exactly as [`super::cdb`] writes it (all
//! positions relative to the end of the header):
//!
//! ```text
//! offset 0   8 bytes  magic "\x7fTERNmap"
//! offset 8   u32 LE   format version, 1
//! offset 12  u32 LE   1 for hash:, 2 for btree: (never a Berkeley DB magic number)
//! offset 16  ...      cdb body
//! ```
//!
//! cdb gives one hash probe and one record read per lookup and a file written front to back
//! in one pass. A `btree:` file has its records sorted by key, so that `postmap -s` lists
//! them in key order as Berkeley DB's btree does; a `hash:` file keeps the source order.
//!
//! A Berkeley DB file left by Postfix (Btree magic 0x053162 or Hash magic 0x061561 at
//! offset 12, either byte order) is refused with the command that rebuilds it.
//!
//! Trust: as for cdb, every position is checked against the file size.

use std::path::Path;

use super::cdb::{self, Cdb};
use super::file::{ReadAt, TempFile};
use super::{Entry, NulForms, file_path};
use crate::{Map, MapError, Owner};

const MAGIC: &[u8; 8] = b"\x7fTERNmap";
const VERSION: u32 = 1;
const HEADER: usize = 16;

/// Berkeley DB's magic numbers (db.h: DB_BTREEMAGIC, DB_HASHMAGIC).
const BDB_MAGICS: [u32; 2] = [0x0005_3162, 0x0006_1561];

/// Whether `path` is a Berkeley DB btree or hash file (as Postfix's `hash:` and `btree:`
/// tables are), for `postfix check` and for the message that asks to rebuild it.
pub fn is_berkeley_db(path: impl AsRef<Path>) -> bool {
    let Ok(bytes) = std::fs::File::open(path).and_then(|file| {
        let mut head = [0u8; 16];
        std::io::Read::read_exact(&mut &file, &mut head)?;
        Ok(head)
    }) else {
        return false;
    };
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[12..16]);
    BDB_MAGICS.contains(&u32::from_le_bytes(word)) || BDB_MAGICS.contains(&u32::from_be_bytes(word))
}

/// An open `hash:` or `btree:` table.
#[derive(Debug)]
pub struct DbMap {
    spec: String,
    cdb: Cdb,
    forms: NulForms,
}

impl DbMap {
    /// Opens `NAME.db` as a table of `kind`.
    pub fn open(kind: &str, name: &str) -> Result<DbMap, MapError> {
        let path = file_path(kind, name);
        let file = ReadAt::open(&path)?;
        let head = file.read(0, HEADER).ok();
        let ours = head
            .as_deref()
            .is_some_and(|head| &head[..8] == MAGIC && head[8..12] == VERSION.to_le_bytes());
        if !ours {
            if is_berkeley_db(&path) {
                return Err(MapError::Config(format!(
                    "{path} is a Berkeley DB file made by Postfix; rebuild it with \
                     \"postmap {kind}:{name}\""
                )));
            }
            return Err(MapError::Config(format!(
                "open database {path}: Invalid argument"
            )));
        }
        let cdb = Cdb::new(file, HEADER as u64, &path)
            .ok_or_else(|| MapError::Config(format!("open database {path}: Invalid argument")))?;
        Ok(DbMap {
            spec: format!("{kind}:{name}"),
            cdb,
            forms: NulForms::both(),
        })
    }
}

impl Map for DbMap {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, MapError> {
        self.forms.lookup(key, |stored| self.cdb.find(stored))
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, MapError> {
        cdb::text_records(&self.cdb)
    }

    fn owner(&self) -> Owner {
        match self.cdb.uid() {
            Some(0) => Owner::Trusted,
            Some(uid) => Owner::User(uid),
            None => Owner::Unknown,
        }
    }
}

/// Every stored record of `NAME.db`, for an update; an empty table when there is no file.
pub(crate) fn read_all(kind: &str, name: &str) -> Result<Vec<Entry>, MapError> {
    if !Path::new(&file_path(kind, name)).exists() {
        return Ok(Vec::new());
    }
    DbMap::open(kind, name)?.cdb.records()
}

/// Writes `entries` as `PATH` (through `PATH.tmp`); sorted by key for `btree:`.
pub(crate) fn write(
    kind: &str,
    path: &str,
    mut entries: Vec<Entry>,
    mode: u32,
) -> Result<(), MapError> {
    let flavour: u32 = if kind == "btree" {
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        2
    } else {
        1
    };
    let mut out = TempFile::create(path, mode)?;
    out.write(MAGIC)?;
    out.write(&VERSION.to_le_bytes())?;
    out.write(&flavour.to_le_bytes())?;
    cdb::write_body(&mut out, &entries)?;
    out.commit()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::indexed::{CreateOptions, Duplicates, Put, create, update};

    fn opts(duplicates: Duplicates) -> CreateOptions {
        CreateOptions {
            duplicates,
            nul_terminated: true,
            mode: 0o640,
        }
    }

    #[test]
    fn btree_lists_in_key_order_hash_in_source_order() {
        let dir = tempfile::tempdir().unwrap();
        for (kind, want) in [("btree", ["a", "b", "c"]), ("hash", ["c", "a", "b"])] {
            let name = dir.path().join(kind).display().to_string();
            let mut w = create(kind, &name, opts(Duplicates::Warn)).unwrap();
            for key in ["c", "a", "b"] {
                w.put(key, &key.to_uppercase()).unwrap();
            }
            w.finish().unwrap();
            let map = DbMap::open(kind, &name).unwrap();
            let keys: Vec<String> = map.sequence().unwrap().into_iter().map(|e| e.0).collect();
            assert_eq!(keys, want);
            assert_eq!(map.lookup("b").unwrap().as_deref(), Some("B"));
            let mode = std::fs::metadata(format!("{name}.db")).unwrap();
            assert_eq!(
                std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
                0o640
            );
        }
    }

    #[test]
    fn duplicates_follow_the_option() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (Duplicates::Warn, "1"),
            (Duplicates::Ignore, "1"),
            (Duplicates::Replace, "2"),
        ];
        for (duplicates, want) in cases {
            let name = dir.path().join("d").display().to_string();
            let mut w = create("hash", &name, opts(duplicates)).unwrap();
            assert_eq!(w.put("k", "1").unwrap(), Put::Inserted);
            assert_eq!(w.put("k", "2").unwrap(), Put::Duplicate);
            w.finish().unwrap();
            let map = DbMap::open("hash", &name).unwrap();
            assert_eq!(map.lookup("k").unwrap().as_deref(), Some(want));
        }
    }

    #[test]
    fn update_inserts_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("u").display().to_string();
        // A missing file is created, as postmap -i does.
        let mut u = update("hash", &name, opts(Duplicates::Warn)).unwrap();
        assert_eq!(u.put("a", "1", Duplicates::Warn).unwrap(), Put::Inserted);
        assert_eq!(u.put("b", "2", Duplicates::Warn).unwrap(), Put::Inserted);
        u.finish().unwrap();
        let mut u = update("hash", &name, opts(Duplicates::Warn)).unwrap();
        assert_eq!(u.put("a", "9", Duplicates::Warn).unwrap(), Put::Duplicate);
        assert_eq!(
            u.put("b", "8", Duplicates::Replace).unwrap(),
            Put::Duplicate
        );
        assert!(u.delete("a").unwrap());
        assert!(!u.delete("zz").unwrap());
        u.finish().unwrap();
        let map = DbMap::open("hash", &name).unwrap();
        assert_eq!(map.lookup("a").unwrap(), None);
        assert_eq!(map.lookup("b").unwrap().as_deref(), Some("8"));
    }

    #[test]
    fn berkeley_db_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("bdb").display().to_string();
        let path = format!("{name}.db");
        for (magic, big) in [(0x0006_1561u32, false), (0x0005_3162, true)] {
            let mut bytes = vec![0u8; 4096];
            let word = if big {
                magic.to_be_bytes()
            } else {
                magic.to_le_bytes()
            };
            bytes[12..16].copy_from_slice(&word);
            std::fs::write(&path, &bytes).unwrap();
            assert!(is_berkeley_db(&path));
            let err = DbMap::open("hash", &name).unwrap_err();
            assert_eq!(
                err,
                MapError::Config(format!(
                    "{path} is a Berkeley DB file made by Postfix; rebuild it with \
                     \"postmap hash:{name}\""
                ))
            );
        }
        std::fs::write(&path, b"junk").unwrap();
        assert!(!is_berkeley_db(&path));
        assert_eq!(
            DbMap::open("hash", &name).unwrap_err().to_string(),
            format!("open database {path}: Invalid argument")
        );
        let missing = dir.path().join("none").display().to_string();
        assert_eq!(
            DbMap::open("btree", &missing).unwrap_err().to_string(),
            format!("open database {missing}.db: No such file or directory")
        );
    }

    proptest! {
        #[test]
        fn random_bodies_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..5000),
            keys in proptest::collection::vec("[a-z]{0,3}", 1..8),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let name = dir.path().join("r").display().to_string();
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&VERSION.to_le_bytes());
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend_from_slice(&body);
            std::fs::write(format!("{name}.db"), &bytes).unwrap();
            if let Ok(map) = DbMap::open("hash", &name) {
                for key in &keys {
                    let _ = map.lookup(key);
                }
                let _ = map.sequence();
            }
        }
    }
}
