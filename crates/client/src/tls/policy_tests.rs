use std::collections::HashMap;

use tern_maps::MapError;

use super::*;

#[derive(Debug)]
struct TestMap(HashMap<String, String>, bool);

impl Map for TestMap {
    fn spec(&self) -> &'static str {
        "test:map"
    }
    fn lookup(&self, key: &str) -> Result<Option<String>, MapError> {
        if self.1 {
            return Err(MapError::Retry("test:map: lookup error".to_owned()));
        }
        Ok(self.0.get(&key.to_ascii_lowercase()).cloned())
    }
}

fn table(entries: &[(&str, &str)]) -> TestMap {
    TestMap(
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        false,
    )
}

fn dest(d: &str) -> Destination<'_> {
    Destination {
        dest: d,
        host: "",
        unix_socket: false,
    }
}

fn run(
    settings: &Settings,
    map: Option<&TestMap>,
    d: &str,
) -> (Result<Policy, PolicyError>, Vec<String>) {
    let mut w = Vec::new();
    let p = lookup(
        settings,
        map.map_or(Table::None, |m| Table::PolicyMaps(m)),
        dest(d),
        &mut w,
    );
    (p, w)
}

const ENTRIES: &[(&str, &str)] = &[
    ("example.com", "secure match=.example.com:example.com"),
    (".example.net", "verify"),
    ("[mx.example.org]:587", "encrypt protocols=>=TLSv1.2"),
    ("plain.example", "none"),
    ("plain2.example", "none protocols=TLSv1.2 ciphers=high"),
    ("bad-level.example", "bogus"),
    ("empty.example", ""),
    ("bad-attr.example", "encrypt foo=bar"),
    ("bad-pair.example", "encrypt protocols"),
    ("dup.example", "encrypt protocols=TLSv1.2 protocols=TLSv1.3"),
    ("match-may.example", "may match=x.example"),
    ("sni.example", "may servername=mail.sni.example"),
    ("bad-sni.example", "may servername=-bad-"),
    ("reuse.example", "may connection_reuse=maybe"),
    ("dane.example", "dane"),
    ("daneonly.example", "dane-only"),
    ("fp.example", "fingerprint match=AB:CD|EF:01"),
    ("fp-none.example", "fingerprint"),
    ("ta-may.example", "may tafile=/etc/x.pem"),
    ("case.example", "Encrypt"),
];

type Case<'a> = (&'a str, Level, &'a str, &'a [&'a str], Option<&'a str>);

#[test]
fn levels_and_attributes() {
    let settings = Settings {
        level: Level::May,
        servername: String::new(),
        ..Settings::default()
    };
    let map = table(ENTRIES);
    // (dest, level, protocols, matches, sni)
    let ok: &[Case<'_>] = &[
        (
            "example.com",
            Level::Secure,
            ">=TLSv1",
            &[".example.com", "example.com"],
            None,
        ),
        // Parent-domain form: ".example.net" matches sub-domains only.
        (
            "mx.example.net",
            Level::Verify,
            ">=TLSv1",
            &["hostname"],
            None,
        ),
        (
            "a.b.example.net",
            Level::Verify,
            ">=TLSv1",
            &["hostname"],
            None,
        ),
        ("example.net", Level::May, ">=TLSv1", &[], None),
        (
            "[mx.example.org]:587",
            Level::Encrypt,
            ">=TLSv1.2",
            &[],
            None,
        ),
        // The bracketed form matches only itself.
        ("mx.example.org", Level::May, ">=TLSv1", &[], None),
        ("[mx.example.org]", Level::May, ">=TLSv1", &[], None),
        ("plain.example", Level::None, "", &[], None),
        ("plain2.example", Level::None, "", &[], None),
        (
            "sni.example",
            Level::May,
            ">=TLSv1",
            &[],
            Some("mail.sni.example"),
        ),
        ("dane.example", Level::May, ">=TLSv1", &[], None),
        ("unlisted.example", Level::May, ">=TLSv1", &[], None),
        (
            "EXAMPLE.COM",
            Level::Secure,
            ">=TLSv1",
            &[".example.com", "example.com"],
            None,
        ),
    ];
    for (d, level, protocols, matches, sni) in ok {
        let (p, _) = run(&settings, Some(&map), d);
        let p = p.unwrap_or_else(|e| panic!("{d}: {e}"));
        assert_eq!(p.level, *level, "{d}");
        assert_eq!(p.protocols, *protocols, "{d}");
        assert_eq!(p.matches, *matches, "{d}");
        assert_eq!(p.sni.as_deref(), *sni, "{d}");
    }
}

