//! Side-by-side test of `postconf` against Debian's Postfix 3.7.
//!
//! Each folder `tests/postconf-cases/NN-name/` holds a `main.cf`, optionally a `master.cf`
//! (else `default-master.cf`, Debian's stock file, is used), any other files the case needs,
//! and `cmds`: one postconf invocation per line, as arguments (`'...'` and `"..."` quote;
//! blank lines and lines starting with `#` are skipped). Marker files, not copied:
//! - `as-nobody`: run both binaries as nobody:nogroup through `setpriv`;
//! - `modes`: lines `MODE FILE` (octal) applied to the copied files, since git keeps no modes.
//!
//! For every command, each binary gets a fresh copy of the case in its own temp dir (so an
//! editing command cannot leak into the next one) and runs as `postconf -c DIR ARGS...`.
//! Stdout, stderr and exit status must match after the temp dir becomes `$DIR`. All
//! mismatches over all cases are collected and reported once at the end.
//!
//! Debian's output is also written to `expected.txt` in each case (with `UPDATE_GOLDEN=1`) so
//! readers see what is checked; a stale or missing `expected.txt` is reported too. The live
//! Debian run stays the oracle.
//!
//! `TERN_POSTCONF=/usr/sbin/postconf` runs Debian against itself: every case must then pass,
//! which also shows that Debian's output is stable from run to run.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use common::{Outcome, normalize, our_postconf, require_debian_postconf, run, show};

/// Files in a case folder that describe the case rather than belong to the config dir.
const META_FILES: &[&str] = &["cmds", "expected.txt", "as-nobody", "modes", "README"];

/// Lines longer than this are shown in `expected.txt` by length and hash, not verbatim.
const GOLDEN_LINE_MAX: usize = 2000;

/// Bounds on the failure report.
const REPORT_MAX_BYTES: usize = 60_000;
const SHOW_MAX_BYTES: usize = 1_500;

/// Cases run on this many threads: Debian's postconf sleeps a second before each fatal exit,
/// so the run is mostly waiting.
const WORKERS: usize = 6;

#[test]
fn postconf_matches_debian() {
    require_debian_postconf();
    let ours = our_postconf();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let cases = list_cases();
    assert!(
        cases.len() >= 45,
        "expected at least 45 cases, found {}",
        cases.len()
    );

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, usize, Vec<Failure>)>> = Mutex::new(Vec::new());
    thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let (n, f) = check_case(case, &ours, update);
                    results
                        .lock()
                        .expect("no worker panics while holding the lock")
                        .push((i, n, f));
                }
            });
        }
    });
    let mut results = results.into_inner().expect("workers are done");
    results.sort_by_key(|r| r.0);
    let commands: usize = results.iter().map(|r| r.1).sum();
    let failures: Vec<Failure> = results.into_iter().flat_map(|r| r.2).collect();
    assert!(
        failures.is_empty(),
        "{}",
        report(&failures, cases.len(), commands, &ours)
    );
}

/// Runs one case's commands with both binaries; returns how many commands ran and what failed.
fn check_case(case: &Path, ours: &Path, update: bool) -> (usize, Vec<Failure>) {
    let debian = Path::new(common::DEBIAN_POSTCONF);
    let name = case
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut failures = Vec::new();
    let cmds = match read_cmds(case) {
        Ok(c) => c,
        Err(e) => return (0, vec![Failure::note(&name, "", e)]),
    };
    let as_nobody = case.join("as-nobody").exists();
    let mut golden = String::new();
    for args in &cmds {
        let shown_cmd = args.join(" ");
        let expected = match run_in_copy(case, debian, args, as_nobody) {
            Ok(o) => o,
            Err(e) => {
                failures.push(Failure::note(&name, &shown_cmd, e));
                continue;
            }
        };
        render_golden(&mut golden, &shown_cmd, &expected);
        let got = match run_in_copy(case, ours, args, as_nobody) {
            Ok(o) => o,
            Err(e) => {
                failures.push(Failure::note(&name, &shown_cmd, e));
                continue;
            }
        };
        if expected != got {
            failures.push(Failure {
                case: name.clone(),
                cmd: shown_cmd,
                expected,
                got,
            });
        }
    }
    let golden_path = case.join("expected.txt");
    if update {
        if let Err(e) = fs::write(&golden_path, &golden) {
            failures.push(Failure::note(&name, "", format!("write expected.txt: {e}")));
        }
    } else {
        let note = match fs::read_to_string(&golden_path) {
            Ok(old) if old == golden => None,
            Ok(_) => Some(
                "expected.txt differs from Debian's live output; \
                 rerun with UPDATE_GOLDEN=1 and review the diff",
            ),
            Err(_) => Some("expected.txt is missing; run with UPDATE_GOLDEN=1"),
        };
        if let Some(note) = note {
            failures.push(Failure::note(&name, "(expected.txt)", note.to_string()));
        }
    }
    (cmds.len(), failures)
}

