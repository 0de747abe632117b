//! The session's STARTTLS step and kept connections, against a small tokio SMTP server
//! that upgrades to TLS with tokio-rustls (a test CA made with rcgen): `may` with
//! STARTTLS offered goes over TLS and sends EHLO again; `encrypt` without STARTTLS, or
//! with STARTTLS refused, defers; a `may` handshake failure defers, or leaves the
//! recipients for a plaintext retry when the caller allows it; a kept connection ends
//! without QUIT, passes the RSET probe and carries a second message.

// Test code: a failure is the test's failure.
#![allow(clippy::unwrap_used)]

mod session_common;

use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, DnType, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tern_client::session::{
    Attempt, Options, Outcome, Peer, Protocol, SessionResult, Start, Tls, connect_tcp, run,
};
use tern_client::tls::{self, Level, LogLevel, TlsClient};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use session_common::{message, settings};

const STEP: Duration = Duration::from_secs(10);

/// What the server does with STARTTLS.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// STARTTLS not offered.
    NoOffer,
    /// Offered, answered 454.
    Refuse,
    /// Offered, answered 220, then garbage instead of a handshake.
    Garbage,
    /// Offered and done.
    Accept,
}

/// One connection: the commands the server read, `[TLS]` marking the switch.
async fn server(mode: Mode) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = acceptor();
    let handle = tokio::spawn(async move {
        let mut seen = Vec::new();
        let (tcp, _) = tokio::time::timeout(STEP, listener.accept())
            .await
            .unwrap()
            .unwrap();
        let mut tcp = tcp;
        tcp.write_all(b"220 tls.example ESMTP\r\n").await.unwrap();
        let upgrade = converse(&mut tcp, mode, false, &mut seen).await;
        if upgrade {
            let tls = tokio::time::timeout(STEP, acceptor.accept(tcp))
                .await
                .unwrap()
                .unwrap();
            seen.push("[TLS]".to_owned());
            let mut tls = tls;
            converse(&mut tls, mode, true, &mut seen).await;
        }
        seen
    });
    (port, handle)
}

/// Serves commands until QUIT, end of input or an accepted STARTTLS (true).
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    mode: Mode,
    in_tls: bool,
    seen: &mut Vec<String>,
) -> bool {
    let mut r = BufReader::new(io);
    for _ in 0..100 {
        let mut line = String::new();
        match tokio::time::timeout(STEP, r.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return false,
        }
        let cmd = line.trim_end().to_owned();
        seen.push(cmd.clone());
        let verb = cmd
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if mode == Mode::NoOffer || in_tls => b"250-tls.example\r\n250 8BITMIME\r\n",
            "EHLO" => b"250-tls.example\r\n250-8BITMIME\r\n250 STARTTLS\r\n",
            "STARTTLS" if mode == Mode::Refuse => b"454 4.7.0 TLS not available\r\n",
            "STARTTLS" if mode == Mode::Garbage => {
                r.get_mut().write_all(b"220 2.0.0 go\r\n").await.unwrap();
                let _ = r.get_mut().write_all(b"this is not TLS\r\n\r\n").await;
                return false;
            }
            "STARTTLS" => {
                r.get_mut()
                    .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                    .await
                    .unwrap();
                return true;
            }
            "DATA" => {
                r.get_mut().write_all(b"354 go\r\n").await.unwrap();
                for _ in 0..10_000 {
                    let mut l = String::new();
                    if r.read_line(&mut l).await.unwrap_or(0) == 0 || l == ".\r\n" {
                        break;
                    }
                }
                b"250 2.0.0 Ok: queued\r\n"
            }
            "QUIT" => {
                let _ = r.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
                return false;
            }
            _ => b"250 2.0.0 Ok\r\n",
        };
        if r.get_mut().write_all(reply).await.is_err() {
            return false;
        }
    }
    false
}