#[test]
fn bad_entries_invalidate_with_postfix_warnings() {
    let settings = Settings {
        level: Level::May,
        ..Settings::default()
    };
    let map = table(ENTRIES);
    let w =
        |d: &str, text: &str| format!("smtp_tls_policy_maps, next-hop destination \"{d}\": {text}");
    let cases: &[(&str, String)] = &[
        (
            "bad-level.example",
            w("bad-level.example", "invalid security level \"bogus\""),
        ),
        ("empty.example", w("empty.example", "invalid empty policy")),
        (
            "bad-attr.example",
            w("bad-attr.example", "invalid attribute name: \"foo\""),
        ),
        (
            "bad-pair.example",
            w(
                "bad-pair.example",
                "malformed attribute/value pair \"protocols\": missing '=' after attribute name",
            ),
        ),
        (
            "dup.example",
            w(
                "dup.example",
                "attribute \"protocols\" is specified multiple times",
            ),
        ),
        (
            "match-may.example",
            w(
                "match-may.example",
                "attribute \"match\" invalid at security level \"may\"",
            ),
        ),
        (
            "bad-sni.example",
            w(
                "bad-sni.example",
                "\"servername=-bad-\" specifies an invalid hostname",
            ),
        ),
        (
            "reuse.example",
            w(
                "reuse.example",
                "attribute \"connection_reuse\" has bad value: \"maybe\"",
            ),
        ),
        (
            "ta-may.example",
            w(
                "ta-may.example",
                "attribute \"tafile\" invalid at security level \"may\"",
            ),
        ),
        (
            "daneonly.example",
            "daneonly.example: dane-only configured, but no requisite library support".to_owned(),
        ),
        (
            "fp-none.example",
            "nexthop domain fp-none.example: configured at fingerprint security level, but with \
             no fingerprints to match."
                .to_owned(),
        ),
        (
            "case.example",
            w("case.example", "invalid security level \"Encrypt\""),
        ),
    ];
    for (d, warning) in cases {
        let (p, warnings) = run(&settings, Some(&map), d);
        assert_eq!(p.unwrap_err(), PolicyError::Config, "{d}");
        assert_eq!(warnings.last(), Some(warning), "{d}");
    }
    let (p, warnings) = run(&settings, Some(&map), "plain2.example");
    assert!(p.is_ok());
    assert_eq!(
        warnings,
        [
            w(
                "plain2.example",
                "ignoring attribute \"protocols=TLSv1.2\" with TLS disabled"
            ),
            w(
                "plain2.example",
                "ignoring attribute \"ciphers=high\" with TLS disabled"
            ),
        ]
    );
    let (p, warnings) = run(&settings, Some(&map), "dane.example");
    assert_eq!(p.map(|p| p.level), Ok(Level::May));
    assert_eq!(
        warnings,
        ["dane.example: dane configured, but no requisite library support"]
    );
    let (p, _) = run(&settings, Some(&map), "fp.example");
    assert_eq!(
        p.map(|p| p.fingerprints),
        Ok(vec!["AB:CD".to_owned(), "EF:01".to_owned()])
    );
}

