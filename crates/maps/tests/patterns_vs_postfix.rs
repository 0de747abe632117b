//! Side by side with Debian's Postfix: the same `regexp:`, `pcre:` and `cidr:` table files
//! and keys given to `/usr/sbin/postmap -q KEY TYPE:FILE` and to this crate; the found
//! value (or not found) and the warnings must be the same. Fails when postmap is missing.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use tern_maps::{MapError, OpenFlags};

const POSTMAP: &str = "/usr/sbin/postmap";

struct Case {
    name: &'static str,
    kind: &'static str,
    text: String,
    keys: Vec<String>,
}

fn case(name: &'static str, kind: &'static str, text: &str, keys: &[&str]) -> Case {
    Case {
        name,
        kind,
        text: text.to_owned(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
    }
}

/// What a lookup gave: the value (or None) or a fatal message, and the warnings.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    result: Result<Option<String>, String>,
    warnings: Vec<String>,
}

fn postfix(spec: &str, key: &str) -> Outcome {
    let out = Command::new(POSTMAP)
        .args(["-q", key, spec])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {POSTMAP} (install postfix, postfix-pcre): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut warnings = Vec::new();
    let mut fatal = None;
    for line in stderr.lines() {
        if let Some(w) = line.strip_prefix("postmap: warning: ") {
            warnings.push(w.to_owned());
        } else if let Some(f) = line.strip_prefix("postmap: fatal: ") {
            fatal = Some(f.to_owned());
        } else {
            panic!("unexpected stderr line from postmap: {line:?}");
        }
    }
    let result = match (fatal, out.status.code()) {
        (Some(f), _) => Err(f),
        (None, Some(0)) => Ok(Some(
            stdout.strip_suffix('\n').unwrap_or(&stdout).to_owned(),
        )),
        (None, Some(1)) => {
            assert!(stdout.is_empty(), "postmap exit 1 with output {stdout:?}");
            Ok(None)
        }
        (None, code) => panic!("postmap exit {code:?}: {stderr}"),
    };
    Outcome { result, warnings }
}

fn ours(spec: &str, key: &str) -> Outcome {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let flags = OpenFlags {
        warn: Arc::new(move |w: &str| sink.lock().expect("warnings lock").push(w.to_owned())),
        ..OpenFlags::default()
    };
    let result = match tern_maps::open(spec, &flags) {
        Ok(map) => map.lookup(key).map_err(|e| e.to_string()),
        Err(MapError::Config(e) | MapError::Retry(e)) => Err(e),
    };
    let warnings = seen.lock().expect("warnings lock").clone();
    Outcome { result, warnings }
}

