//! `postmap` and `postalias` on hostile ground: files they may not read, table files that
//! are truncated or damaged, and tables or sources that change while they run.
//!
//! Debian's Postfix is the oracle wherever it can run the same thing:
//!
//! 1. Unreadable files, run as nobody: Tern's stdout, stderr and exit status equal Debian's.
//! 2. Truncated and damaged `lmdb:`, `cdb:` and `hash:` files: Tern never panics (exit 0 or
//!    1, every message a `postmap: warning:` or `postmap: fatal:` line), and where Debian
//!    reports a fatal error on the same file, Tern reports the same one.
//! 3. A rebuild while readers query the table: every answer is the old or the new value,
//!    never an error or nothing, because the table file is replaced atomically; a source
//!    file rewritten during the build ends in a clean exit and a readable table. Debian
//!    runs the same scenario first, as a control that the invariant is Postfix's.
//!
//! Ours is `CARGO_BIN_EXE_postmap` / `CARGO_BIN_EXE_postalias`, or `TERN_POSTMAP` /
//! `TERN_POSTALIAS` (point them at `/usr/sbin/...` to check the harness against Debian).
//! Every child runs with a cleared environment, `argv[0]` set to the program's name, and a
//! timeout; every loop is bounded in count and time.

// A test harness: a failed step is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const DEBIAN: &str = "/usr/sbin";

/// How long one child may run before it is killed (a debug build of a 200,000-entry table
/// takes about a second; a loaded machine gets ample slack).
const CHILD_TIMEOUT: Duration = Duration::from_mins(1);

fn ours(prog: &str) -> PathBuf {
    let var = format!("TERN_{}", prog.to_uppercase());
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ if prog == "postalias" => PathBuf::from(env!("CARGO_BIN_EXE_postalias")),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_postmap")),
    }
}

/// Debian's binary; panics (never skips) when it is missing.
fn debian(prog: &str) -> PathBuf {
    let path = Path::new(DEBIAN).join(prog);
    assert!(
        path.is_file(),
        "{} is missing: these tests compare Tern with Debian's Postfix; install postfix, \
         postfix-pcre, postfix-lmdb and postfix-cdb (Debian 12)",
        path.display()
    );
    path
}

/// What one run gave, with the temp dir replaced by `$DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    /// Exit code, `signal N` or `timeout`.
    status: String,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The lines Postfix's msg(3) writes (`postmap: ...`), without library chatter such as
    /// Berkeley DB's `BDB0210 ...` lines.
    fn msg_lines(&self, prog: &str) -> Vec<&str> {
        let head = format!("{prog}: ");
        self.stderr
            .lines()
            .filter(|l| l.starts_with(&head))
            .collect()
    }

    /// The run for a report: long output cut short.
    fn brief(&self) -> String {
        format!(
            "status {}, stdout {:?}, stderr {:?}",
            self.status,
            common::show(self.stdout.as_bytes(), 160),
            common::show(self.stderr.as_bytes(), 400)
        )
    }

    fn has_fatal(&self, prog: &str) -> bool {
        let head = format!("{prog}: fatal: ");
        self.stderr.lines().any(|l| l.starts_with(&head))
    }
}

/// The command for `bin args...` with `argv[0] = prog`, as root or (through `setpriv`)
/// as nobody:nogroup.
fn command(bin: &Path, prog: &str, args: &[String], as_nobody: bool) -> Command {
    let mut cmd = if as_nobody {
        // setpriv execs its argument as given, so bash's `exec -a` sets argv[0].
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .args(["/bin/bash", "-c", &format!("exec -a {prog} \"$@\""), "bash"])
            .arg(bin)
            .args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.arg0(prog).args(args);
        c
    };
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null());
    cmd
}

/// Waits for `child` at most `limit`; kills it after that.
fn wait_bounded(child: &mut Child, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return status_text(st),
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return format!("timeout after {}s", limit.as_secs());
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => return format!("wait: {e}"),
        }
    }
}

fn status_text(st: ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => c.to_string(),
        (None, Some(s)) => format!("signal {s}"),
        (None, None) => "unknown".to_owned(),
    }
}

/// Runs one program to its end (or [`CHILD_TIMEOUT`]) and normalizes what it wrote.
fn run(bin: &Path, prog: &str, args: &[String], as_nobody: bool, dir: &Path) -> Run {
    run_limited(bin, prog, args, as_nobody, dir, CHILD_TIMEOUT)
}