fn acceptor() -> tokio_rustls::TlsAcceptor {
    let mut p = CertificateParams::new(vec!["tls.example".to_owned()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "tls.example");
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    let certs = vec![CertificateDer::from(cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

fn tls_client(level: Level) -> TlsClient {
    let s = tls::Settings {
        level,
        loglevel: LogLevel {
            summary: true,
            ..LogLevel::default()
        },
        starttls_timeout: STEP,
        ..tls::Settings::default()
    };
    let mut notes = Vec::new();
    TlsClient::new(s, &mut notes).unwrap()
}

/// One session with STARTTLS at `level`; returns the result and the server's commands.
async fn session(mode: Mode, level: Level, fallback_ok: bool) -> (SessionResult, Vec<String>) {
    let (port, srv) = server(mode).await;
    let client = tls_client(level);
    let mut w = Vec::new();
    let dest = tls::Destination {
        dest: "tls.example",
        host: "tls.example",
        unix_socket: false,
    };
    let policy = client.policy(dest, &mut w).unwrap();
    let (tcp, peer) = connect_tcp("tls.example", ([127, 0, 0, 1], port).into(), Some(STEP))
        .await
        .unwrap();
    let opts = Options {
        keep: false,
        tls: Some(Tls {
            client: &client,
            policy: &policy,
            nexthop: "tls.example",
            plaintext_fallback_ok: fallback_ok,
        }),
        sasl: None,
    };
    let msg = message(&["a@example.com"]);
    let attempt = Attempt {
        final_server: true,
        loop_check: None,
    };
    let s = settings(Protocol::Smtp);
    let (r, kept) = run(
        Start::Fresh(Box::new(tcp)),
        &s,
        &peer,
        &msg,
        &attempt,
        &opts,
    )
    .await;
    assert!(kept.is_none());
    (r, srv.await.unwrap())
}

fn only(r: &SessionResult) -> (&'static str, String, String) {
    let o = &r.recipients[0].outcome;
    let kind = match o {
        Outcome::Sent { .. } => "sent",
        Outcome::Deferred(_) => "deferred",
        Outcome::Bounced(_) => "bounced",
        Outcome::Kept(_) => "kept",
    };
    (kind, o.status().dsn.clone(), o.status().text.clone())
}

#[tokio::test]
async fn may_goes_over_tls_and_says_ehlo_again() {
    let (r, seen) = session(Mode::Accept, Level::May, false).await;
    assert_eq!(only(&r).0, "sent", "{r:?}");
    let tls_at = seen.iter().position(|l| l == "[TLS]").expect("TLS");
    assert_eq!(seen[tls_at - 1], "STARTTLS");
    assert!(seen[tls_at + 1].starts_with("EHLO "), "{seen:?}");
    assert!(seen[tls_at + 2].starts_with("MAIL FROM:"), "{seen:?}");
    // The EHLO after TLS did not offer STARTTLS again, and the summary was logged.
    assert!(!r.features.starttls);
    assert!(
        r.tls_log.iter().any(|l| l
            .text
            .starts_with("Untrusted TLS connection established to tls.example[127.0.0.1]:")),
        "{:?}",
        r.tls_log
    );
}

#[tokio::test]
async fn encrypt_without_starttls_defers() {
    let (r, seen) = session(Mode::NoOffer, Level::Encrypt, false).await;
    let (kind, dsn, text) = only(&r);
    assert_eq!((kind, dsn.as_str()), ("deferred", "4.7.4"));
    assert!(
        text.starts_with("TLS is required, but was not offered by host tls.example[127.0.0.1]"),
        "{text}"
    );
    assert!(!seen.iter().any(|l| l.starts_with("MAIL")), "{seen:?}");
    assert!(r.throttle);
}

#[tokio::test]
async fn encrypt_with_starttls_refused_defers() {
    let (r, _) = session(Mode::Refuse, Level::Encrypt, false).await;
    let (kind, dsn, text) = only(&r);
    assert_eq!((kind, dsn.as_str()), ("deferred", "4.7.0"));
    assert_eq!(
        text,
        "TLS is required, but host tls.example[127.0.0.1] refused to start TLS: \
         454 4.7.0 TLS not available"
    );
    // At `may` a refusal goes on in plaintext.
    let (r, seen) = session(Mode::Refuse, Level::May, false).await;
    assert_eq!(only(&r).0, "sent", "{seen:?}");
}

#[tokio::test]
async fn may_handshake_failure_defers_or_retries_in_plaintext() {
    let (r, _) = session(Mode::Garbage, Level::May, false).await;
    let (kind, dsn, text) = only(&r);
    assert_eq!(
        (kind, dsn.as_str(), text.as_str()),
        ("deferred", "4.7.5", "Cannot start TLS: handshake failure")
    );
    assert!(!r.retry_plaintext && !r.throttle);
    let (r, _) = session(Mode::Garbage, Level::May, true).await;
    assert_eq!(only(&r).0, "kept");
    assert!(r.retry_plaintext);
}

#[tokio::test]
async fn kept_connection_carries_a_second_message() {
    let (port, srv) = server(Mode::NoOffer).await;
    let (tcp, peer): (_, Peer) =
        connect_tcp("tls.example", ([127, 0, 0, 1], port).into(), Some(STEP))
            .await
            .unwrap();
    let s = settings(Protocol::Smtp);
    let attempt = Attempt {
        final_server: true,
        loop_check: None,
    };
    let keep = Options {
        keep: true,
        tls: None,
        sasl: None,
    };
    let msg = message(&["a@example.com"]);
    let (r, kept) = run(
        Start::Fresh(Box::new(tcp)),
        &s,
        &peer,
        &msg,
        &attempt,
        &keep,
    )
    .await;
    assert_eq!(only(&r).0, "sent");
    let mut conn = kept.expect("kept");
    assert!(conn.probe(&s).await, "RSET probe");
    conn.reuse_count += 1;
    let msg = message(&["b@example.com"]);
    let (r, kept) = run(
        Start::Cached(conn),
        &s,
        &peer,
        &msg,
        &attempt,
        &Options::default(),
    )
    .await;
    assert_eq!(only(&r).0, "sent");
    assert!(kept.is_none());
    let seen = srv.await.unwrap();
    let verbs: Vec<&str> = seen
        .iter()
        .map(|l| l.split([' ', ':']).next().unwrap_or_default())
        .collect();
    assert_eq!(
        verbs,
        [
            "EHLO", "MAIL", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA", "QUIT"
        ],
        "{seen:?}"
    );
}
