//! Tests of what all indexed types share: NUL forms, duplicates, updates.

use super::*;

#[test]
fn stored_forms() {
    assert_eq!(stored("abc", true), b"abc\0");
    assert_eq!(stored("abc", false), b"abc");
    assert_eq!(stored("a\0bc", true), b"a\0");
    assert_eq!(text(b"value\0"), "value");
    assert_eq!(text(b"va\0lue"), "va");
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
