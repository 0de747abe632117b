//! Side by side with Debian's Postfix: `lmdb:` and `cdb:` files built by Postfix's postmap
//! are read by Tern, files built by Tern are read (and updated) by Postfix's postmap, and
//! both list (`postmap -s`) and fail alike. These tests fail, never skip, when Debian's
//! postmap or its lmdb/cdb map types are missing.

// Test inputs read best as one format! per line; speed does not matter here.
#![allow(clippy::format_collect)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use tern_maps::indexed::{self, CreateOptions, Duplicates};
use tern_maps::{Map, OpenFlags};

const POSTMAP: &str = "/usr/sbin/postmap";

/// Checks that Debian's postmap is there with the lmdb and cdb types.
fn require_postfix() {
    assert!(
        Path::new(POSTMAP).exists(),
        "{POSTMAP} is missing: install Debian's postfix, postfix-lmdb and postfix-cdb"
    );
    let out = Command::new("/usr/sbin/postconf")
        .arg("-m")
        .output()
        .expect("run postconf -m");
    let types = String::from_utf8_lossy(&out.stdout);
    for kind in ["lmdb", "cdb"] {
        assert!(
            types.lines().any(|line| line == kind),
            "Postfix has no {kind}: map type: install postfix-{kind}"
        );
    }
}

/// Runs Debian's postmap with `args`, feeding `stdin`.
fn postmap(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(POSTMAP)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run postmap");
    // Written from another thread: postmap's output may fill its pipe before it has read
    // all of its input.
    let mut input = child.stdin.take().expect("stdin");
    let text = stdin.to_owned();
    let writer = std::thread::spawn(move || input.write_all(text.as_bytes()));
    let out = child.wait_with_output().expect("postmap output");
    writer
        .join()
        .expect("writer thread")
        .expect("write to postmap");
    out
}

/// A table's entries: many short ones (for several tree levels), a value large enough for
/// overflow pages, and upper-case text in values.
fn sample() -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = (0..6000)
        .map(|i| (format!("user{i}@example.com"), format!("Dest{i} OK")))
        .collect();
    entries.push(("big".into(), "x".repeat(9000)));
    entries.push(("mid".into(), "y".repeat(2100)));
    entries
}

fn source_text(entries: &[(String, String)]) -> String {
    entries.iter().map(|(k, v)| format!("{k} {v}\n")).collect()
}

