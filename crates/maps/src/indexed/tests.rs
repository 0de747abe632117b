//! Tests of what all indexed types share: NUL forms, duplicates, updates.

use super::*;
use std::time::{Duration, SystemTime};

#[test]
fn stored_forms() {
    assert_eq!(stored("abc", true), b"abc\0");
    assert_eq!(stored("abc", false), b"abc");
    assert_eq!(stored("a\0bc", true), b"a\0");
    assert_eq!(text(b"value\0"), "value");
    assert_eq!(text(b"va\0lue"), "va");
    assert_eq!(*lookup_form("abc", true), *b"abc\0");
    assert_eq!(*lookup_form("a\0bc", false), *b"a");
    assert_eq!(value_text(b"value\0".to_vec()), "value");
    assert_eq!(value_text(b"v\xffa\0lue".to_vec()), "v\u{fffd}a");
}

#[test]
fn defaults_per_type() {
    assert!(default_nul("lmdb"));
    assert!(default_nul("hash"));
    assert!(!default_nul("cdb"));
    assert_eq!(file_path("lmdb", "/x/t"), "/x/t.lmdb");
    assert_eq!(file_path("btree", "/x/t"), "/x/t.db");
}

#[test]
fn lookups_stick_to_the_form_that_found() {
    let forms = NulForms::both();
    let table = |key: &[u8]| Ok((key == b"k").then(|| b"v".to_vec()));
    assert_eq!(forms.lookup("k", table).unwrap().as_deref(), Some("v"));
    // Found without the NUL: keys with one are no longer tried.
    let seen = std::cell::RefCell::new(Vec::new());
    let _ = forms.lookup("x", |key: &[u8]| {
        seen.borrow_mut().push(key.to_vec());
        Ok(None)
    });
    assert_eq!(seen.into_inner(), vec![b"x".to_vec()]);
}

#[test]
fn cdb_cannot_be_updated() {
    let opts = CreateOptions {
        duplicates: Duplicates::Warn,
        nul_terminated: false,
        mode: 0o644,
    };
    let err = update("cdb", "/nonexistent/x", opts).err().unwrap();
    assert_eq!(
        err.to_string(),
        "dict_cdb_open: inappropriate open flags for cdb database - specify O_RDONLY or \
         O_WRONLY|O_CREAT|O_TRUNC"
    );
    assert!(open("nope", "x", &OpenFlags::default()).is_err());
}

#[test]
fn entries_remove_and_replace() {
    let mut e = Entries::default();
    assert_eq!(
        e.put_raw(b"a".to_vec(), b"1".to_vec(), Duplicates::Warn),
        Put::Inserted
    );
    assert_eq!(
        e.put_raw(b"b".to_vec(), b"2".to_vec(), Duplicates::Warn),
        Put::Inserted
    );
    assert_eq!(
        e.put_raw(b"a".to_vec(), b"3".to_vec(), Duplicates::Replace),
        Put::Duplicate
    );
    assert!(e.remove(b"b"));
    assert!(!e.remove(b"b"));
    assert_eq!(e.into_list(), vec![(b"a".to_vec(), b"3".to_vec())]);
}

#[test]
fn stale_tables_are_named_with_the_command_that_rebuilds_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let name = dir.path().join("t").to_string_lossy().into_owned();
    std::fs::write(&name, "a 1\n").expect("source");
    std::fs::write(format!("{name}.cdb"), b"x").expect("indexed");
    let hour_ago = SystemTime::now() - Duration::from_hours(1);
    let set = |path: &str, when: SystemTime| {
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(when))
            .expect("set mtime");
    };
    set(&format!("{name}.cdb"), hour_ago);
    // The source changed just now: a rebuild may be under way, no warning yet.
    assert_eq!(super::staleness("cdb", &name, SystemTime::now()), None);
    // Ten minutes later it is stale.
    let later = SystemTime::now() + Duration::from_mins(10);
    let warning = super::staleness("cdb", &name, later).expect("stale");
    assert!(warning.starts_with(&format!(
        "database {name}.cdb is older than source file {name}; rebuild it with \"postmap cdb:{name}\""
    )));
    // An indexed file newer than its source is fine.
    set(&name, hour_ago - Duration::from_hours(1));
    assert_eq!(super::staleness("cdb", &name, later), None);
}
