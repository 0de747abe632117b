//! lmdb files: round trips through our writer and reader, sizes at lmdb's limits, and
//! damaged files.

use proptest::prelude::*;

use super::*;
use crate::indexed::{CreateOptions, Duplicates, Put, create, update};

fn opts(nul: bool) -> CreateOptions {
    CreateOptions {
        duplicates: Duplicates::Warn,
        nul_terminated: nul,
        mode: 0o600,
    }
}

fn build(name: &str, entries: &[(String, String)], nul: bool) {
    let mut w = create("lmdb", name, opts(nul)).unwrap();
    for (k, v) in entries {
        w.put(k, v).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn round_trip_small_large_and_deep() {
    let dir = tempfile::tempdir().unwrap();
    for (count, value_len) in [
        (0usize, 1usize),
        (1, 1),
        (3, 5000),
        (20_000, 20),
        (300, 700),
    ] {
        for nul in [true, false] {
            let name = dir
                .path()
                .join(format!("t{count}-{nul}"))
                .display()
                .to_string();
            let entries: Vec<(String, String)> = (0..count)
                .map(|i| {
                    (
                        format!("key{i:07}"),
                        format!("{i}-{}", "v".repeat(value_len)),
                    )
                })
                .collect();
            build(&name, &entries, nul);
            let map = LmdbMap::open(&name).unwrap();
            for (k, v) in entries.iter().step_by(7) {
                assert_eq!(map.lookup(k).unwrap().as_ref(), Some(v), "{name} {k}");
            }
            assert_eq!(map.lookup("key").unwrap(), None);
            assert_eq!(map.lookup("zzz").unwrap(), None);
            let mut sorted = entries.clone();
            sorted.sort();
            assert_eq!(map.sequence().unwrap(), sorted);
            let meta = std::fs::metadata(format!("{name}.lmdb")).unwrap();
            assert_eq!(
                std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
                0o600
            );
            assert!(!std::path::Path::new(&format!("{name}.lmdb.tmp")).exists());
        }
    }
}

#[test]
fn long_keys_deep_tree() {
    // Keys near lmdb's limit make few nodes per page, hence several branch levels.
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join("long").display().to_string();
    let entries: Vec<(String, String)> = (0..3000)
        .map(|i| (format!("{i:05}{}", "k".repeat(500)), format!("{i}")))
        .collect();
    build(&name, &entries, true);
    let map = LmdbMap::open(&name).unwrap();
    for (k, v) in &entries {
        assert_eq!(map.lookup(k).unwrap().as_ref(), Some(v));
    }
    assert_eq!(map.sequence().unwrap().len(), 3000);
}

#[test]
fn key_size_limits() {
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join("k").display().to_string();
    let mut w = create("lmdb", &name, opts(true)).unwrap();
    assert_eq!(w.put(&"k".repeat(510), "v").unwrap(), Put::Inserted);
    let err = w.put(&"k".repeat(511), "v").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "error updating lmdb:{name}: MDB_BAD_VALSIZE: Unsupported size of key/DB \
             name/data, or wrong DUPFIXED size"
        )
    );
    let mut w = create("lmdb", &name, opts(false)).unwrap();
    assert!(w.put("", "v").is_err());
}

#[test]
fn updates_rewrite_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join("u").display().to_string();
    let mut u = update("lmdb", &name, opts(true)).unwrap();
    u.put("a", "1", Duplicates::Warn).unwrap();
    u.put("b", "2", Duplicates::Warn).unwrap();
    u.finish().unwrap();
    let mut u = update("lmdb", &name, opts(true)).unwrap();
    assert_eq!(u.put("a", "x", Duplicates::Warn).unwrap(), Put::Duplicate);
    assert_eq!(u.put("c", "3", Duplicates::Warn).unwrap(), Put::Inserted);
    assert!(u.delete("b").unwrap());
    u.finish().unwrap();
    let map = LmdbMap::open(&name).unwrap();
    assert_eq!(
        map.sequence().unwrap(),
        vec![("a".into(), "1".into()), ("c".into(), "3".into())]
    );
}

#[test]
fn open_errors() {
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join("e").display().to_string();
    let path = format!("{name}.lmdb");
    let cases: [(&[u8], &str); 3] = [
        (b"", "Bad file descriptor"),
        (b"x", MDB_INVALID),
        (&[0u8; 8192], MDB_INVALID),
    ];
    for (bytes, want) in cases {
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(
            LmdbMap::open(&name).unwrap_err(),
            MapError::Config(format!("open database {path}: {want}"))
        );
    }
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        LmdbMap::open(&name).unwrap_err().to_string(),
        format!("open database {path}: No such file or directory")
    );
}

