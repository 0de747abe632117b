//! Shared plumbing for the side-by-side tests of `postconf`: which binaries to run, how to
//! run one with a timeout, and how to make their output comparable.
//!
//! Debian's `/usr/sbin/postconf` is the oracle. Ours is `CARGO_BIN_EXE_postconf`, or the
//! binary named by `TERN_POSTCONF` (set it to `/usr/sbin/postconf` to check that the
//! harness and the corpus agree with Debian against itself).
//!
//! Both binaries run with a cleared environment and with `argv[0]` set to `postconf`, because
//! Postfix prefixes every message with `argv[0]` verbatim.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Debian's postconf: the oracle.
pub const DEBIAN_POSTCONF: &str = "/usr/sbin/postconf";

/// How long one child may run before it is killed.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(10);

/// The binary under test.
pub fn our_postconf() -> PathBuf {
    match std::env::var_os("TERN_POSTCONF") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_postconf")),
    }
}

/// Panics (never skips) when the oracle is absent: a missing oracle must not look green.
pub fn require_debian_postconf() {
    assert!(
        Path::new(DEBIAN_POSTCONF).is_file(),
        "{DEBIAN_POSTCONF} is missing: these tests compare Tern's postconf with Debian's; \
         install it with `apt-get install postfix` (Debian 12, Postfix 3.7)"
    );
}

/// The corpus and fixtures folder.
pub fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/postconf-cases")
}

/// What one run of a program gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Exit code, or `signal N`, or `timeout`, or a spawn error.
    pub status: String,
}

/// Runs `bin args...` with `argv[0] = "postconf"`, a cleared environment and a timeout.
/// With `as_nobody`, runs it through `setpriv` as nobody:nogroup.
pub fn run(bin: &Path, args: &[String], as_nobody: bool) -> Outcome {
    let mut cmd = if as_nobody {
        // setpriv execs its argument as given, so bash's `exec -a` sets argv[0].
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .args(["/bin/bash", "-c", "exec -a postconf \"$@\"", "bash"])
            .arg(bin)
            .args(args);
        c
    } else {
        let mut c = Command::new(bin);
        c.arg0("postconf").args(args);
        c
    };
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                stdout: Vec::new(),
                stderr: Vec::new(),
                status: format!("spawn {}: {e}", bin.display()),
            };
        }
    };
    // Drain both pipes on threads so a large output cannot block the child.
    let mut out_pipe = child.stdout.take().expect("stdout was piped");
    let mut err_pipe = child.stderr.take().expect("stderr was piped");
    let out_thread = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_thread = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                break match (
                    st.code(),
                    std::os::unix::process::ExitStatusExt::signal(&st),
                ) {
                    (Some(c), _) => c.to_string(),
                    (None, Some(s)) => format!("signal {s}"),
                    (None, None) => "unknown".to_string(),
                };
            }
            Ok(None) if start.elapsed() > CHILD_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break format!("timeout after {}s", CHILD_TIMEOUT.as_secs());
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => break format!("wait: {e}"),
        }
    };
    Outcome {
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
        status,
    }
}

/// Sets the mtime of every file in `dir` to a fixed time in the past. Postfix rereads main.cf in 300 ms
/// steps for as long as its mtime is within the last second or so (it guards against reading
/// a file while an editor writes it), which would make each fresh copy cost seconds.
pub fn age_files(dir: &Path) -> Result<(), String> {
    // A fixed instant in 2020: old enough, and the same on every run.
    let past = std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let entries = std::fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
    for entry in entries.filter_map(Result::ok) {
        let f = std::fs::File::options()
            .write(true)
            .open(entry.path())
            .map_err(|e| format!("open {}: {e}", entry.path().display()))?;
        f.set_modified(past)
            .map_err(|e| format!("set mtime {}: {e}", entry.path().display()))?;
    }
    Ok(())
}

/// Replaces every occurrence of `from` in `hay` with `to`.
pub fn replace_bytes(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return hay.to_vec();
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Makes an outcome comparable: the temp dir becomes `$DIR`, and each run of consecutive
/// "unused parameter" or "undefined parameter" warnings is sorted, because Postfix reports
/// them in the order of its hash table, which is seeded at random on each run.
pub fn normalize(o: &Outcome, dir: &Path) -> Outcome {
    let d = dir.as_os_str().as_encoded_bytes();
    Outcome {
        stdout: replace_bytes(&o.stdout, d, b"$DIR"),
        stderr: sort_hash_order_runs(&replace_bytes(&o.stderr, d, b"$DIR")),
        status: o.status.clone(),
    }
}

/// Warnings that Postfix emits while walking a hash table, so in random order.
const HASH_ORDER_WARNINGS: &[&[u8]] = &[b": unused parameter: ", b": undefined parameter: "];

fn sort_hash_order_runs(stderr: &[u8]) -> Vec<u8> {
    let kind = |l: &[u8]| HASH_ORDER_WARNINGS.iter().position(|w| contains(l, w));
    let lines: Vec<&[u8]> = stderr.split_inclusive(|&b| b == b'\n').collect();
    let mut out = Vec::with_capacity(stderr.len());
    let mut i = 0;
    while i < lines.len() {
        let k = kind(lines[i]);
        let mut j = i + 1;
        if k.is_some() {
            while j < lines.len() && kind(lines[j]) == k {
                j += 1;
            }
        }
        let mut run: Vec<&[u8]> = lines[i..j].to_vec();
        run.sort_unstable();
        for l in run {
            out.extend_from_slice(l);
        }
        i = j;
    }
    out
}

/// True when `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Shows bytes for a report: printable text as is, the rest escaped, at most `max` bytes.
pub fn show(bytes: &[u8], max: usize) -> String {
    let cut = bytes.len().min(max);
    let mut s = String::new();
    for chunk in bytes[..cut].utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' | '\t' => s.push(c),
                c if c.is_control() => s.push_str(&c.escape_default().to_string()),
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    if bytes.len() > cut {
        let _ = write!(s, "\n... ({} more bytes)", bytes.len() - cut);
    }
    s
}
