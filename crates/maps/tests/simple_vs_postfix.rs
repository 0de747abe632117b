//! Side by side with Debian's Postfix: `postmap -q KEY TABLE` (and `-s`, `-f`) for the
//! tables that need no files (`inline:`, `static:`, `fail:`, `unionmap:`, `unix:`, `nis:`),
//! against our library's answer rendered the way postmap renders it: the value on stdout
//! and exit 0; nothing and exit 1 when not found; `postmap: fatal: MESSAGE` and exit 1 for
//! an open or lookup error; warnings as `postmap: warning: MESSAGE`.
//!
//! Fails (never skips) when /usr/sbin/postmap is missing. `-s` runs with NORANDOMIZE set,
//! the only way Postfix's hash-table order is repeatable.

use std::fmt::Write as _;
use std::process::Command;
use std::sync::{Arc, Mutex};

use tern_maps::{MapError, OpenFlags};

const POSTMAP: &str = "/usr/sbin/postmap";

/// What a postmap run printed.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    stdout: String,
    stderr: String,
    status: i32,
}

fn postmap(args: &[&str]) -> Outcome {
    assert!(
        std::path::Path::new(POSTMAP).exists(),
        "{POSTMAP} is missing: install Debian's postfix package to run this test"
    );
    let out = Command::new(POSTMAP)
        .args(args)
        .env("NORANDOMIZE", "1")
        .output()
        .expect("run postmap");
    Outcome {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        status: out.status.code().unwrap_or(-1),
    }
}

type Opened = Result<Box<dyn tern_maps::Map>, MapError>;

/// What was written to stderr so far.
fn so_far(stderr: &Mutex<String>) -> String {
    stderr.lock().map(|s| s.clone()).unwrap_or_default()
}

/// Opens `spec` as postmap would (folding unless `-f`), collecting warnings.
fn open(spec: &str, fold: bool) -> (Opened, Arc<Mutex<String>>) {
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    let flags = OpenFlags {
        fold_fix: fold,
        warn: Arc::new(move |m: &str| {
            if let Ok(mut text) = sink.lock() {
                let _ = writeln!(text, "postmap: warning: {m}");
            }
        }),
    };
    (tern_maps::open(spec, &flags), stderr)
}

fn fatal(stderr: &Mutex<String>, err: &MapError) -> Outcome {
    let mut text = so_far(stderr);
    let _ = writeln!(text, "postmap: fatal: {err}");
    Outcome {
        stdout: String::new(),
        stderr: text,
        status: 1,
    }
}

/// Our answer to `postmap [-f] -q KEY SPEC`.
fn ours_query(key: &str, spec: &str, fold: bool) -> Outcome {
    let (map, stderr) = open(spec, fold);
    let map = match map {
        Ok(map) => map,
        Err(err) => return fatal(&stderr, &err),
    };
    match map.lookup(key) {
        Err(err) => fatal(&stderr, &err),
        Ok(None) => Outcome {
            stdout: String::new(),
            stderr: so_far(&stderr),
            status: 1,
        },
        Ok(Some(value)) => {
            let mut text = so_far(&stderr);
            // postmap's own complaint about an empty value (not the table's).
            if value.is_empty() {
                let _ = write!(
                    text,
                    "postmap: warning: table {spec}: key {key}: empty string result is not allowed\n\
                     postmap: warning: table {spec} should return NO RESULT in case of NOT FOUND\n"
                );
            }
            Outcome {
                stdout: format!("{value}\n"),
                stderr: text,
                status: 0,
            }
        }
    }
}

/// Our answer to `postmap [-f] -s SPEC`.
fn ours_sequence(spec: &str, fold: bool) -> Outcome {
    let (map, stderr) = open(spec, fold);
    let map = match map {
        Ok(map) => map,
        Err(err) => return fatal(&stderr, &err),
    };
    match map.sequence() {
        Err(err) => fatal(&stderr, &err),
        Ok(entries) => {
            let mut text = so_far(&stderr);
            let mut out = String::new();
            for (key, value) in entries {
                if key.is_empty() {
                    let _ = writeln!(
                        text,
                        "postmap: warning: table {spec}: empty lookup key value is not allowed"
                    );
                }
                let _ = writeln!(out, "{key}\t{value}");
            }
            Outcome {
                stdout: out,
                stderr: text,
                status: 0,
            }
        }
    }
}