#[test]
fn truncated_file_gives_page_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join("t").display().to_string();
    build(&name, &[("a".into(), "1".into())], true);
    let path = format!("{name}.lmdb");
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..8192]).unwrap();
    let map = LmdbMap::open(&name).unwrap();
    assert_eq!(
        map.lookup("a").unwrap_err(),
        MapError::Retry(format!("error reading lmdb:{name}: {MDB_PAGE_NOTFOUND}"))
    );
}

/// A 512-byte page: header (page number, flags, lower, upper) and `count` node offsets
/// that all point at one node `(lo, hi, flags, key size)` followed by `tail`.
fn shared_node_page(pgno: u64, flags: u16, count: usize, node: [u16; 4], tail: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 512];
    let lower = 16 + 2 * count;
    p[..8].copy_from_slice(&pgno.to_le_bytes());
    p[10..12].copy_from_slice(&flags.to_le_bytes());
    p[12..14].copy_from_slice(&u16::try_from(lower).unwrap().to_le_bytes());
    p[14..16].copy_from_slice(&512u16.to_le_bytes());
    for i in 0..count {
        p[16 + 2 * i..18 + 2 * i].copy_from_slice(&u16::try_from(lower).unwrap().to_le_bytes());
    }
    for (i, v) in node.iter().enumerate() {
        p[lower + 2 * i..lower + 2 * i + 2].copy_from_slice(&v.to_le_bytes());
    }
    p[lower + 8..lower + 8 + tail.len()].copy_from_slice(tail);
    p
}

/// Two meta pages (page size 512, root page 2) and then `pages`.
fn lmdb_file(pages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (pgno, txnid) in [(0u64, 1u64), (1, 0)] {
        let mut m = vec![0u8; 512];
        m[..8].copy_from_slice(&pgno.to_le_bytes());
        m[10..12].copy_from_slice(&P_META.to_le_bytes());
        m[META_MAGIC..META_MAGIC + 4].copy_from_slice(&MAGIC.to_le_bytes());
        m[META_VERSION..META_VERSION + 4].copy_from_slice(&DATA_VERSION.to_le_bytes());
        m[META_FREE_DB..META_FREE_DB + 4].copy_from_slice(&512u32.to_le_bytes());
        m[META_MAIN_DB + DB_ROOT..META_MAIN_DB + DB_ROOT + 8].copy_from_slice(&2u64.to_le_bytes());
        m[META_TXNID..META_TXNID + 8].copy_from_slice(&txnid.to_le_bytes());
        out.extend(m);
    }
    for p in pages {
        out.extend_from_slice(p);
    }
    out
}

/// Damaged files whose nodes share pages or data: listing them once took time and memory
/// exponential in the tree's depth (fuzz/corpus/lmdb/hang-shared-subtrees); now it fails
/// at once, as a corrupt file.
#[test]
fn shared_subtrees_and_entries_are_corrupt() {
    let leaf = |pgno| shared_node_page(pgno, P_LEAF, 1, [2, 0, 0, 1], b"kv");
    let branch =
        |pgno: u64, child: u16| shared_node_page(pgno, P_BRANCH, 200, [child, 0, 0, 0], b"");
    let cases: &[(&str, Vec<Vec<u8>>)] = &[
        (
            "four levels of 200 branches to one page",
            vec![
                branch(2, 3),
                branch(3, 4),
                branch(4, 5),
                branch(5, 6),
                leaf(6),
            ],
        ),
        (
            "a leaf of 100 nodes sharing one 250-byte value",
            vec![shared_node_page(
                2,
                P_LEAF,
                100,
                [250, 0, 0, 1],
                &[b'v'; 251],
            )],
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (what, pages) in cases {
        let name = dir.path().join("shared").display().to_string();
        std::fs::write(format!("{name}.lmdb"), lmdb_file(pages)).unwrap();
        let map = LmdbMap::open(&name).unwrap();
        let started = std::time::Instant::now();
        assert_eq!(
            map.sequence().unwrap_err(),
            MapError::Retry(format!("error seeking lmdb:{name}: {MDB_CORRUPTED}")),
            "{what}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{what}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn damaged_files_never_panic(
        seed in proptest::collection::vec((0usize..40_000, any::<u8>()), 0..40),
        cut in 0usize..50_000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("d").display().to_string();
        let entries: Vec<(String, String)> =
            (0..400).map(|i| (format!("k{i}"), "v".repeat(i % 50 * 100))).collect();
        build(&name, &entries, true);
        let path = format!("{name}.lmdb");
        let mut bytes = std::fs::read(&path).unwrap();
        for (at, byte) in seed {
            if let Some(b) = bytes.get_mut(at) {
                *b = byte;
            }
        }
        bytes.truncate(cut);
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(map) = LmdbMap::open(&name) {
            for (k, _) in entries.iter().step_by(13) {
                let _ = map.lookup(k);
            }
            let _ = map.sequence();
        }
    }
}
