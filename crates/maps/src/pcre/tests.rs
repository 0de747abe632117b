//! Expectations observed with Debian's `postmap -q KEY pcre:FILE` (Postfix 3.7, PCRE2).

use std::sync::{Arc, Mutex};

use super::*;

fn table(text: &str) -> (PcreMap, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let map = PcreMap::parse(
        "/t",
        text,
        Arc::new(move |w: &str| sink.lock().unwrap().push(w.to_owned())),
    );
    (map, seen)
}

#[test]
fn flags_and_groups() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("/^(a)|(b)$/ [$1][$2]", "b", Some("[][b]")),
        ("/^(a)|(b)$/ [$1][$2]", "Ab", Some("[A][]")),
        ("/^(c)(d)?$/ [$1][$2]", "c", Some("[c][]")),
        ("/^B/i cased", "b", None),
        ("/^x.y$/ dot", "x\ny", Some("dot")),
        ("/^p.q$/s nodot", "p\nq", None),
        ("/^m$/m multi", "l\nm", Some("multi")),
        ("/^(a+)(a*)$/U [$1][$2]", "aaa", Some("[a][aa]")),
        ("/b/A anch", "b", Some("anch")),
        ("/b/A anch", "xb", None),
        ("/(x)?y/ [$1]", "y", Some("[]")),
        ("/^u(.)$/ u[$1]", "u\u{e9}", None),
        ("!/z/ notz", "a", Some("notz")),
        ("if /a/\n/b/ ab\nendif\n/./ other", "b", Some("other")),
        ("if !/a/\n/b/ notab\nendif", "b", Some("notab")),
    ];
    for (text, key, want) in cases {
        let (map, warnings) = table(text);
        assert!(warnings.lock().unwrap().is_empty(), "{text}");
        assert_eq!(
            map.lookup(key).unwrap().as_deref(),
            *want,
            "{text} / {key:?}"
        );
    }
}

#[test]
fn warnings_like_postfix() {
    let text = "/a(/ x\n/abc/q y\n/abc\nif /x/ junk\n/(a)/ $2\n/a/ $0\n/a/ $b\n/a/ ${1\n\
                !/(a)/ $1\nendif\nendif extra\nfoo bar\n/nothing/\n/(?<n>a)/X named\n\
                /a/x!y z\n/[z-a]/ r\n/a{2,1}/ r\n/(?P<x/ q\n/\\/ q\nif /zz/\n/x/ inside\n";
    let (_, warnings) = table(text);
    let want = [
        "pcre map /t, line 1: error in regex at offset 2: missing closing parenthesis",
        "pcre map /t, line 2: unknown regexp option \"q\": skipping this rule",
        "pcre map /t, line 3: no closing regexp delimiter \"/\": ignoring this rule",
        "pcre map /t, line 4: ignoring extra text after IF statement: \"junk\"",
        "pcre map /t, line 4: do not prepend whitespace to statements between IF and ENDIF",
        "pcre map /t, line 5: out of range replacement index \"2\": skipping this rule",
        "pcre map /t, line 6: out of range replacement index \"0\"",
        "pcre map /t, line 6: bad replacement syntax: skipping this rule",
        "pcre map /t, line 7: non-numeric replacement index \"b\"",
        "pcre map /t, line 7: bad replacement syntax: skipping this rule",
        "truncated macro reference: \"${1\"",
        "pcre map /t, line 8: bad replacement syntax: skipping this rule",
        "pcre map /t, line 9: $number found in negative match replacement text: skipping this rule",
        "pcre map /t, line 11: ignoring ENDIF without matching IF",
        "pcre map /t, line 12: ignoring unrecognized request",
        "pcre map /t, line 13: no replacement text: using empty string",
        "pcre map /t, line 14: ignoring obsolete regexp option \"X\"",
        "pcre map /t, line 15: unknown regexp option \"!\": skipping this rule",
        "pcre map /t, line 16: error in regex at offset 3: range out of order in character class",
        "pcre map /t, line 17: error in regex at offset 5: numbers out of order in {} quantifier",
        "pcre map /t, line 18: error in regex at offset 5: syntax error in subpattern name (missing terminator?)",
        "pcre map /t, line 19: no closing regexp delimiter \"/\": ignoring this rule",
        "pcre map /t, line 20: IF has no matching ENDIF",
    ];
    assert_eq!(*warnings.lock().unwrap(), want);
}

#[test]
fn ungreedy_offsets_are_the_pattern_s() {
    let (_, warnings) = table("/a(/U x\n");
    assert_eq!(
        *warnings.lock().unwrap(),
        ["pcre map /t, line 1: error in regex at offset 2: missing closing parenthesis"]
    );
}