/// Runs one program to its end (or `limit`) and normalizes what it wrote.
fn run_limited(
    bin: &Path,
    prog: &str,
    args: &[String],
    as_nobody: bool,
    dir: &Path,
    limit: Duration,
) -> Run {
    let mut child = command(bin, prog, args, as_nobody)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    // Drain both pipes on threads so a large output cannot block the child.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let status = wait_bounded(&mut child, limit);
    let clean = |b: &[u8]| {
        let b = common::replace_bytes(b, dir.as_os_str().as_encoded_bytes(), b"$DIR");
        let b = common::replace_bytes(&b, bin.as_os_str().as_encoded_bytes(), prog.as_bytes());
        String::from_utf8_lossy(&b).into_owned()
    };
    Run {
        status,
        stdout: clean(&out.join().unwrap_or_default()),
        stderr: clean(&err.join().unwrap_or_default()),
    }
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// A temp dir that nobody may traverse (tempfile makes it 0700).
fn traversable_tempdir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    chmod(tmp.path(), 0o755);
    tmp
}

/// Builds `kind:path` with `bin` as root; the build must succeed.
fn build(bin: &Path, prog: &str, kind: &str, path: &Path, dir: &Path) {
    let spec = format!("{kind}:{}", path.display());
    let r = run(bin, prog, &[spec], false, dir);
    assert!(
        r.status == "0" && r.stderr.is_empty(),
        "building {kind}:{} with {}: {r:?}",
        path.display(),
        bin.display()
    );
}

// ---------------------------------------------------------------------------------------
// 1. Unreadable files
// ---------------------------------------------------------------------------------------

/// One unreadable-file case: the program, the file made mode 000 (relative to the side's
/// directory), and the arguments, where `@` stands for the side's directory.
struct Denied {
    prog: &'static str,
    locked: &'static str,
    args: &'static [&'static str],
}

const DENIED: &[Denied] = &[
    Denied {
        prog: "postmap",
        locked: "re",
        args: &["-q", "k", "regexp:@/re"],
    },
    Denied {
        prog: "postmap",
        locked: "re",
        args: &["-q", "k", "pcre:@/re"],
    },
    Denied {
        prog: "postmap",
        locked: "ci",
        args: &["-q", "k", "cidr:@/ci"],
    },
    Denied {
        prog: "postmap",
        locked: "th",
        args: &["-q", "k", "texthash:@/th"],
    },
    Denied {
        prog: "postmap",
        locked: "h.db",
        args: &["-q", "k", "hash:@/h"],
    },
    Denied {
        prog: "postmap",
        locked: "h.db",
        args: &["-s", "hash:@/h"],
    },
    Denied {
        prog: "postmap",
        locked: "l.lmdb",
        args: &["-q", "k", "lmdb:@/l"],
    },
    Denied {
        prog: "postmap",
        locked: "l.lmdb",
        args: &["-s", "lmdb:@/l"],
    },
    Denied {
        prog: "postmap",
        locked: "c.cdb",
        args: &["-q", "k", "cdb:@/c"],
    },
    Denied {
        prog: "postmap",
        locked: "src",
        args: &["hash:@/src"],
    },
    Denied {
        prog: "postmap",
        locked: "src",
        args: &["lmdb:@/src"],
    },
    Denied {
        prog: "postmap",
        locked: "src",
        args: &["cdb:@/src"],
    },
    Denied {
        prog: "postalias",
        locked: "al.db",
        args: &["-q", "k", "hash:@/al"],
    },
    Denied {
        prog: "postalias",
        locked: "alsrc",
        args: &["hash:@/alsrc"],
    },
];

