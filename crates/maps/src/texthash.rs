//! `texthash:` tables: a source file in postmap's format read into memory when the table is
//! opened (postmap(1), DATABASE_README "texthash"). Nothing is built on disk.
//!
//! Duplicates behave as postmap's default: the first value stays and each later line gets a
//! warning naming the key as written. Keys are stored folded to lower case unless the caller
//! opened the table without folding (`postmap -f`); the open.rs wrapper folds the query.
//!
//! Trust: the file is data; a missing or unreadable file is an open error with Postfix's
//! text.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use crate::source::{self, Reader};
use crate::{Map, MapError, OpenFlags, Owner};

/// Opens a `texthash:` table named `name` (a file path).
pub fn open(name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let fail = |e: &std::io::Error| {
        MapError::Config(format!("open database {name}: {}", source::strerror(e)))
    };
    let data = std::fs::read(name).map_err(|e| fail(&e))?;
    let uid = std::fs::metadata(name).map_err(|e| fail(&e))?.uid();
    let warn = flags.warn.clone();
    let mut table = Texthash {
        spec: format!("texthash:{name}"),
        index: HashMap::new(),
        entries: Vec::new(),
        owner: if uid == 0 {
            Owner::Trusted
        } else {
            Owner::User(uid)
        },
    };
    source::entries(&data, name, Reader::Texthash, &|w| warn(w), &mut |entry| {
        let key = if flags.fold_fix {
            entry.key.to_lowercase()
        } else {
            entry.key.clone()
        };
        if table.index.contains_key(&key) {
            warn(&format!(
                "{name}, line {}: duplicate entry: \"{}\"",
                entry.lineno, entry.key
            ));
            return;
        }
        table.index.insert(key.clone(), table.entries.len());
        table.entries.push((key, entry.value));
    });
    Ok(Box::new(table))
}

/// An open `texthash:` table.
#[derive(Debug)]
struct Texthash {
    spec: String,
    index: HashMap<String, usize>,
    /// In file order, for `postmap -s` (Postfix lists its in-memory hash order instead).
    entries: Vec<(String, String)>,
    owner: Owner,
}

impl Map for Texthash {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, MapError> {
        Ok(self.index.get(key).map(|&i| self.entries[i].1.clone()))
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, MapError> {
        Ok(self.entries.clone())
    }

    fn owner(&self) -> Owner {
        self.owner
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn reads_folds_and_keeps_first_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "Ab 1\nab 2\n\"x y\" z\nnovalue\n").unwrap();
        let path = path.to_str().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let flags = OpenFlags {
            fold_fix: true,
            warn: Arc::new(move |w: &str| sink.lock().unwrap().push(w.to_owned())),
        };
        let map = open(path, &flags).unwrap();
        let cases = [("ab", Some("1")), ("\"x y\"", Some("z")), ("x y", None)];
        for (key, want) in cases {
            assert_eq!(map.lookup(key).unwrap().as_deref(), want, "{key}");
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen[0].ends_with("line 2: duplicate entry: \"ab\""));
        let err = open("/nonexistent/x", &OpenFlags::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "open database /nonexistent/x: No such file or directory"
        );
    }
}
