//! Side by side with Debian's Postfix: every table in `tests/postmap-cases/` is built (when
//! its type needs a file) and queried with Tern's `postmap`/`postalias` and with Debian's,
//! and standard output, exit status and standard error must agree.
//!
//! A case file is a header, a line `%%`, and the table's text:
//!
//! ```text
//! cmd postalias            # postmap (default) or postalias
//! type hash                # the table type; indexed types are built first
//! map unionmap:{...}       # optional: the spec queried, `table` names the file
//! flags -f                 # optional: extra flags for every run
//! q KEY                    # a query (`postmap -q KEY`); the rest of the line is the key
//! stdin LINE               # a line for one `postmap -q -` run over all such lines
//! seq                      # also compare `-s`, with lines sorted
//! %%
//! the table file
//! ```
//!
//! Each side works in its own directory (both write `table.db` etc.), with `argv[0]` set to
//! the bare program name. Ours is `CARGO_BIN_EXE_postmap`, or `TERN_POSTMAP` /
//! `TERN_POSTALIAS` (point them at `/usr/sbin/...` to check the harness and corpus against
//! Debian itself). All mismatches are collected and reported at once.

// A test harness: a failed step is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

const DEBIAN: &str = "/usr/sbin";

fn ours(prog: &str) -> PathBuf {
    let var = format!("TERN_{}", prog.to_uppercase());
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ if prog == "postalias" => PathBuf::from(env!("CARGO_BIN_EXE_postalias")),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_postmap")),
    }
}

/// One case file, parsed.
#[derive(Debug, Default)]
struct Case {
    name: String,
    cmd: String,
    kind: String,
    map: Option<String>,
    flags: Vec<String>,
    queries: Vec<String>,
    stdin: Vec<String>,
    seq: bool,
    table: String,
}

fn parse_case(name: &str, text: &str) -> Case {
    let (head, table) = text
        .split_once("\n%%\n")
        .unwrap_or_else(|| panic!("{name}: no %% line"));
    let mut case = Case {
        name: name.to_owned(),
        cmd: "postmap".to_owned(),
        table: table.to_owned(),
        ..Case::default()
    };
    for line in head.lines() {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "cmd" => rest.clone_into(&mut case.cmd),
            "type" => rest.clone_into(&mut case.kind),
            "map" => case.map = Some(rest.to_owned()),
            "flags" => case.flags = rest.split_whitespace().map(str::to_owned).collect(),
            "q" => case.queries.push(rest.to_owned()),
            "stdin" => case.stdin.push(rest.to_owned()),
            "seq" => case.seq = true,
            "" => {}
            w if w.starts_with('#') => {}
            other => panic!("{name}: unknown header word {other:?}"),
        }
    }
    assert!(!case.kind.is_empty(), "{name}: no type");
    case
}

/// What one run gave.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(bin: &Path, prog: &str, dir: &Path, args: &[String], input: Option<&str>) -> Run {
    let mut cmd = Command::new(bin);
    cmd.arg0(prog)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    if let Some(text) = input {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let clean = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .replace(&bin.display().to_string(), prog)
            .replace(&dir.display().to_string(), "DIR")
    };
    Run {
        status: out.status.code(),
        stdout: clean(&out.stdout),
        stderr: clean(&out.stderr),
    }
}

/// Sorted lines without the build-time entry postalias adds.
fn sorted(text: &str) -> String {
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("YP_LAST_MODIFIED"))
        .collect();
    lines.sort_unstable();
    lines.join("\n")
}

const INDEXED: &[&str] = &["hash", "btree", "lmdb", "cdb"];

/// Runs one case on both sides; mismatches are appended to `report`.
fn check_case(case: &Case, report: &mut String) {
    let tmp = tempfile::tempdir().unwrap();
    let sides = [
        ("tern", ours(&case.cmd)),
        ("debian", Path::new(DEBIAN).join(&case.cmd)),
    ];
    let mut dirs = Vec::new();
    for (side, _) in &sides {
        let dir = tmp.path().join(side);
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("table");
        std::fs::write(&file, &case.table).unwrap();
        // texthash: re-reads a file changed in the last second and repeats its warnings.
        let old = SystemTime::now() - Duration::from_hours(1);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        dirs.push(dir);
    }
    let spec = case
        .map
        .clone()
        .unwrap_or_else(|| format!("{}:table", case.kind));
    let mut steps: Vec<(String, Vec<String>, Option<String>, bool)> = Vec::new();
    if INDEXED.contains(&case.kind.as_str()) {
        let mut args = case.flags.clone();
        args.push(format!("{}:table", case.kind));
        steps.push(("build".into(), args, None, false));
    }
    for q in &case.queries {
        let mut args = case.flags.clone();
        args.extend(["-q".to_owned(), q.clone(), spec.clone()]);
        steps.push((format!("-q {q:?}"), args, None, false));
    }
    if !case.stdin.is_empty() {
        let mut args = case.flags.clone();
        args.extend(["-q".to_owned(), "-".to_owned(), spec.clone()]);
        let input: String = case.stdin.iter().flat_map(|l| [l.as_str(), "\n"]).collect();
        steps.push(("-q -".into(), args, Some(input), false));
    }
    if case.seq {
        let mut args = case.flags.clone();
        args.extend(["-s".to_owned(), spec.clone()]);
        steps.push(("-s".into(), args, None, true));
    }
    for (label, args, input, sort) in &steps {
        let got: Vec<Run> = sides
            .iter()
            .zip(&dirs)
            .map(|((_, bin), dir)| {
                let mut r = run(bin, &case.cmd, dir, args, input.as_deref());
                if *sort {
                    r.stdout = sorted(&r.stdout);
                }
                r
            })
            .collect();
        if got[0] != got[1] {
            let _ = writeln!(
                report,
                "--- {} [{} {}]\n    tern:   {:?}\n    debian: {:?}",
                case.name, case.cmd, label, got[0], got[1]
            );
        }
    }
}

#[test]
fn postmap_and_postalias_agree_with_debian() {
    for prog in ["postmap", "postalias"] {
        let path = Path::new(DEBIAN).join(prog);
        assert!(
            path.is_file(),
            "{} is missing: this test compares Tern with Debian's Postfix; install postfix, \
             postfix-pcre, postfix-lmdb and postfix-cdb (Debian 12)",
            path.display()
        );
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/postmap-cases");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "case"))
        .collect();
    names.sort();
    assert!(names.len() >= 60, "only {} cases", names.len());
    let only = std::env::var("POSTMAP_CASE").unwrap_or_default();
    let mut report = String::new();
    let mut failed = 0;
    for path in &names {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if !only.is_empty() && !name.contains(&only) {
            continue;
        }
        let case = parse_case(&name, &std::fs::read_to_string(path).unwrap());
        let before = report.len();
        check_case(&case, &mut report);
        if report.len() > before {
            failed += 1;
        }
    }
    assert!(
        report.is_empty(),
        "{failed} of {} cases differ from Debian:\n{report}",
        names.len()
    );
}
