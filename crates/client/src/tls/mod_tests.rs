use super::*;

fn client(level: Level, note: bool, engine: bool) -> (TlsClient, Policy) {
    let settings = Settings {
        level,
        note_starttls_offer: note,
        ca_file: if engine {
            String::new()
        } else {
            "/nonexistent/ca.pem".to_owned()
        },
        ..Settings::default()
    };
    let mut notes = Vec::new();
    let c = TlsClient::new(settings, &mut notes).unwrap();
    assert_eq!(c.engine_available(), engine);
    let mut w = Vec::new();
    let p = c
        .policy(
            Destination {
                dest: "example.com",
                host: "mx.example.com",
                unix_socket: false,
            },
            &mut w,
        )
        .unwrap();
    (c, p)
}

#[test]
fn decisions() {
    let n = "mx.example.com[192.0.2.1]";
    let plain = Decision::Plaintext { note: None };
    // (level, offered, note_starttls_offer, engine up, decision)
    let cases = [
        (Level::None, true, false, true, plain.clone()),
        (
            Level::None,
            true,
            true,
            true,
            Decision::Plaintext {
                note: Some("Host offered STARTTLS: [mx.example.com]".to_owned()),
            },
        ),
        (Level::May, true, true, true, Decision::StartTls),
        (Level::May, false, false, true, plain.clone()),
        (Level::May, true, false, false, plain.clone()),
        (Level::Encrypt, true, false, true, Decision::StartTls),
        (
            Level::Encrypt,
            false,
            false,
            true,
            Decision::Fail {
                dsn: "4.7.4",
                text: "TLS is required, but was not offered by host mx.example.com[192.0.2.1]"
                    .to_owned(),
            },
        ),
        (
            Level::Secure,
            true,
            false,
            false,
            Decision::Fail {
                dsn: "4.7.5",
                text: "TLS is required, but our TLS engine is unavailable".to_owned(),
            },
        ),
    ];
    for (level, offered, note, engine, want) in cases {
        let (c, p) = client(level, note, engine);
        assert_eq!(
            c.decide(&p, offered, "mx.example.com", n),
            want,
            "{level:?} {offered}"
        );
    }
}

#[test]
fn summary_lines() {
    let mut info = TlsInfo {
        level: Level::May,
        status: PeerStatus::Trusted,
        protocol: "TLSv1.3".to_owned(),
        cipher: "TLS_AES_256_GCM_SHA384".to_owned(),
        cipher_bits: 256,
        key_exchange: None,
        server_signature: None,
        server_digest: None,
        client_signature: None,
        client_digest: None,
        peer_cn: String::new(),
        issuer_cn: String::new(),
        sni: None,
        log: Vec::new(),
    };
    let n = "mx.example.com[192.0.2.1]:25";
    assert_eq!(
        info.summary(n),
        "Trusted TLS connection established to mx.example.com[192.0.2.1]:25: TLSv1.3 with \
         cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"
    );
    info.status = PeerStatus::Verified;
    info.key_exchange = Some("X25519".to_owned());
    info.server_signature = Some("RSA-PSS (2048 bits)".to_owned());
    info.server_digest = Some("SHA256".to_owned());
    assert_eq!(
        info.summary(n),
        "Verified TLS connection established to mx.example.com[192.0.2.1]:25: TLSv1.3 with \
         cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature \
         RSA-PSS (2048 bits) server-digest SHA256"
    );
    // A client certificate was asked for and sent (Debian's Postfix 3.7 logs this).
    info.client_signature = Some("ECDSA (prime256v1)".to_owned());
    info.client_digest = Some("SHA256".to_owned());
    assert!(
        info.summary(n).ends_with(
            "server-digest SHA256 client-signature ECDSA (prime256v1) client-digest SHA256"
        ),
        "{}",
        info.summary(n)
    );
    assert_eq!(
        refused("mx[192.0.2.1]", "454 4.7.0 TLS not available"),
        "TLS is required, but host mx[192.0.2.1] refused to start TLS: 454 4.7.0 TLS not available"
    );
}
