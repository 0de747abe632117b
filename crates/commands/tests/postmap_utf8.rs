//! Keys and source lines that are not UTF-8, side by side with Debian's postmap and
//! postalias: with `smtputf8_enable = yes` (the default) Postfix drops such a source line
//! with `FILE, line N: non-UTF-8 input "..." -- ignoring this line`, and refuses such a
//! lookup key with `TYPE:NAME: non-UTF-8 key "...": malformed UTF-8 or invalid codepoint`
//! (answering "not found"). Keys come on standard input (`-q -`) and as a command-line
//! argument (`-q KEY`), which must never make a command panic.
//!
//! Each side builds its own tables in its own directory, and runs there, so that the file
//! names in the messages are the same relative names.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const DEBIAN: &str = "/usr/sbin";

fn debian(prog: &str) -> PathBuf {
    let path = Path::new(DEBIAN).join(prog);
    assert!(
        path.is_file(),
        "{} is missing: this test compares Tern with Debian's Postfix (apt-get install \
         postfix postfix-lmdb postfix-cdb)",
        path.display()
    );
    path
}

fn ours(prog: &str) -> PathBuf {
    PathBuf::from(if prog == "postalias" {
        env!("CARGO_BIN_EXE_postalias")
    } else {
        env!("CARGO_BIN_EXE_postmap")
    })
}

/// Runs `bin` in `dir` with `args` and `stdin`; standard output, error and the status,
/// with the program's own path reduced to its name.
fn run(bin: &Path, dir: &Path, args: &[&OsStr], stdin: &[u8]) -> String {
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let text = format!(
        "out: {}\nerr: {}\nstatus: {:?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status.code()
    );
    text.replace(
        &format!("{}:", bin.display()),
        &format!("{}:", prog_name(bin)),
    )
}

fn prog_name(bin: &Path) -> String {
    bin.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Where one side's program of a name is.
type Side = fn(&str) -> PathBuf;

#[test]
fn non_utf8_keys_and_lines_like_debian() {
    let sides: Vec<(tempfile::TempDir, Side)> = vec![
        (tempfile::tempdir().expect("tempdir"), debian),
        (tempfile::tempdir().expect("tempdir"), ours),
    ];
    let source = b"a 1\nk\xff 3\nb 2\n  continued\n\xc3\x28x 4\nc\xc3\xa9 5\n\xc3\xa9\xff 6\n";
    let aliases = b"root: a\nk\xff: b\npostmaster: root\n";
    let mut report = String::new();
    let mut outputs: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    for (side, (dir, bin)) in sides.iter().enumerate() {
        std::fs::write(dir.path().join("src"), source).expect("write");
        std::fs::write(dir.path().join("aliases"), aliases).expect("write");
        let postmap = bin("postmap");
        let postalias = bin("postalias");
        let out = &mut outputs[side];
        for kind in ["hash", "cdb", "lmdb"] {
            let spec = format!("{kind}:src");
            out.push(run(&postmap, dir.path(), &[OsStr::new(&spec)], b""));
            let keys = b"a\nk\xff\nb\n\xc3\x28x\nc\xc3\xa9\n\xc3\xa9\xff\n";
            out.push(run(
                &postmap,
                dir.path(),
                &[OsStr::new("-q"), OsStr::new("-"), OsStr::new(&spec)],
                keys,
            ));
            out.push(run(
                &postmap,
                dir.path(),
                &[
                    OsStr::new("-q"),
                    OsStr::from_bytes(b"k\xff"),
                    OsStr::new(&spec),
                ],
                b"",
            ));
        }
        // (texthash: is left out: Debian's postmap reads a texthash: table over and over
        // when a lookup key is not UTF-8, warning about the table's bad lines each time.)
        out.push(run(
            &postmap,
            dir.path(),
            &[
                OsStr::new("-q"),
                OsStr::from_bytes(b"a\xfe"),
                OsStr::new("inline:{a=1}"),
            ],
            b"",
        ));
        out.push(run(
            &postmap,
            dir.path(),
            &[
                OsStr::new("-q"),
                OsStr::new("-"),
                OsStr::new("inline:{a=1}"),
            ],
            b"a\nk\xff\n",
        ));
        out.push(run(
            &postalias,
            dir.path(),
            &[OsStr::new("hash:aliases")],
            b"",
        ));
        out.push(run(
            &postalias,
            dir.path(),
            &[
                OsStr::new("-q"),
                OsStr::from_bytes(b"k\xff"),
                OsStr::new("hash:aliases"),
            ],
            b"",
        ));
        out.push(run(
            &postalias,
            dir.path(),
            &[
                OsStr::new("-q"),
                OsStr::new("postmaster"),
                OsStr::new("hash:aliases"),
            ],
            b"",
        ));
    }
    for (i, (deb, tern)) in outputs[0].iter().zip(&outputs[1]).enumerate() {
        if deb != tern {
            let _ = writeln!(report, "case {i}:\n  debian: {deb:?}\n  tern:   {tern:?}");
        }
    }
    assert!(!outputs[0].is_empty());
    assert!(report.is_empty(), "{report}");
}
