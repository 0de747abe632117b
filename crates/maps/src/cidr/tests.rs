//! Expectations observed with Debian's `postmap -q KEY cidr:FILE` (Postfix 3.7).

use std::sync::Mutex;

use super::*;

fn table(text: &str) -> (CidrMap, Vec<String>) {
    let seen = Mutex::new(Vec::new());
    let map = CidrMap::parse("/t", text, &|w| seen.lock().unwrap().push(w.to_owned()));
    (map, seen.into_inner().unwrap())
}

const TABLE: &str = "1.2.3.0/24 net\n[10.0.0.0/8] br\n[11.0.0.0]/8 br2\n[12.0.0.1] br3\n::1 v6\n\
    [2001:db8::]/32 v6net\n1.2.3.4/33 x\n1.2.3.5/24 x\n2001:db8::1/32 x\n1.2.3/24 x\n\
    1.2.3.4/ x\n1.2.3.4/a x\n01.2.3.4 x\nbogus x\n5.6.7.8\n[1.2.3.4 x\n[1.2.3.4]x y\n\
    if 9.9.9.0/24 junk\nif\nendif\nendif x\n!7.7.7.7 notseven\n0.0.0.0/0 all\n";

#[test]
fn lookups() {
    let (map, _) = table(TABLE);
    let cases = [
        ("1.2.3.4", Some("net")),
        ("10.1.1.1", Some("br")),
        ("11.1.1.1", Some("br2")),
        ("12.0.0.1", Some("br3")),
        ("::1", Some("v6")),
        ("[::1]", None),
        ("2001:db8::5", Some("v6net")),
        ("2001:DB8::5", Some("v6net")),
        ("7.7.7.7", Some("all")),
        ("8.8.8.8", Some("notseven")),
        ("::ffff:1.2.3.4", None),
        ("1.2.3.04", None),
        ("fe80::1%eth0", None),
        (" 1.2.3.4", None),
        ("foo", None),
    ];
    for (key, want) in cases {
        assert_eq!(map.lookup(key).unwrap().as_deref(), want, "{key:?}");
    }
}

#[test]
fn warnings_like_postfix() {
    let (_, warnings) = table(TABLE);
    let want = [
        "cidr map /t, line 7: bad mask length in \"1.2.3.4/33\": skipping this rule",
        "cidr map /t, line 8: non-null host address bits in \"1.2.3.5/24\", perhaps you should use \"1.2.3.0/24\" instead: skipping this rule",
        "cidr map /t, line 9: non-null host address bits in \"2001:db8::1/32\", perhaps you should use \"2001:db8::/32\" instead: skipping this rule",
        "cidr map /t, line 10: bad network value in \"1.2.3/24\": skipping this rule",
        "cidr map /t, line 11: bad mask value in \"1.2.3.4/\": skipping this rule",
        "cidr map /t, line 12: bad mask value in \"1.2.3.4/a\": skipping this rule",
        "cidr map /t, line 13: bad address pattern: \"01.2.3.4\": skipping this rule",
        "cidr map /t, line 14: bad address pattern: \"bogus\": skipping this rule",
        "cidr map /t, line 15: no lookup result: skipping this rule",
        "cidr map /t, line 16: missing ']' character after \"[1.2.3.4\": skipping this rule",
        "cidr map /t, line 17: garbage after \"[1.2.3.4]\": skipping this rule",
        "cidr map /t, line 18: bad mask value in \"9.9.9.0/24 junk\": skipping this rule",
        "cidr map /t, line 19: no address pattern: skipping this rule",
        "cidr map /t, line 20: ENDIF without IF: skipping this rule",
        "cidr map /t, line 21: garbage after ENDIF: skipping this rule",
    ];
    assert_eq!(warnings, want);
}

#[test]
fn nested_ifs() {
    let text = "if 10.0.0.0/8\nif !10.1.0.0/16\n10.0.0.0/8 ten-not-one\nendif\n\
                10.1.2.0/24 ten-one-two\nendif\nif ::/0\n::/0 any6\nendif\n";
    let (map, warnings) = table(text);
    assert!(warnings.is_empty(), "{warnings:?}");
    let cases = [
        ("10.2.0.1", Some("ten-not-one")),
        ("10.1.2.3", Some("ten-one-two")),
        ("10.1.3.3", None),
        ("2001::1", Some("any6")),
        ("11.0.0.1", None),
    ];
    for (key, want) in cases {
        assert_eq!(map.lookup(key).unwrap().as_deref(), want, "{key:?}");
    }
}
