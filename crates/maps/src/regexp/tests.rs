//! Expectations observed with Debian's `postmap -q KEY regexp:FILE` (Postfix 3.7).

use std::sync::Mutex;

use super::*;

fn table(text: &str) -> (RegexpMap, Vec<String>) {
    let seen = Mutex::new(Vec::new());
    let map = RegexpMap::parse("/t", text, &|w| seen.lock().unwrap().push(w.to_owned()));
    (map, seen.into_inner().unwrap())
}

#[test]
fn lookups() {
    let text = "/^(a)(b)?c$/\tx$1-$2-$$-${1}y\n/foo/i\tcase-sensitive\n/BAR/\tbar-insensitive\n\
                /a.b/ dot\n/^(x+)$/ [$1]\n!/zzz/ notzzz\n";
    let (map, warnings) = table(text);
    assert!(warnings.is_empty(), "{warnings:?}");
    let cases = [
        ("abc", "xa-b-$-ay"),
        ("ac", "xa--$-ay"),
        ("Foo", "notzzz"),
        ("foo", "case-sensitive"),
        ("bar", "bar-insensitive"),
        ("a\nb", "dot"),
        ("XxX", "[XxX]"),
        ("qqq", "notzzz"),
    ];
    for (key, want) in cases {
        assert_eq!(map.lookup(key).unwrap().as_deref(), Some(want), "{key:?}");
    }
    assert_eq!(map.lookup("zzz").unwrap(), None);
}

#[test]
fn if_endif_and_two_patterns() {
    let text = "if /^a/\nif !/b/\n/./ a-not-b\nendif\n/c/ a-and-c\nendif\n/a/!/d/ a-not-d\n";
    let (map, warnings) = table(text);
    assert!(warnings.is_empty(), "{warnings:?}");
    let cases = [
        ("ax", Some("a-not-b")),
        ("abc", Some("a-and-c")),
        ("xa", Some("a-not-d")),
        ("xad", None),
        ("ab", Some("a-not-d")),
    ];
    for (key, want) in cases {
        assert_eq!(map.lookup(key).unwrap().as_deref(), want, "{key:?}");
    }
}

#[test]
fn glibc_quirks() {
    // Observed with glibc: under the default case-insensitive flag an escaped lower-case
    // letter matches nothing; `x` selects basic syntax; `m` makes `.` stop at newlines.
    let text = "/\\d/ esc-d\n/\\D/ esc-D\n/a+b/x bre-plus\n/^p.q$/m multi\n/[^]x]/ bracket\n";
    let (map, warnings) = table(text);
    assert!(warnings.is_empty(), "{warnings:?}");
    let cases = [
        ("d", Some("esc-D")),
        ("1", Some("bracket")),
        ("a+b", Some("bre-plus")),
        ("p\nq", Some("bracket")),
        ("pzq", Some("multi")),
        ("]", None),
    ];
    for (key, want) in cases {
        assert_eq!(map.lookup(key).unwrap().as_deref(), want, "{key:?}");
    }
}

#[test]
fn warnings_like_postfix() {
    let text = "/a(/ x\n/abc/q y\n/abc\nif /x/ junk\n/(a)/ $2\n/a/ $0\n/a/ $b\n/a/ ${1\n\
                /a/ $\n/(a)/ $1a\n!/(a)/ $1\nendif\nendif extra\nfoo bar\n/nothing/\n  /cont/\n\
                if /q/\n/(?i)x/ perl\n/[z-a]/ range\n/a/ ${1}\n/(b)/ ${{1}}\nIF !/q/\n/e/\n";
    let (_, warnings) = table(text);
    let want = [
        "regexp map /t, line 1: Unmatched ( or \\(",
        "regexp map /t, line 2: unknown regexp option \"q\": skipping this rule",
        "regexp map /t, line 3: no closing regexp delimiter \"/\": skipping this rule",
        "regexp map /t, line 4: ignoring extra text after IF statement: \"junk\"",
        "regexp map /t, line 4: do not prepend whitespace to statements between IF and ENDIF",
        "regexp map /t, line 5: out of range replacement index \"2\": skipping this rule",
        "regexp map /t, line 6: out-of-range replacement index \"0\"",
        "regexp map /t, line 6: bad replacement syntax: skipping this rule",
        "regexp map /t, line 7: non-numeric replacement index \"b\"",
        "regexp map /t, line 7: bad replacement syntax: skipping this rule",
        "truncated macro reference: \"${1\"",
        "regexp map /t, line 8: bad replacement syntax: skipping this rule",
        "empty macro name: \"$\"",
        "regexp map /t, line 9: bad replacement syntax: skipping this rule",
        "regexp map /t, line 10: non-numeric replacement index \"1a\"",
        "regexp map /t, line 10: bad replacement syntax: skipping this rule",
        "regexp map /t, line 11: $number found in negative match replacement text: skipping this rule",
        "regexp map /t, line 13: ignoring ENDIF without matching IF",
        "regexp map /t, line 14: ignoring unrecognized request",
        "regexp map /t, line 18: Invalid preceding regular expression",
        "regexp map /t, line 19: Invalid range end",
        "regexp map /t, line 20: out of range replacement index \"1\": skipping this rule",
        "regexp map /t, line 21: non-numeric replacement index \"{1}\"",
        "regexp map /t, line 21: bad replacement syntax: skipping this rule",
        "regexp map /t, line 23: no replacement text: using empty string",
        "regexp map /t, line 22: IF has no matching ENDIF",
        "regexp map /t, line 17: IF has no matching ENDIF",
    ];
    assert_eq!(warnings, want);
}

#[test]
fn sequence_is_refused() {
    let (map, _) = table("/a/ b\n");
    assert_eq!(
        map.sequence().unwrap_err().to_string(),
        "table regexp:/t: sequence operation is not supported"
    );
}

#[test]
fn missing_file() {
    let err = open("/nonexistent/x", &OpenFlags::default()).unwrap_err();
    assert_eq!(
        err,
        MapError::Config("open /nonexistent/x: No such file or directory".to_owned())
    );
}