#[test]
fn lookup_error_invalidates() {
    let settings = Settings::default();
    let mut map = table(&[]);
    map.1 = true;
    let (p, warnings) = run(&settings, Some(&map), "example.com");
    assert_eq!(p.unwrap_err(), PolicyError::Config);
    assert_eq!(
        warnings,
        ["smtp_tls_policy_maps, next-hop destination \"example.com\": policy table lookup error"]
    );
}

#[test]
fn global_settings() {
    // (level, protocols, mandatory, servername, want level, want protocols, want sni, matches)
    let secure = Settings {
        level: Level::Secure,
        ..Settings::default()
    };
    let (p, _) = run(&secure, None, "example.com");
    let p = p.unwrap();
    assert_eq!(p.matches, ["nexthop", "dot-nexthop"]);
    let verify = Settings {
        level: Level::Verify,
        mandatory_protocols: ">=TLSv1.2".to_owned(),
        protocols: "TLSv1.3".to_owned(),
        servername: "hostname".to_owned(),
        ..Settings::default()
    };
    let (p, _) = run(&verify, None, "example.com");
    let p = p.unwrap();
    assert_eq!(p.matches, ["hostname"]);
    assert_eq!(p.protocols, ">=TLSv1.2");
    assert_eq!(p.sni.as_deref(), Some("hostname"));
    let may = Settings {
        level: Level::May,
        protocols: "TLSv1.3".to_owned(),
        ..verify.clone()
    };
    assert_eq!(run(&may, None, "x.example").0.unwrap().protocols, "TLSv1.3");
    let bad = Settings {
        servername: "not a name".to_owned(),
        ..may
    };
    let (p, w) = run(&bad, None, "x.example");
    assert_eq!(p.unwrap_err(), PolicyError::Config);
    assert_eq!(
        w,
        ["\"smtp_tls_servername = not a name\" specifies an invalid hostname"]
    );
}

#[test]
fn level_names_and_order() {
    let names = [
        "none",
        "may",
        "encrypt",
        "fingerprint",
        "dane",
        "dane-only",
        "verify",
        "secure",
    ];
    let mut last = None;
    for n in names {
        let l = Level::parse(n).unwrap();
        assert_eq!(l.name(), n);
        assert!(last < Some(l));
        last = Some(l);
    }
    assert_eq!(Level::parse("halfdane"), None);
    assert!(!Level::May.required() && Level::Encrypt.required());
    assert!(!Level::Encrypt.must_match() && Level::Fingerprint.must_match());
    assert!(!Level::DaneOnly.must_pkix() && Level::Verify.must_pkix());
}

#[test]
fn per_site_levels_take_the_level_s_settings() {
    let settings = Settings {
        level: Level::May,
        mandatory_protocols: ">=TLSv1.2".to_owned(),
        ..Settings::default()
    };
    let map = table(&[
        ("must.example", "MUST"),
        ("mx.none.example", "NONE"),
        ("[mx.enc.example]:587", "MUST_NOPEERMATCH"),
    ]);
    // (next hop, host, level, protocols, matches)
    let cases: &[(&str, &str, Level, &str, &[&str])] = &[
        (
            "must.example",
            "mx.must.example",
            Level::Verify,
            ">=TLSv1.2",
            &["hostname"],
        ),
        ("none.example", "mx.none.example", Level::None, "", &[]),
        (
            "[mx.enc.example]:587",
            "mx.enc.example",
            Level::Encrypt,
            ">=TLSv1.2",
            &[],
        ),
        // Parent domains are not searched.
        (
            "sub.must.example",
            "mx.must.example",
            Level::May,
            ">=TLSv1",
            &[],
        ),
    ];
    for (d, h, level, protocols, matches) in cases {
        let mut w = Vec::new();
        let p = lookup(
            &settings,
            Table::PerSite(&map),
            Destination {
                dest: d,
                host: h,
                unix_socket: false,
            },
            &mut w,
        )
        .unwrap();
        assert_eq!((p.level, p.protocols.as_str()), (*level, *protocols), "{d}");
        assert_eq!(p.matches, *matches, "{d}");
        assert!(w.is_empty());
    }
}