/// Writes the files of the unreadable-file cases into `dir`, building the indexed ones with
/// that side's own binaries (Tern's `hash:` is not Berkeley DB, so each side reads its own).
fn denied_fixture(dir: &Path, side: &dyn Fn(&str) -> PathBuf) {
    std::fs::create_dir(dir).unwrap();
    chmod(dir, 0o755);
    let files: &[(&str, &str)] = &[
        ("re", "/k/ v\n"),
        ("ci", "0.0.0.0/0 v\n"),
        ("th", "k v\n"),
        ("h", "k v\n"),
        ("l", "k v\n"),
        ("c", "k v\n"),
        ("src", "k v\n"),
        ("al", "k: v\n"),
        ("alsrc", "k: v\n"),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    for (kind, name) in [("hash", "h"), ("lmdb", "l"), ("cdb", "c")] {
        build(&side("postmap"), "postmap", kind, &dir.join(name), dir);
    }
    build(
        &side("postalias"),
        "postalias",
        "hash",
        &dir.join("al"),
        dir,
    );
}

#[test]
fn unreadable_files_as_nobody_like_debian() {
    let tmp = traversable_tempdir();
    let tern_dir = tmp.path().join("tern");
    let debian_dir = tmp.path().join("debian");
    denied_fixture(&tern_dir, &ours);
    denied_fixture(&debian_dir, &debian);
    let mut report = String::new();
    for case in DENIED {
        let mut got = Vec::new();
        for (dir, bin) in [
            (&tern_dir, ours(case.prog)),
            (&debian_dir, debian(case.prog)),
        ] {
            let locked = dir.join(case.locked);
            chmod(&locked, 0o000);
            let argv: Vec<String> = case
                .args
                .iter()
                .map(|a| a.replace('@', &dir.display().to_string()))
                .collect();
            got.push(run(&bin, case.prog, &argv, true, dir));
            chmod(&locked, 0o644);
        }
        // Each side has its own directory; both are `$DIR` now, so the runs compare.
        if got[0] != got[1] {
            let _ = writeln!(
                report,
                "--- {} {:?} ({} mode 000)\n    tern:   {:?}\n    debian: {:?}",
                case.prog, case.args, case.locked, got[0], got[1]
            );
        }
        assert!(
            got[1].has_fatal(case.prog),
            "the harness is wrong: Debian did not fail on {:?}: {:?}",
            case.args,
            got[1]
        );
    }
    assert!(report.is_empty(), "Tern differs from Debian:\n{report}");
}

// ---------------------------------------------------------------------------------------
// 2. Truncated and damaged table files
// ---------------------------------------------------------------------------------------

/// How a table file is damaged.
#[derive(Debug, Clone, Copy)]
enum Damage {
    Truncate(usize),
    /// 256 bytes of 0xff from this offset.
    Ones(usize),
    /// 4096 zero bytes from this offset.
    Zeros(usize),
    /// Bits flipped at 16 offsets chosen from this seed.
    Flips(u64),
}

/// A small deterministic generator (a 64-bit LCG): the same damage on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next()).unwrap() % n.max(1)
    }
}

fn damaged(orig: &[u8], damage: Damage) -> Vec<u8> {
    let mut v = orig.to_vec();
    let len = v.len();
    match damage {
        Damage::Truncate(n) => v.truncate(n),
        Damage::Ones(at) => v[at.min(len)..(at + 256).min(len)].fill(0xff),
        Damage::Zeros(at) => v[at.min(len)..(at + 4096).min(len)].fill(0),
        Damage::Flips(seed) => {
            let mut rng = Lcg(seed);
            for _ in 0..16 {
                let at = rng.below(len);
                v[at] ^= 1 << rng.below(8);
            }
        }
    }
    v
}

fn damages(size: usize) -> Vec<Damage> {
    vec![
        Damage::Truncate(0),
        Damage::Truncate(100),
        Damage::Truncate(size / 2),
        Damage::Truncate(size - 1),
        Damage::Ones(0),
        Damage::Ones(size / 3),
        Damage::Zeros(size / 2),
        Damage::Zeros(size.saturating_sub(4096)),
        Damage::Flips(1),
        Damage::Flips(2),
        Damage::Flips(3),
    ]
}

/// Checks what Tern did with a damaged file: never a panic, only Postfix-style messages.
fn check_no_panic(r: &Run, what: &str, report: &mut String) {
    let lines_ok = r
        .stderr
        .lines()
        .all(|l| l.starts_with("postmap: warning: ") || l.starts_with("postmap: fatal: "));
    let fatal_ok = !r.has_fatal("postmap") || r.status == "1";
    if !(r.status == "0" || r.status == "1") || !lines_ok || !fatal_ok {
        let _ = writeln!(
            report,
            "--- {what}: not a clean end\n    tern: {}",
            r.brief()
        );
    }
}

