use super::*;

#[test]
fn wildcards_as_openssl_matches_them() {
    // (reference, certificate name, matches)
    let cases = [
        ("mx.example.com", "mx.example.com", true),
        ("MX.Example.COM", "mx.example.com", true),
        ("mx.example.com", "MX.EXAMPLE.COM", true),
        ("mx.example.com", "*.example.com", true),
        ("a.mx.example.com", "*.example.com", false),
        ("example.com", "*.example.com", false),
        ("mx.example.com", "m*.example.com", false),
        ("mx.example.com", "*x.example.com", false),
        ("mx.com", "*.com", false),
        ("mx.example.com", "*.*.com", false),
        ("mx.example.com", "mx.example.net", false),
        // A leading-dot reference: any name below the domain.
        (".example.com", "mx.example.com", true),
        (".example.com", "a.b.example.com", true),
        (".example.com", "*.example.com", true),
        (".example.com", "example.com", false),
        (".example.com", "mx.badexample.com", false),
        ("", "mx.example.com", false),
    ];
    for (reference, pattern, want) in cases {
        assert_eq!(
            name_matches(reference, pattern),
            want,
            "{reference} vs {pattern}"
        );
    }
}

#[test]
fn strategies_expand() {
    let mut w = Vec::new();
    let m = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let names = reference_names(
        &m(&[
            "nexthop",
            "dot-nexthop",
            "hostname",
            "Mail.Example.NET",
            ".example.org",
            ".",
        ]),
        "example.com",
        "mx1.example.com",
        "mx1.example.com[192.0.2.1]:25",
        &mut w,
    );
    assert_eq!(
        names,
        [
            "example.com",
            ".example.com",
            "mx1.example.com",
            "mail.example.net",
            ".example.org"
        ]
    );
    assert_eq!(
        w,
        ["mx1.example.com[192.0.2.1]:25: ignoring invalid match name: \".\""]
    );
    let mut w = Vec::new();
    assert!(reference_names(&m(&["."]), "a", "b", "n", &mut w).is_empty());
    assert_eq!(
        w.last().map(String::as_str),
        Some("n: could not configure peer name checks")
    );
}

#[test]
fn sans_before_cn() {
    let facts = CertFacts {
        subject_cns: vec!["cn.example.com".to_owned()],
        dns_names: vec!["san.example.com".to_owned()],
        ..CertFacts::default()
    };
    assert_eq!(cert_names(&facts), ["san.example.com"]);
    let facts = CertFacts {
        subject_cns: vec!["cn.example.com".to_owned()],
        ..CertFacts::default()
    };
    assert_eq!(cert_names(&facts), ["cn.example.com"]);
}

#[test]
fn error_texts() {
    let n = "mx.example.com[192.0.2.1]:25";
    let cases = [
        (
            VerifyError::HostnameMismatch,
            "server certificate verification failed for mx.example.com[192.0.2.1]:25: num=62:hostname mismatch",
        ),
        (
            VerifyError::SelfSigned,
            "certificate verification failed for mx.example.com[192.0.2.1]:25: self-signed certificate",
        ),
        (
            VerifyError::UntrustedIssuer("/CN=Test CA".to_owned()),
            "certificate verification failed for mx.example.com[192.0.2.1]:25: untrusted issuer /CN=Test CA",
        ),
        (
            VerifyError::Expired,
            "server certificate verification failed for mx.example.com[192.0.2.1]:25: certificate has expired",
        ),
    ];
    for (e, want) in cases {
        assert_eq!(e.log_text(n), want);
    }
}

#[test]
fn fingerprints_decode() {
    let mut w = Vec::new();
    let good = "AB:".repeat(31) + "CD";
    let list = vec![
        good.clone(),
        good.replace(':', "").to_lowercase(),
        "AB:CD".to_owned(),
    ];
    let fps = decode_fingerprints(&list, &mut w);
    assert_eq!(fps.len(), 2);
    assert_eq!(fps[0], fps[1]);
    assert_eq!(w, ["malformed fingerprint value: AB:CD"]);
}
