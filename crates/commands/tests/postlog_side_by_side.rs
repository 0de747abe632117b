//! `postlog` side by side with Debian's: the same invocations (text, a tag and a
//! priority, lines on standard input, a bad priority, an unknown flag) give the same log
//! lines (apart from time, host and pid), standard error and exit status.
//!
//! Needs root and Debian's postfix (a private instance, whose postlogd writes its
//! maillog_file), and `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tern_testkit::postfix::PostfixInstance;
use tern_testkit::tern::Tern;

/// (arguments, standard input, lines logged in the instance's own log: a bad priority
/// or flag is logged where the default configuration logs, before `-c` takes effect)
const CASES: &[(&[&str], &str, usize)] = &[
    (&["hello", "from", "a", "script"], "", 1),
    (
        &[
            "-t",
            "backup-job",
            "-p",
            "warning",
            "disk",
            "almost",
            "full",
        ],
        "",
        1,
    ),
    (&["-p", "err", "-i", "it", "broke"], "", 1),
    (&[], "first line\nsecond line\n", 2),
    (&["-p", "bogus", "x"], "", 0),
    (&["-x"], "", 0),
];

fn run(program: &Path, conf: &str, args: &[&str], input: &str) -> (i32, String) {
    let mut child = Command::new(program)
        .args(["-c", conf])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The log's lines after `from` lines, as `TAG: TEXT` (time, host and pid dropped).
fn lines(log: &str, from: usize) -> Vec<String> {
    log.lines()
        .skip(from)
        .filter_map(|l| {
            let mut parts = l.splitn(5, ' ');
            let rest = parts.nth(4)?;
            let (tag, text) = rest.split_once(": ")?;
            let tag = tag.split('[').next()?;
            Some(format!("{tag}: {text}"))
        })
        .filter(|l| l.contains("postlog") || l.starts_with("backup-job"))
        .collect()
}

fn wait_lines(log: impl Fn() -> String, from: usize, want: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let got = lines(&log(), from);
        if got.len() >= want || start.elapsed() > Duration::from_secs(3) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn postlog_logs_as_postfix_does() {
    let pf = PostfixInstance::start("").expect("postfix");
    let t = Tern::configure("").expect("tern");
    let pf_conf = pf.dir().display().to_string();
    let t_conf = t.config_dir().display().to_string();
    let tern_postlog = tern_testkit::tern::postfix_binary()
        .unwrap()
        .with_file_name("postlog");
    for (args, input, want) in CASES {
        let pf_before = pf.maillog().lines().count();
        let t_before = t.log().lines().count();
        let (pc, pe) = run(Path::new("/usr/sbin/postlog"), &pf_conf, args, input);
        let (tc, te) = run(&tern_postlog, &t_conf, args, input);
        assert_eq!((tc, te.as_str()), (pc, pe.as_str()), "{args:?}");
        let p = wait_lines(|| pf.maillog(), pf_before, (*want).max(1));
        let n = wait_lines(|| t.log(), t_before, (*want).max(1));
        assert_eq!(n, p, "{args:?}");
        assert_eq!(p.len(), *want, "{args:?}: {p:?}");
    }
}
