//! The STARTTLS handshake itself (tls_client.c, tls_client_start() and
//! tls_client_post_connect(); smtp_proto.c, smtp_start_tls()): a rustls client over any
//! tokio stream, bounded by smtp_starttls_timeout, the peer classified, and Postfix's
//! result texts.
//!
//! # Security
//! The server's bytes are untrusted; rustls parses them. The verifier never accepts a bad
//! handshake signature; a certificate that fails the level's check ends the session with
//! "Server certificate not verified" after the handshake, as Postfix does.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, NamedGroup, ProtocolVersion, RootCertStore, SignatureScheme};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::cert::KeyKind;
use super::certkey::{ClientCerts, Presenter};
use super::policy::{Level, Policy};
use super::protocols::{self, ProtocolError};
use super::settings::Settings;
use super::verify::{self, PostfixVerifier, Verdict};
use super::{FailureKind, LogLine, Peer, PeerStatus, TlsFailure, TlsInfo};

/// Runs the handshake on `stream` (just after the server's `220` to STARTTLS).
pub(crate) async fn run<S>(
    settings: &Settings,
    provider: &Arc<CryptoProvider>,
    roots: &Arc<RootCertStore>,
    certs: Option<&Arc<ClientCerts>>,
    stream: S,
    policy: &Policy,
    peer: &Peer<'_>,
) -> Result<(TlsStream<S>, TlsInfo), TlsFailure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let namaddr = peer.namaddr;
    let mut log = Vec::new();
    let fail = |log: Vec<LogLine>| handshake_failure(policy.level, log);

    // tls_client_start(): the protocol list is checked before anything is sent.
    let versions = match protocols::parse(&policy.protocols) {
        Ok(p) => p.versions(),
        Err(ProtocolError::Invalid(list)) => {
            log.push(LogLine::warning(format!(
                "{namaddr}: Invalid TLS protocol list \"{list}\": aborting TLS session"
            )));
            return Err(fail(log));
        }
        Err(ProtocolError::NoneAvailable(_)) => {
            log.push(LogLine::info(format!("SSL_connect error to {namaddr}: -1")));
            log.push(LogLine::warning(
                "TLS library problem: error:0A0000BF:SSL routines::no protocols available"
                    .to_owned(),
            ));
            return Err(fail(log));
        }
    };

    let mut warnings = Vec::new();
    let references = if matches!(policy.level, Level::Verify | Level::Secure) {
        verify::reference_names(
            &policy.matches,
            peer.nexthop,
            peer.host,
            namaddr,
            &mut warnings,
        )
    } else {
        Vec::new()
    };
    let fingerprints = verify::decode_fingerprints(&policy.fingerprints, &mut warnings);
    log.extend(warnings.into_iter().map(LogLine::warning));

    let verdict = Arc::new(Mutex::new(Verdict::default()));
    let verifier = PostfixVerifier {
        level: policy.level,
        roots: policy
            .trust_anchors
            .clone()
            .unwrap_or_else(|| roots.clone()),
        references,
        fingerprints,
        provider: provider.clone(),
        verdict: verdict.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions);
    let Ok(config) = config else {
        log.push(LogLine::warning(
            "TLS library problem: no protocols available".to_owned(),
        ));
        return Err(fail(log));
    };
    let config = config
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    // tls_client.c: the client certificate is offered in every session; the server
    // decides whether to ask for it.
    let presenter = certs.map(|c| {
        Arc::new(Presenter {
            certs: c.clone(),
            used: Mutex::new(None),
        })
    });
    let mut config = match &presenter {
        Some(p) => config.with_client_cert_resolver(p.clone()),
        None => config.with_no_client_auth(),
    };

    // tls_auth_enable(): servername=hostname sends the MX name, nexthop the next-hop
    // domain, anything else as written; no setting, no SNI.
    let sni = policy.sni.as_deref().map(|s| match s {
        "hostname" => peer.host,
        "nexthop" => peer.nexthop,
        other => other,
    });
    config.enable_sni = sni.is_some();
    // Without SNI the name is not sent, and the verifier ignores it.
    let mut server_name = ServerName::IpAddress(Ipv4Addr::UNSPECIFIED.into());
    if let Some(name) = sni {
        // TLSEXT_MAXLEN_host_name.
        match ServerName::try_from(name.to_owned()) {
            Ok(n) if name.len() <= 255 => server_name = n,
            _ => {
                let shown: String = name.chars().take(100).collect();
                log.push(LogLine::warning(format!(
                    "{namaddr}: ignoring too long SNI hostname: {shown}"
                )));
                return Err(fail(log));
            }
        }
    }

    let connector = TlsConnector::from(Arc::new(config));
    let tls = match tokio::time::timeout(
        settings.starttls_timeout,
        connector.connect(server_name, stream),
    )
    .await
    {
        Err(_) => {
            log.push(LogLine::info(format!(
                "SSL_connect error to {namaddr}: Connection timed out"
            )));
            return Err(fail(log));
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            log.push(LogLine::info(format!(
                "SSL_connect error to {namaddr}: lost connection"
            )));
            return Err(fail(log));
        }
        Ok(Err(e)) => {
            log.push(LogLine::info(format!("SSL_connect error to {namaddr}: -1")));
            log.push(LogLine::warning(format!("TLS library problem: {e}")));
            return Err(fail(log));
        }
        Ok(Ok(tls)) => tls,
    };

    let verdict = verdict.lock().map(|v| v.clone()).unwrap_or_default();
    let (_, conn) = tls.get_ref();
    let used = presenter
        .as_ref()
        .and_then(|p| p.used.lock().ok().and_then(|u| u.clone()));
    let info = describe(policy.level, sni, &verdict, used.as_ref(), conn);

    // verify_extract_name(): verification problems are logged at the levels that must
    // match, and at any level with smtp_tls_loglevel "untrusted".
    if !verdict.matched
        && (policy.level.must_match() || settings.loglevel.untrusted)
        && let Some(err) = &verdict.error
    {
        log.push(LogLine::info(err.log_text(namaddr)));
    }
    if settings.loglevel.verbose
        && let Some(f) = &verdict.facts
    {
        log.push(LogLine::info(format!(
            "{namaddr}: subject_CN={}, issuer_CN={}",
            f.subject_cns.first().map_or("", String::as_str),
            f.issuer_cn
        )));
    }
    if settings.loglevel.summary {
        log.push(LogLine::info(info.summary(namaddr)));
    }

    // smtp_start_tls(): "Levels above encrypt require matching."
    if policy.level.must_match() && !verdict.matched {
        return Err(TlsFailure {
            kind: FailureKind::NotVerified,
            dsn: "4.7.5",
            text: "Server certificate not verified".to_owned(),
            may_retry_plaintext: false,
            throttle: true,
            log,
        });
    }
    let mut info = info;
    info.log = log;
    Ok((tls, info))
}