#[test]
fn queries_match_debian() {
    // (key, table, fold)
    let cases: &[(&str, &str, bool)] = &[
        ("a", "inline:{a=b, c=d}", true),
        ("A", "inline:{a=b, c=d}", true),
        ("x", "inline:{a=b, c=d}", true),
        ("a", "inline:{ a = b , c=d }", true),
        ("a", "inline:{ {a = b c} , c=d }", true),
        ("a b", "inline:{ {a b = b c} , c=d }", true),
        ("\"a b\"", "inline:{ {\"a b\" = c } }", true),
        ("a", "inline:{}", true),
        ("a", "inline:{ }", true),
        ("a", "inline:{ , }", true),
        ("a", "inline:a=b", true),
        ("a", "inline:{a=b", true),
        ("a", "inline:{a=b}x", true),
        ("a", "inline:{a=b}}", true),
        ("a", "inline: {a=b}", true),
        ("a", "inline:{a=b} ", true),
        ("a", "inline:{a}", true),
        ("a", "inline:{=b}", true),
        ("a", "inline:{a=}", true),
        ("a", "inline:{a=b,a=c}", true),
        ("a", "inline:{ {a=b}x }", true),
        ("a", "inline:{ {a=b c}, {} }", true),
        ("a", "inline:{ a={b, c}, d=e }", true),
        ("a", "inline:{ a=\"b }", true),
        ("a", "inline:{ \"a=b }", true),
        ("a\\=b", "inline:{ a\\=b=c }", true),
        ("a", "inline:{\ta=b\t}", true),
        ("a", "inline:{\na=b\n}", true),
        ("A", "inline:{ A=b }", false),
        ("a", "inline:{ A=b }", false),
        ("a", "static:foo", true),
        ("a", "static:foo bar", true),
        ("a", "static:{ foo bar }", true),
        ("a", "static:{ foo bar } x", true),
        ("a", "static:{ foo bar ", true),
        ("a", "static:", true),
        ("a", "static:{}", true),
        ("a", "static: foo", true),
        ("a", "fail:oops", true),
        ("a", "fail:", true),
        ("a", "unionmap:{inline:{a=1}, static:2}", true),
        ("b", "unionmap:{inline:{a=1}, static:2}", true),
        ("a", "unionmap:{inline:{a=1}, fail:x}", true),
        ("a", "unionmap:{inline:{b=1}, inline:{c=1}}", true),
        ("a", "unionmap:{}", true),
        ("a", "unionmap:{ }", true),
        ("a", "unionmap:x", true),
        ("a", "unionmap:{inline:{a=1} static:{2 3}}", true),
        ("A", "unionmap:{inline:{a=1},static:X}", true),
        ("A", "unionmap:{inline:{a=1},static:X}", false),
        ("a", "unionmap:{inline:{a=1},bogus:x}", true),
        ("a", "unionmap:{inline:{a=1},nocolon}", true),
        ("a", "unionmap:{inline:{a=}, static:x}", true),
        ("root", "unix:passwd.byname", true),
        ("ROOT", "unix:passwd.byname", true),
        ("ROOT", "unix:passwd.byname", false),
        ("no-such-user-xyz", "unix:passwd.byname", true),
        ("root", "unix:group.byname", true),
        ("root", "unix:shadow", true),
        ("root", "nis:mail.aliases", true),
        ("a", "bogus:x", true),
    ];
    let mut failures = Vec::new();
    for (key, spec, fold) in cases {
        let mut args = vec![];
        if !fold {
            args.push("-f");
        }
        args.extend(["-q", key, spec]);
        let theirs = postmap(&args);
        let ours = ours_query(key, spec, *fold);
        if theirs != ours {
            failures.push(format!(
                "postmap {args:?}\n  debian: {theirs:?}\n  ours:   {ours:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn sequences_match_debian() {
    // (table, fold)
    let cases: &[(&str, bool)] = &[
        ("inline:{a=b, c=d, e=f}", true),
        ("inline:{a=b, c=d, e=f, g=h}", true),
        ("inline:{ A=b }", true),
        ("inline:{ A=b }", false),
        ("inline:{=b}", true),
        (
            "inline:{k1=1,k2=2,k3=3,k4=4,k5=5,k6=6,k7=7,k8=8,k9=9,k10=10,k11=11,k12=12,k13=13,k14=14,k15=15,k16=16}",
            true,
        ),
        ("static:foo", true),
        ("fail:oops", true),
        ("unionmap:{inline:{a=1}}", true),
        ("unix:passwd.byname", true),
        ("inline:{}", true),
    ];
    let mut failures = Vec::new();
    for (spec, fold) in cases {
        let mut args = vec![];
        if !fold {
            args.push("-f");
        }
        args.extend(["-s", spec]);
        let theirs = postmap(&args);
        let ours = ours_sequence(spec, *fold);
        if theirs != ours {
            failures.push(format!(
                "postmap {args:?}\n  debian: {theirs:?}\n  ours:   {ours:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