/// `postmap -s` output as pairs.
fn listing(text: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(text)
        .lines()
        .map(|line| {
            let (k, v) = line.split_once('\t').unwrap_or((line, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn build_ours(kind: &str, name: &str, entries: &[(String, String)], nul: bool) {
    let opts = CreateOptions {
        duplicates: Duplicates::Warn,
        nul_terminated: nul,
        mode: 0o644,
    };
    let mut writer = indexed::create(kind, name, opts).expect("create");
    for (k, v) in entries {
        writer.put(k, v).expect("put");
    }
    writer.finish().expect("finish");
}

fn open_ours(spec: &str) -> Box<dyn Map> {
    tern_maps::open(spec, &OpenFlags::default()).expect("open")
}

#[test]
fn postfix_built_tables_are_read_by_tern() {
    require_postfix();
    let dir = tempfile::tempdir().expect("tempdir");
    let entries = sample();
    // Postfix's defaults (lmdb with NUL, cdb without) and the other form (-N / -n).
    for (kind, flag) in [("lmdb", ""), ("lmdb", "-n"), ("cdb", ""), ("cdb", "-N")] {
        let name = dir
            .path()
            .join(format!("{kind}{flag}"))
            .display()
            .to_string();
        std::fs::write(&name, source_text(&entries)).expect("source");
        let spec = format!("{kind}:{name}");
        let mut args = vec![];
        if !flag.is_empty() {
            args.push(flag);
        }
        args.push(&spec);
        let out = postmap(&args, "");
        assert!(
            out.status.success(),
            "{spec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let map = open_ours(&spec);
        for (k, v) in &entries {
            let key = k.to_uppercase();
            assert_eq!(
                map.lookup(&key).expect("lookup").as_ref(),
                Some(v),
                "{spec} {k}"
            );
        }
        assert_eq!(map.lookup("nobody@example.com").expect("lookup"), None);
        let theirs = postmap(&["-s", &spec], "");
        match map.sequence() {
            Ok(ours) => assert_eq!(ours, listing(&theirs.stdout), "{spec} -s"),
            Err(err) => assert_eq!(
                format!("postmap: fatal: {err}\n"),
                String::from_utf8_lossy(&theirs.stderr),
                "{spec} -s"
            ),
        }
    }
}

#[test]
fn tern_built_tables_are_read_by_postfix() {
    require_postfix();
    let dir = tempfile::tempdir().expect("tempdir");
    let entries = sample();
    let queries: String = entries
        .iter()
        .map(|(k, _)| format!("{k}\n"))
        .chain(["absent@example.com\n".to_owned()])
        .collect();
    let want: String = entries.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect();
    for (kind, nul) in [
        ("lmdb", true),
        ("lmdb", false),
        ("cdb", false),
        ("cdb", true),
    ] {
        let name = dir
            .path()
            .join(format!("{kind}{nul}"))
            .display()
            .to_string();
        build_ours(kind, &name, &entries, nul);
        let spec = format!("{kind}:{name}");
        // One lookup, then all of them through postmap -q -.
        let one = postmap(&["-q", "user17@example.com", &spec], "");
        assert_eq!(
            String::from_utf8_lossy(&one.stdout),
            "Dest17 OK\n",
            "{spec}"
        );
        let all = postmap(&["-q", "-", &spec], &queries);
        assert_eq!(String::from_utf8_lossy(&all.stdout), want, "{spec}");
        assert!(
            all.stderr.is_empty(),
            "{spec}: {}",
            String::from_utf8_lossy(&all.stderr)
        );
        let theirs = postmap(&["-s", &spec], "");
        match open_ours(&spec).sequence() {
            Ok(ours) => assert_eq!(listing(&theirs.stdout), ours, "{spec} -s"),
            Err(err) => assert_eq!(
                format!("postmap: fatal: {err}\n"),
                String::from_utf8_lossy(&theirs.stderr)
            ),
        }
    }
}

#[test]
fn postfix_updates_a_tern_lmdb_file_in_place() {
    require_postfix();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = dir.path().join("upd").display().to_string();
    let entries = sample();
    build_ours("lmdb", &name, &entries, true);
    let spec = format!("lmdb:{name}");
    let added: String = (0..3000).map(|i| format!("new{i} value{i}\n")).collect();
    let out = postmap(&["-i", &spec], &added);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = postmap(
        &["-d", "-", &spec],
        "user5@example.com\nuser6@example.com\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let map = open_ours(&spec);
    assert_eq!(
        map.lookup("new2999").expect("lookup").as_deref(),
        Some("value2999")
    );
    assert_eq!(map.lookup("user5@example.com").expect("lookup"), None);
    assert_eq!(map.lookup("big").expect("lookup"), Some("x".repeat(9000)));
    let theirs = postmap(&["-s", &spec], "");
    assert_eq!(map.sequence().expect("sequence"), listing(&theirs.stdout));
}

#[test]
fn missing_and_damaged_files_fail_alike() {
    require_postfix();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = dir.path().join("none").display().to_string();
    for kind in ["lmdb", "cdb", "hash", "btree"] {
        let spec = format!("{kind}:{name}");
        let theirs = postmap(&["-q", "a", &spec], "");
        let ours = tern_maps::open(&spec, &OpenFlags::default()).expect_err("missing");
        assert_eq!(
            format!("postmap: fatal: {ours}\n"),
            String::from_utf8_lossy(&theirs.stderr),
            "{spec}"
        );
    }
    let cases: [(&str, &[u8]); 4] = [
        ("lmdb", b""),
        ("lmdb", &[7u8; 9000]),
        ("cdb", &[0u8; 100]),
        ("cdb", b""),
    ];
    for (kind, bytes) in cases {
        std::fs::write(indexed::file_path(kind, &name), bytes).expect("write");
        let spec = format!("{kind}:{name}");
        let theirs = postmap(&["-q", "a", &spec], "");
        let ours = tern_maps::open(&spec, &OpenFlags::default()).expect_err("damaged");
        assert_eq!(
            format!("postmap: fatal: {ours}\n"),
            String::from_utf8_lossy(&theirs.stderr),
            "{spec} with {} bytes",
            bytes.len()
        );
        std::fs::remove_file(indexed::file_path(kind, &name)).expect("remove");
    }
}

#[test]
fn postfix_cannot_update_cdb_nor_can_we() {
    require_postfix();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = dir.path().join("c").display().to_string();
    build_ours("cdb", &name, &sample(), false);
    let spec = format!("cdb:{name}");
    let theirs = postmap(&["-i", &spec], "k v\n");
    let opts = CreateOptions {
        duplicates: Duplicates::Warn,
        nul_terminated: false,
        mode: 0o644,
    };
    let ours = indexed::update("cdb", &name, opts)
        .err()
        .expect("cdb update refused");
    assert_eq!(
        format!("postmap: fatal: {ours}\n"),
        String::from_utf8_lossy(&theirs.stderr)
    );
}