/// smtp_start_tls() when tls_client_start() returns no context.
fn handshake_failure(level: Level, log: Vec<LogLine>) -> TlsFailure {
    TlsFailure {
        kind: FailureKind::Handshake,
        dsn: "4.7.5",
        text: "Cannot start TLS: handshake failure".to_owned(),
        // PLAINTEXT_FALLBACK_OK_AFTER_STARTTLS_FAILURE: level may (the caller adds the
        // queue-age, trace-only and SASL conditions).
        may_retry_plaintext: level == Level::May,
        // "If TLS is opportunistic, don't throttle the destination".
        throttle: level != Level::May,
        log,
    }
}

/// The facts for the summary line (tls_misc.c, tls_log_summary()).
fn describe(
    level: Level,
    sni: Option<&str>,
    verdict: &Verdict,
    client: Option<&(KeyKind, SignatureScheme)>,
    conn: &rustls::ClientConnection,
) -> TlsInfo {
    let status = if !verdict.present {
        PeerStatus::Anonymous
    } else if verdict.matched {
        PeerStatus::Verified
    } else if verdict.trusted {
        PeerStatus::Trusted
    } else {
        PeerStatus::Untrusted
    };
    let protocol = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "unknown",
    };
    let suite = conn.negotiated_cipher_suite().map(|s| s.suite());
    let (cipher, bits) = suite.map_or(("unknown".to_owned(), 0), openssl_cipher);
    let mut info = TlsInfo {
        level,
        status,
        protocol: protocol.to_owned(),
        cipher,
        cipher_bits: bits,
        key_exchange: None,
        server_signature: None,
        server_digest: None,
        client_signature: None,
        client_digest: None,
        peer_cn: String::new(),
        issuer_cn: String::new(),
        sni: sni.map(str::to_owned),
        log: Vec::new(),
    };
    if let Some(f) = &verdict.facts {
        info.peer_cn = f.subject_cns.first().cloned().unwrap_or_default();
        info.issuer_cn.clone_from(&f.issuer_cn);
    }
    // tls_get_signature_params(): TLS 1.3 only.
    if protocol == "TLSv1.3" {
        info.key_exchange = conn
            .negotiated_key_exchange_group()
            .map(|g| group_name(g.name()));
        info.server_signature = verdict.facts.as_ref().and_then(|f| signature_name(&f.key));
        info.server_digest = verdict
            .tls13_scheme
            .and_then(digest_name)
            .map(str::to_owned);
        if let Some((kind, scheme)) = client {
            info.client_signature = signature_name(kind);
            info.client_digest = digest_name(*scheme).map(str::to_owned);
        }
    }
    info
}