/// Case folders, sorted: every directory whose name starts with two digits and a dash.
fn list_cases() -> Vec<PathBuf> {
    let dir = common::cases_dir();
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    let b = n.as_bytes();
                    b.len() > 3 && b[0].is_ascii_digit() && b[1].is_ascii_digit() && b[2] == b'-'
                })
        })
        .collect();
    cases.sort();
    cases
}

/// The invocations listed in a case's `cmds` file.
fn read_cmds(case: &Path) -> Result<Vec<Vec<String>>, String> {
    let text = fs::read_to_string(case.join("cmds")).map_err(|e| format!("read cmds: {e}"))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        out.push(split_args(t).map_err(|e| format!("cmds line {}: {e}", n + 1))?);
    }
    if out.is_empty() {
        return Err("cmds lists no command".to_string());
    }
    Ok(out)
}

/// Splits a command line on whitespace, honouring '...' and "..." (no escapes).
fn split_args(line: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_arg = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_arg = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_arg {
                    args.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".to_string());
    }
    if in_arg {
        args.push(cur);
    }
    Ok(args)
}

/// Copies the case into a fresh temp dir and runs `bin -c DIR args...` there.
fn run_in_copy(
    case: &Path,
    bin: &Path,
    args: &[String],
    as_nobody: bool,
) -> Result<Outcome, String> {
    let tmp = tempfile::Builder::new()
        .prefix("postconf-golden.")
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))?;
    let dir = tmp.path();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod tempdir: {e}"))?;
    populate(case, dir)?;
    let mut full = vec!["-c".to_string(), dir.to_string_lossy().into_owned()];
    full.extend(args.iter().cloned());
    let raw = run(bin, &full, as_nobody);
    Ok(normalize(&raw, dir))
}

/// Writes the case's config files into `dir`.
fn populate(case: &Path, dir: &Path) -> Result<(), String> {
    let entries = fs::read_dir(case).map_err(|e| format!("read {}: {e}", case.display()))?;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let name_s = name.to_string_lossy();
        if META_FILES.contains(&name_s.as_ref()) || !entry.path().is_file() {
            continue;
        }
        fs::copy(entry.path(), dir.join(&name)).map_err(|e| format!("copy {name_s}: {e}"))?;
        fs::set_permissions(dir.join(&name), fs::Permissions::from_mode(0o644))
            .map_err(|e| format!("chmod {name_s}: {e}"))?;
    }
    if !case.join("master.cf").exists() {
        let default = common::cases_dir().join("default-master.cf");
        fs::copy(&default, dir.join("master.cf"))
            .map_err(|e| format!("copy default-master.cf: {e}"))?;
        fs::set_permissions(dir.join("master.cf"), fs::Permissions::from_mode(0o644))
            .map_err(|e| format!("chmod master.cf: {e}"))?;
    }
    common::age_files(dir)?;
    if let Ok(modes) = fs::read_to_string(case.join("modes")) {
        for line in modes.lines().filter(|l| !l.trim().is_empty()) {
            let mut it = line.split_whitespace();
            let (Some(mode), Some(file)) = (it.next(), it.next()) else {
                return Err(format!("modes: bad line {line:?}"));
            };
            let mode = u32::from_str_radix(mode, 8).map_err(|e| format!("modes: {line:?}: {e}"))?;
            fs::set_permissions(dir.join(file), fs::Permissions::from_mode(mode))
                .map_err(|e| format!("modes: chmod {file}: {e}"))?;
        }
    }
    Ok(())
}