#[test]
fn damaged_tables_never_panic_and_fail_like_debian() {
    let tmp = traversable_tempdir();
    let dir = tmp.path();
    let source = (1..=2000).fold(String::new(), |mut s, i| {
        let _ = writeln!(s, "key{i} value{i}");
        s
    });
    // (who builds it, type, file suffix)
    let tables: &[(&str, &str, &str)] = &[
        ("tern", "lmdb", "lmdb"),
        ("tern", "cdb", "cdb"),
        ("tern", "hash", "db"),
        ("debian", "cdb", "cdb"),
        ("debian", "lmdb", "lmdb"),
    ];
    let queries: &[&[&str]] = &[
        &["-q", "key7"],
        &["-q", "key1999"],
        &["-q", "nokey"],
        &["-s"],
    ];
    // Every damaged copy gets its own name, so that they can be checked side by side.
    let mut victims: Vec<Victim> = Vec::new();
    for (builder, kind, suffix) in tables {
        let name = dir.join(format!("{builder}-{kind}"));
        std::fs::write(&name, &source).unwrap();
        let bin = if *builder == "tern" {
            ours("postmap")
        } else {
            debian("postmap")
        };
        build(&bin, "postmap", kind, &name, dir);
        let orig = std::fs::read(format!("{}.{suffix}", name.display())).unwrap();
        for (i, damage) in damages(orig.len()).into_iter().enumerate() {
            let bytes = damaged(&orig, damage);
            let victim = dir.join(format!("victim{i}-{builder}-{kind}"));
            std::fs::write(format!("{}.{suffix}", victim.display()), &bytes).unwrap();
            victims.push(Victim {
                label: format!("{builder}-built {kind} {damage:?}"),
                kind,
                spec: format!("{kind}:{}", victim.display()),
                len: bytes.len(),
            });
        }
    }
    // Debian's msg_fatal() sleeps a second before it exits: check the copies in parallel
    // (the children mostly sleep), a bounded number at a time.
    let mut report = String::new();
    let mut compared = 0;
    for chunk in victims.chunks(16) {
        let results: Vec<(String, usize)> = thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|v| scope.spawn(move || check_victim(v, queries, dir)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (text, n) in results {
            report.push_str(&text);
            compared += n;
        }
    }
    assert!(compared > 0, "the harness is wrong: Debian never failed");
    assert!(report.is_empty(), "damaged tables:\n{report}");
}

/// One damaged copy of a table.
struct Victim {
    label: String,
    kind: &'static str,
    spec: String,
    len: usize,
}

/// How long Debian may take on a damaged file: liblmdb can walk a damaged tree in circles.
const DEBIAN_DAMAGED_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs every query on one damaged copy with both programs; gives the report and the
/// number of comparisons with Debian made.
fn check_victim(v: &Victim, queries: &[&[&str]], dir: &Path) -> (String, usize) {
    let mut report = String::new();
    let mut compared = 0;
    for q in queries {
        let mut argv = args(q);
        argv.push(v.spec.clone());
        let what = format!("{} {q:?}", v.label);
        let tern = run(&ours("postmap"), "postmap", &argv, false, dir);
        check_no_panic(&tern, &what, &mut report);
        let deb = run_limited(
            &debian("postmap"),
            "postmap",
            &argv,
            false,
            dir,
            DEBIAN_DAMAGED_TIMEOUT,
        );
        match compare_failure(v.kind, v.len, &tern, &deb) {
            Verdict::NotComparable => {}
            Verdict::Agree => compared += 1,
            Verdict::Differ(why) => {
                compared += 1;
                let _ = writeln!(
                    report,
                    "--- {what}: {why}\n    tern:   {}\n    debian: {}",
                    tern.brief(),
                    deb.brief()
                );
            }
        }
    }
    (report, compared)
}

/// How Tern's run on a damaged file compares with Debian's.
enum Verdict {
    /// Debian says nothing that applies to Tern.
    NotComparable,
    Agree,
    Differ(&'static str),
}

impl Verdict {
    fn from_diff(differs: bool, why: &'static str) -> Verdict {
        if differs {
            Verdict::Differ(why)
        } else {
            Verdict::Agree
        }
    }
}

/// Compares Tern's run on a damaged file with Debian's on the same file.
fn compare_failure(kind: &str, len: usize, tern: &Run, deb: &Run) -> Verdict {
    let normal_end = deb.status == "0" || deb.status == "1";
    match kind {
        // One format for both (tinycdb's): wherever Debian ends normally, its whole run
        // is the reference, messages and answers.
        "cdb" if normal_end => Verdict::from_diff(tern != deb, "Debian ends otherwise"),
        // Tern's `hash:` is not Berkeley DB: Debian speaks for the file only when it is
        // too short to hold the header of either format.
        "hash" if len < 2048 && deb.has_fatal("postmap") => Verdict::from_diff(
            tern.status != deb.status || tern.msg_lines("postmap") != deb.msg_lines("postmap"),
            "Debian fails otherwise",
        ),
        "lmdb" if deb.status == "1" && deb.has_fatal("postmap") => {
            // Inside a damaged tree, which check trips first is liblmdb's own business
            // (its assertions, its warnings about the garbage it read before): Postfix's
            // part of the fatal line must agree, the MDB_ text after it need not.
            let fatal = |r: &Run| {
                r.msg_lines("postmap")
                    .into_iter()
                    .rfind(|l| l.starts_with("postmap: fatal: "))
                    .map(|l| l.split(": MDB_").next().unwrap_or(l).to_owned())
            };
            let (ours, theirs) = (fatal(tern), fatal(deb));
            let agree = if deb.stderr.contains(": internal error: mdb.c:") {
                // A liblmdb assertion: no message of Postfix's to match; Tern must fail too.
                ours.is_some()
            } else {
                ours == theirs && tern.status == "1"
            };
            Verdict::from_diff(!agree, "Debian fails otherwise")
        }
        _ => Verdict::NotComparable,
    }
}

// ---------------------------------------------------------------------------------------
// 3. Tables and sources that change while postmap runs
// ---------------------------------------------------------------------------------------

const ENTRIES: usize = 200_000;
const MAX_QUERIES: usize = 200;
const MAX_QUERY_TIME: Duration = Duration::from_secs(20);

fn source_text(version: u8) -> String {
    (1..=ENTRIES).fold(String::new(), |mut s, i| {
        let _ = writeln!(s, "key{i} v{version}-{i}");
        s
    })
}

/// Whether `answer` is what a query for key N may give: `v1-N` or `v2-N`, or (when
/// `partial` is allowed, for a table built from a source caught mid-write) a prefix of
/// one of them, or nothing.
fn answer_ok(r: &Run, n: usize, partial: bool) -> bool {
    if !r.stderr.is_empty() {
        return false;
    }
    let want = [format!("v1-{n}\n"), format!("v2-{n}\n")];
    match r.status.as_str() {
        "0" if want.contains(&r.stdout) => true,
        "0" => partial && want.iter().any(|w| w.starts_with(r.stdout.trim_end())),
        "1" => partial && r.stdout.is_empty(),
        _ => false,
    }
}

/// Starts `postmap kind:file` in the background; its messages go to `log`.
fn start_build(bin: &Path, kind: &str, file: &Path, log: &Path) -> Child {
    let err = std::fs::File::create(log).unwrap();
    command(
        bin,
        "postmap",
        &[format!("{kind}:{}", file.display())],
        false,
    )
    .stdout(Stdio::null())
    .stderr(err)
    .spawn()
    .unwrap()
}

/// Rebuilds a v1 table from a v2 source while querying it; mismatches go to `report`.
fn rebuild_while_querying(bin: &Path, kind: &str, dir: &Path, report: &mut String) {
    let file = dir.join(format!("rebuild-{kind}"));
    std::fs::write(&file, source_text(1)).unwrap();
    build(bin, "postmap", kind, &file, dir);
    std::fs::write(&file, source_text(2)).unwrap();
    let log = dir.join("build.log");
    let spec = format!("{kind}:{}", file.display());
    let mut rng = Lcg(u64::try_from(ENTRIES).unwrap() ^ u64::from(kind.as_bytes()[0]));
    let mut child = start_build(bin, kind, &file, &log);
    let start = Instant::now();
    let (mut during, mut asked) = (0, 0);
    while asked < MAX_QUERIES && start.elapsed() < MAX_QUERY_TIME {
        let running = matches!(child.try_wait(), Ok(None));
        if !running && asked >= 3 {
            break;
        }
        let n = 1 + rng.below(ENTRIES);
        let r = run(
            bin,
            "postmap",
            &args(&["-q", &format!("key{n}"), &spec]),
            false,
            dir,
        );
        asked += 1;
        during += usize::from(running);
        if !answer_ok(&r, n, false) {
            let _ = writeln!(
                report,
                "--- {} {kind}: -q key{n} during the rebuild: {r:?}",
                bin.display()
            );
        }
    }
    let status = wait_bounded(&mut child, CHILD_TIMEOUT);
    let messages = std::fs::read_to_string(&log).unwrap_or_default();
    if status != "0" || !messages.is_empty() {
        let _ = writeln!(
            report,
            "--- {} {kind}: the rebuild ended {status}: {messages}",
            bin.display()
        );
    }
    if during == 0 {
        let _ = writeln!(
            report,
            "--- {} {kind}: no query ran during the rebuild",
            bin.display()
        );
    }
    for n in [1, ENTRIES / 2, ENTRIES] {
        let r = run(
            bin,
            "postmap",
            &args(&["-q", &format!("key{n}"), &spec]),
            false,
            dir,
        );
        if r.status != "0" || r.stdout != format!("v2-{n}\n") {
            let _ = writeln!(
                report,
                "--- {} {kind}: key{n} after the rebuild: {r:?}",
                bin.display()
            );
        }
    }
}

/// Builds a table while another thread rewrites its source, in place (`in_place`: same
/// size, so every line stays whole) or by truncating and writing it anew.
fn build_while_rewriting(bin: &Path, kind: &str, dir: &Path, in_place: bool, report: &mut String) {
    let how = if in_place { "in place" } else { "truncated" };
    let file = dir.join(format!("rewrite-{kind}"));
    std::fs::write(&file, source_text(1)).unwrap();
    let log = dir.join("rewrite.log");
    let mut child = start_build(bin, kind, &file, &log);
    let texts = [source_text(2), source_text(1)];
    let start = Instant::now();
    let mut rounds = 0;
    // Rewrite the source for as long as the build runs (bounded).
    while matches!(child.try_wait(), Ok(None)) && rounds < 1000 && start.elapsed() < MAX_QUERY_TIME
    {
        let text = &texts[rounds % 2];
        if in_place {
            let f = std::fs::File::options().write(true).open(&file).unwrap();
            std::os::unix::fs::FileExt::write_all_at(&f, text.as_bytes(), 0).unwrap();
        } else {
            std::fs::write(&file, text).unwrap();
        }
        rounds += 1;
    }
    let status = wait_bounded(&mut child, CHILD_TIMEOUT);
    let messages = std::fs::read_to_string(&log).unwrap_or_default();
    let clean_fatal = status == "1" && messages.lines().any(|l| l.starts_with("postmap: fatal: "));
    let lines_ok = messages
        .lines()
        .all(|l| l.starts_with("postmap: warning: ") || l.starts_with("postmap: fatal: "));
    if !(status == "0" || clean_fatal) || !lines_ok {
        let _ = writeln!(
            report,
            "--- {} {kind} ({how}): the build ended {status}: {messages}",
            bin.display()
        );
    }
    if status != "0" {
        return;
    }
    let spec = format!("{kind}:{}", file.display());
    let mut rng = Lcg(7);
    for _ in 0..20 {
        let n = 1 + rng.below(ENTRIES);
        let r = run(
            bin,
            "postmap",
            &args(&["-q", &format!("key{n}"), &spec]),
            false,
            dir,
        );
        if !answer_ok(&r, n, !in_place) {
            let _ = writeln!(
                report,
                "--- {} {kind} ({how}): -q key{n} after the build: {r:?}",
                bin.display()
            );
        }
    }
}

#[test]
fn tables_change_under_readers_and_writers() {
    let tmp = traversable_tempdir();
    let mut report = String::new();
    // Debian first: the invariants hold for Postfix, so a failure below is Tern's.
    for bin in [debian("postmap"), ours("postmap")] {
        for kind in ["lmdb", "cdb"] {
            rebuild_while_querying(&bin, kind, tmp.path(), &mut report);
            for in_place in [true, false] {
                build_while_rewriting(&bin, kind, tmp.path(), in_place, &mut report);
            }
        }
    }
    assert!(report.is_empty(), "changing tables:\n{report}");
}