/// A TLS 1.3 signer's key as Postfix names it (RSA keys sign with PSS in TLS 1.3).
pub fn signature_name(key: &KeyKind) -> Option<String> {
    match key {
        KeyKind::Rsa(bits) => Some(format!("RSA-PSS ({bits} bits)")),
        KeyKind::Ec(curve) => Some(format!("ECDSA ({curve})")),
        KeyKind::Ed25519 => Some("ED25519".to_owned()),
        KeyKind::Ed448 => Some("ED448".to_owned()),
        KeyKind::Unknown => None,
    }
}

/// OpenSSL's name for a cipher suite, and its bits (SSL_CIPHER_get_bits()).
pub fn openssl_cipher(suite: CipherSuite) -> (String, u32) {
    let (name, bits) = match suite {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => ("TLS_AES_128_GCM_SHA256", 128),
        CipherSuite::TLS13_AES_256_GCM_SHA384 => ("TLS_AES_256_GCM_SHA384", 256),
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => ("TLS_CHACHA20_POLY1305_SHA256", 256),
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => {
            ("ECDHE-ECDSA-AES128-GCM-SHA256", 128)
        }
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => {
            ("ECDHE-ECDSA-AES256-GCM-SHA384", 256)
        }
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            ("ECDHE-ECDSA-CHACHA20-POLY1305", 256)
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => ("ECDHE-RSA-AES128-GCM-SHA256", 128),
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => ("ECDHE-RSA-AES256-GCM-SHA384", 256),
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
            ("ECDHE-RSA-CHACHA20-POLY1305", 256)
        }
        other => return (format!("{other:?}"), 0),
    };
    (name.to_owned(), bits)
}

/// The key exchange as Postfix prints it: X25519/X448 by name, EC curves as `ECDHE
/// (curve)`.
pub fn group_name(group: NamedGroup) -> String {
    match group {
        NamedGroup::X25519 => "X25519".to_owned(),
        NamedGroup::X448 => "X448".to_owned(),
        NamedGroup::secp256r1 => "ECDHE (prime256v1)".to_owned(),
        NamedGroup::secp384r1 => "ECDHE (secp384r1)".to_owned(),
        NamedGroup::secp521r1 => "ECDHE (secp521r1)".to_owned(),
        NamedGroup::X25519MLKEM768 => "X25519MLKEM768".to_owned(),
        other => format!("{other:?}"),
    }
}

/// The digest of a TLS 1.3 signature scheme (none for EdDSA).
pub fn digest_name(scheme: SignatureScheme) -> Option<&'static str> {
    Some(match scheme {
        SignatureScheme::RSA_PSS_SHA256
        | SignatureScheme::ECDSA_NISTP256_SHA256
        | SignatureScheme::RSA_PKCS1_SHA256 => "SHA256",
        SignatureScheme::RSA_PSS_SHA384
        | SignatureScheme::ECDSA_NISTP384_SHA384
        | SignatureScheme::RSA_PKCS1_SHA384 => "SHA384",
        SignatureScheme::RSA_PSS_SHA512
        | SignatureScheme::ECDSA_NISTP521_SHA512
        | SignatureScheme::RSA_PKCS1_SHA512 => "SHA512",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_names() {
        let cases = [
            (
                CipherSuite::TLS13_AES_256_GCM_SHA384,
                "TLS_AES_256_GCM_SHA384",
                256,
            ),
            (
                CipherSuite::TLS13_AES_128_GCM_SHA256,
                "TLS_AES_128_GCM_SHA256",
                128,
            ),
            (
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                "ECDHE-RSA-AES256-GCM-SHA384",
                256,
            ),
        ];
        for (suite, name, bits) in cases {
            assert_eq!(openssl_cipher(suite), (name.to_owned(), bits));
        }
    }

    #[test]
    fn groups_and_digests() {
        assert_eq!(group_name(NamedGroup::X25519), "X25519");
        assert_eq!(group_name(NamedGroup::secp256r1), "ECDHE (prime256v1)");
        assert_eq!(digest_name(SignatureScheme::RSA_PSS_SHA256), Some("SHA256"));
        assert_eq!(digest_name(SignatureScheme::ED25519), None);
    }

    #[test]
    fn failure_rules() {
        let may = handshake_failure(Level::May, Vec::new());
        assert!(may.may_retry_plaintext && !may.throttle);
        assert_eq!(may.text, "Cannot start TLS: handshake failure");
        let enc = handshake_failure(Level::Encrypt, Vec::new());
        assert!(!enc.may_retry_plaintext && enc.throttle);
    }
}
