//! Unit tests of the pure parts: reply patterns, reversed names, reply splitting, DSN
//! fixing, the expansion filter. (The DNS itself: tests/dns_checks.rs.)

use super::rbl::{ReplyPattern, expand_addr, reversed, split_reply};
use super::*;

#[test]
fn reply_patterns() {
    let cases = [
        ("127.0.0.2", "127.0.0.2", true),
        ("127.0.0.2", "127.0.0.3", false),
        ("127.0.0.[2..4]", "127.0.0.4", true),
        ("127.0.0.[2..4]", "127.0.0.5", false),
        ("127.0.[0;1].[2;10..11]", "127.0.1.11", true),
        ("127.0.[0;1].[2;10..11]", "127.0.2.2", false),
    ];
    for (pattern, addr, want) in cases {
        let p = ReplyPattern::parse(pattern).expect(pattern);
        assert_eq!(
            p.matches(addr.parse().expect("addr")),
            want,
            "{pattern} {addr}"
        );
    }
    for bad in [
        "127.0.0",
        "127.0.0.256",
        "127.0.0.[4..2]",
        "127.0.0.[2",
        "1.2.3.4.5",
        "a.b.c.d",
    ] {
        assert!(ReplyPattern::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn reversed_names() {
    assert_eq!(reversed("192.0.2.7".parse().expect("v4")), "7.2.0.192");
    let v6 = reversed("2001:db8::1".parse().expect("v6"));
    assert!(v6.starts_with("1.0.0.0.0.0.0.0."), "{v6}");
    assert!(v6.ends_with(".8.b.d.0.1.0.0.2"), "{v6}");
    assert_eq!(v6.split('.').count(), 32);
}

#[test]
fn replies() {
    let class = "Client host";
    let t = |code: u16, dsn: &str, text: &str| (code, dsn.to_owned(), text.to_owned());
    let cases = [
        (
            "554 Service unavailable; Client host [192.0.2.7] blocked using rbl.test",
            class,
            t(
                554,
                "5.7.1",
                "Service unavailable; Client host [192.0.2.7] blocked using rbl.test",
            ),
        ),
        ("450 4.7.9 Go away", class, t(450, "4.7.9", "Go away")),
        (
            "550 5.1.1 No such",
            "Sender address",
            t(550, "5.1.7", "No such"),
        ),
        (
            "550 5.1.2 No such",
            "Recipient address",
            t(550, "5.1.2", "No such"),
        ),
        ("550 5.1.2 No such", class, t(550, "5.0.0", "No such")),
        ("521 ", class, t(521, "5.7.1", "Service unavailable")),
    ];
    for (text, class, want) in cases {
        let (got, warning) = split_reply(text, class);
        assert_eq!(got, want, "{text}");
        assert_eq!(warning, None);
    }
    let (got, warning) = split_reply("hello", class);
    assert_eq!(got, t(450, "4.7.1", "Service unavailable"));
    assert_eq!(
        warning.as_deref(),
        Some("rbl response code configuration error: hello")
    );
}

#[test]
fn address_names() {
    for (addr, suffix, want) in [
        ("u@example.org", "", Some("u@example.org")),
        ("u@example.org", "_name", Some("u")),
        ("u@example.org", "_domain", Some("example.org")),
        ("<>", "", Some("<>")),
        ("<>", "_name", Some("<>")),
        ("<>", "_domain", Some("")),
        ("", "", Some("")),
        ("u@example.org", "_other", None),
    ] {
        assert_eq!(
            expand_addr(addr, suffix).as_deref(),
            want,
            "{addr} {suffix}"
        );
    }
}

#[test]
fn filters() {
    assert_eq!(unescape("\\t\\40ab\\\\"), b"\t ab\\".to_vec());
    let f = default_filter();
    assert!(f.contains(&b' ') && f.contains(&b'~') && f.contains(&b'\t'));
    assert!(!f.contains(&0x7f) && !f.contains(&b'\n'));
}

#[test]
fn precedence() {
    assert!(rank(Ok(())) > rank(Err(Status::Retry)));
    assert!(rank(Err(Status::Retry)) > rank(Err(Status::Inval)));
    assert!(rank(Err(Status::NullMx)) > rank(Err(Status::NotFound)));
    assert_eq!(lookup_outcome(Status::Fail), HostLookup::NotFound);
    assert_eq!(
        unable(ServerKind::Mx, "example.test", Status::Retry),
        "Unable to look up MX host for example.test: Host not found, try again"
    );
}