/// Appends one command's expected outcome to the golden text.
fn render_golden(golden: &mut String, cmd: &str, o: &Outcome) {
    let _ = writeln!(golden, "$ postconf -c $DIR {cmd}");
    let _ = writeln!(golden, "exit {}", o.status);
    for (label, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        if bytes.is_empty() {
            continue;
        }
        let _ = writeln!(golden, "--- {label}");
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            let (body, nl) = match line.strip_suffix(b"\n") {
                Some(b) => (b, true),
                None => (line, false),
            };
            if body.len() > GOLDEN_LINE_MAX {
                let _ = write!(
                    golden,
                    "<{} bytes starting {:?}, fnv1a64 {:016x}>",
                    body.len(),
                    show(&body[..60], 60),
                    fnv1a64(body)
                );
            } else {
                golden.push_str(&show(body, usize::MAX));
            }
            golden.push_str(if nl { "\n" } else { "\\no-newline\n" });
        }
    }
    golden.push('\n');
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One case/command whose outcome differs, or a problem with the case itself.
struct Failure {
    case: String,
    cmd: String,
    expected: Outcome,
    got: Outcome,
}

impl Failure {
    fn note(case: &str, cmd: &str, msg: String) -> Failure {
        let empty = Outcome {
            stdout: Vec::new(),
            stderr: Vec::new(),
            status: String::new(),
        };
        Failure {
            case: case.to_string(),
            cmd: cmd.to_string(),
            expected: Outcome {
                status: msg,
                ..empty.clone()
            },
            got: Outcome {
                status: "note".to_string(),
                ..empty
            },
        }
    }
}

/// A readable, bounded report of all failures.
fn report(failures: &[Failure], cases: usize, commands: usize, ours: &Path) -> String {
    let mut r = format!(
        "{} of {commands} postconf commands in {cases} cases differ from Debian's \
         (ours: {}; Debian's output is the expected one):\n",
        failures.len(),
        ours.display()
    );
    let mut brief = Vec::new();
    for f in failures {
        if r.len() > REPORT_MAX_BYTES {
            brief.push(format!("  {} | postconf {}", f.case, f.cmd));
            continue;
        }
        let _ = writeln!(r, "\n=== {} | postconf -c $DIR {}", f.case, f.cmd);
        if f.got.status == "note" {
            let _ = writeln!(r, "{}", f.expected.status);
            continue;
        }
        if f.expected.status != f.got.status {
            let _ = writeln!(
                r,
                "exit: expected {}, got {}",
                f.expected.status, f.got.status
            );
        }
        for (label, e, g) in [
            ("stdout", &f.expected.stdout, &f.got.stdout),
            ("stderr", &f.expected.stderr, &f.got.stderr),
        ] {
            if e == g {
                continue;
            }
            let _ = writeln!(r, "{label} differs{}", first_diff(e, g));
            let _ = writeln!(r, "--- expected {label}:\n{}", show(e, SHOW_MAX_BYTES));
            let _ = writeln!(r, "--- got {label}:\n{}", show(g, SHOW_MAX_BYTES));
        }
    }
    if !brief.is_empty() {
        let _ = writeln!(r, "\n... and {} more (report cut):", brief.len());
        for b in brief.iter().take(200) {
            r.push_str(b);
            r.push('\n');
        }
    }
    r
}

/// Where two outputs first differ, by line.
fn first_diff(e: &[u8], g: &[u8]) -> String {
    let el: Vec<&[u8]> = e.split(|&b| b == b'\n').collect();
    let gl: Vec<&[u8]> = g.split(|&b| b == b'\n').collect();
    for i in 0..el.len().max(gl.len()) {
        let a = el.get(i).copied();
        let b = gl.get(i).copied();
        if a != b {
            return format!(
                " at line {}:\n  expected: {}\n  got:      {}",
                i + 1,
                a.map_or_else(|| "<none>".to_string(), |l| show(l, 300)),
                b.map_or_else(|| "<none>".to_string(), |l| show(l, 300)),
            );
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::split_args;

    #[test]
    fn split_args_table() {
        let table: &[(&str, &[&str])] = &[
            ("-n", &["-n"]),
            ("-h  myhostname", &["-h", "myhostname"]),
            ("-e 'a = b c'", &["-e", "a = b c"]),
            ("-e \"x=\"", &["-e", "x="]),
            ("''", &[""]),
        ];
        for (line, want) in table {
            assert_eq!(split_args(line).expect("valid"), *want, "{line}");
        }
        assert!(split_args("'open").is_err());
    }
}