fn cases() -> Vec<Case> {
    let long_alt: String = (0..400).fold(String::new(), |mut s, i| {
        s.push('k');
        s.push_str(&i.to_string());
        s.push_str("x|");
        s
    }) + "end";
    let long_value = "v".repeat(3000);
    vec![
        case(
            "regexp-substitution",
            "regexp",
            "/^(a)(b)?c$/\tx$1-$2-$$-${1}y\n/^([^@]+)@(.*)$/ $2 user=$1\n/(x)/ $(1)$1\n",
            &["abc", "ac", "joe@example.com", "axb", "none"],
        ),
        case(
            "regexp-nesting",
            "regexp",
            "if /^a/\nif !/b/\n/./ a-not-b\nendif\n/c/ a-and-c\nendif\n/a/!/d/ a-not-d\n\
             IF /z/\n  # comment inside\n/z/ zed\nENDIF\n",
            &["ax", "abc", "xa", "xad", "ab", "z"],
        ),
        case(
            "regexp-case",
            "regexp",
            "/foo/i cased\n/BAR/ insensitive\n/Qux/ii twice\n",
            &["Foo", "foo", "bar", "BAR", "qux", "QUX"],
        ),
        case(
            "regexp-invalid",
            "regexp",
            "/a(/ x\n/*a/ x\n/a{/ x\n/a{x}/ x\n/a{3,1}/ x\n/[a/ x\n/[[:foo:]]/ x\n/[z-a]/ x\n\
             /(?i)x/ x\n/a{32768}/ x\n/a\\\\/ x\n/\\1/ x\n/abc/q y\n/abc\n!\n/ok/ ok\n",
            &["ok", "a"],
        ),
        case(
            "regexp-substitution-errors",
            "regexp",
            "/(a)/ $2\n/a/ $0\n/a/ $b\n/a/ ${1\n/a/ $\n/(a)/ $1a\n!/(a)/ $1\n/a/ ${1}\n\
             /(b)/ ${{1}}\n/a/ $a $b\n/(a)/ ${01}\n",
            &["a", "b"],
        ),
        case(
            "regexp-structure",
            "regexp",
            " leading\n/x/ first\nendif\nendif extra\nfoo bar\n/nothing/\n  /cont/\n\
             if /x/ junk\nif /q/\n/e/\n",
            &["x", "nothing", "q"],
        ),
        case(
            "regexp-glibc-escapes",
            "regexp",
            "/\\d/ esc-d\n/\\D/ esc-D\n/^\\w+$/ word\n/\\<b/ wordstart\n/\\./ dot\n/[\\d]/ backslash-or-d\n",
            &["d", "D", "1", "ab_c", "a b", "x.y", "\\", "-"],
        ),
        case(
            "regexp-basic-syntax",
            "regexp",
            "/a+b/x bre-plus\n/\\(x\\)\\{2\\}/x [$1]\n/^*s/x star\n/c|d/x pipe\n",
            &["a+b", "aab", "xx", "*s", "c|d", "c"],
        ),
        case(
            "regexp-brackets-and-dots",
            "regexp",
            "/^p.q$/m multi\n/^[^x]$/m notx\n/[]x]/ bracket\n/^[[:digit:]]+$/ digits\n\
             /^[A-Z]$/ upper\n/^a.b$/ dot\n/a+?/ plusq\n",
            &["pzq", "]", "123", "q", "a", "a-b", "aaa"],
        ),
        case(
            "regexp-long-lines",
            "regexp",
            &format!("/^({long_alt})$/ {long_value}\n/^(k7x)$/ [$1]\n"),
            &["k399x", "end", "k7x", "k400x"],
        ),
        case(
            "pcre-groups",
            "pcre",
            "/^(a)|(b)$/ [$1][$2]\n/^(c)(d)?$/ [$1][$2]\n/(x)?y/ [$1]\n/^u(.)$/ u[$1]\n\
             /^([^@]+)@(.+)$/ ${2}:$1\n",
            &["a", "b", "c", "cd", "y", "joe@example.com", "uv"],
        ),
        case(
            "pcre-flags",
            "pcre",
            "/^B/i cased\n/^x.y$/ dot\n/^p.q$/s nodot\n/^m$/m multi\n/^(a+)(a*)$/U [$1][$2]\n\
             /b/A anch\n/^ e x $/x extended\n/ZZ/X obsolete\n",
            &["b", "B", "aaa", "xb", "ex", "zz", "pzq"],
        ),
        case(
            "pcre-invalid",
            "pcre",
            "/a(/ x\n/abc/q y\n/abc\n/[z-a]/ r\n/a{2,1}/ r\n/(?P<x/ q\n/\\/ q\n/a/x!y z\n\
             /(a)/ $2\n/a/ $0\n!/(a)/ $1\n/ok/\n/(/U x\n/fine/ fine\n",
            // Not "ok": postmap itself refuses an empty result (its own warnings).
            &["fine", "zz"],
        ),
        case(
            "pcre-nesting",
            "pcre",
            "if /^a/\nif !/b/\n/./ a-not-b\nendif\n/c/ a-and-c\nendif\nendif\nif /x/ junk\n\
             /./ any\nif /q/\n",
            &["ax", "abc", "b", "x", "q"],
        ),
        case(
            "pcre-long-lines",
            "pcre",
            &format!("/^(?:{long_alt})$/ {long_value}\n/^(k7x)$/ [$1]\n"),
            &["k399x", "k7x", "k400x"],
        ),
        case(
            "cidr-ipv4",
            "cidr",
            "1.2.3.0/24 net\n[10.0.0.0/8] br\n[11.0.0.0]/8 br2\n[12.0.0.1] br3\n!7.7.7.7 notseven\n\
             0.0.0.0/0 all\n",
            &[
                "1.2.3.4",
                "10.1.1.1",
                "11.1.1.1",
                "12.0.0.1",
                "7.7.7.7",
                "8.8.8.8",
                "1.2.3.04",
                "[1.2.3.4]",
                "foo",
                "::ffff:1.2.3.4",
            ],
        ),
        case(
            "cidr-ipv6",
            "cidr",
            "::1 loopback\n[2001:db8::]/32 doc\n2001:db8:1::/48 shadowed\nfe80::/10 linklocal\n\
             ::ffff:0:0/96 mapped\n::/0 any6\n",
            &[
                "::1",
                "[::1]",
                "2001:db8::5",
                "2001:DB8:1::1",
                "fe80::1",
                "fe80::1%eth0",
                "::ffff:1.2.3.4",
                "2002::1",
                "1.2.3.4",
                "2001:db8::1::",
            ],
        ),
        case(
            "cidr-invalid",
            "cidr",
            "1.2.3.4/33 x\n1.2.3.5/24 x\n2001:db8::1/32 x\n1.2.3/24 x\n1.2.3.4/ x\n1.2.3.4/a x\n\
             01.2.3.4 x\nbogus x\n5.6.7.8\n[1.2.3.4 x\n[1.2.3.4]x y\nif 9.9.9.0/24 junk\nif\n\
             endif\nendif x\n::1/129 x\n::1/200000000000 x\n1.2.3.4/256 x\n0.0.0.0/264 slash8\n\
             ::/99999999999999999999 x\n1.2.3.4 ok\n",
            &["1.2.3.4", "5.6.7.8", "0.1.2.3"],
        ),
        case(
            "cidr-nesting",
            "cidr",
            "if 10.0.0.0/8\nif !10.1.0.0/16\n10.0.0.0/8 ten-not-one\nendif\n10.1.2.0/24 ten-one-two\n\
             endif\nif ::/0\n::/0 any6\nendif\nif 192.168.0.0/16\n192.168.1.1 inside\n",
            &[
                "10.2.0.1",
                "10.1.2.3",
                "10.1.3.3",
                "2001::1",
                "11.0.0.1",
                "192.168.1.1",
            ],
        ),
        case(
            "cidr-continuation",
            "cidr",
            "# comment\n1.2.3.4\n   spread over lines\n\n5.6.7.8   trailing   \n",
            &["1.2.3.4", "5.6.7.8"],
        ),
    ]
}

#[test]
fn pattern_tables_match_postfix() {
    assert!(
        Path::new(POSTMAP).exists(),
        "{POSTMAP} is missing: install Debian's postfix and postfix-pcre"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for c in cases() {
        let file = dir.path().join(c.name);
        fs::write(&file, &c.text).unwrap();
        let spec = format!("{}:{}", c.kind, file.display());
        for key in &c.keys {
            let want = postfix(&spec, key);
            let got = ours(&spec, key);
            checked += 1;
            if want != got {
                failures.push(format!(
                    "{} key {key:?}:\n  postfix: {want:?}\n  ours:    {got:?}",
                    c.name
                ));
            }
        }
    }
    for kind in ["regexp", "pcre", "cidr"] {
        let spec = format!("{kind}:{}/missing", dir.path().display());
        let want = postfix(&spec, "x");
        let got = ours(&spec, "x");
        checked += 1;
        if want != got {
            failures.push(format!("{spec}:\n  postfix: {want:?}\n  ours:    {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} lookups differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
