//! The client's STARTTLS handshake against real TLS servers on loopback: a small
//! tokio-rustls server (which records the SNI name it was sent) and OpenSSL's `s_server`
//! (an independent implementation; these tests fail, never skip, without `openssl`).
//! Certificates come from a test CA made with rcgen for each run.

// Test code: a failure is the test's failure; s, c, p, r are settings, client, policy,
// result throughout.
#![allow(clippy::unwrap_used, clippy::many_single_char_names)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tern_client::tls::{
    Destination, FailureKind, Level, LogLevel, Peer, PeerStatus, Policy, Settings, TlsClient,
    TlsFailure, TlsInfo,
};
use tokio::net::{TcpListener, TcpStream};

const STEP: Duration = Duration::from_secs(10);

/// A test CA and the server certificates, written to a temp dir.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Tern Test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        for (name, san) in [("mx", "mx.test.example"), ("wrong", "wrong.test.example")] {
            let mut p = CertificateParams::new(vec![san.to_owned()]).unwrap();
            p.distinguished_name.push(DnType::CommonName, san);
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, &issuer).unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        let mut p = CertificateParams::new(vec!["mx.test.example".to_owned()]).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "mx.test.example");
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("self.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("self.key"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca(&self) -> String {
        self.path("ca.pem").display().to_string()
    }
}

/// A one-connection tokio-rustls server; the handle yields the SNI name it received.
async fn rustls_server(
    pki: &Pki,
    name: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (SocketAddr, tokio::task::JoinHandle<Option<String>>) {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(pki.path(&format!("{name}.pem")))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(pki.path(&format!("{name}.key"))).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let (tcp, _) = tokio::time::timeout(STEP, listener.accept())
            .await
            .ok()?
            .ok()?;
        let tls = tokio::time::timeout(STEP, acceptor.accept(tcp))
            .await
            .ok()?
            .ok()?;
        tls.get_ref().1.server_name().map(str::to_owned)
    });
    (addr, handle)
}

/// `openssl s_server` on a free loopback port, serving until killed on drop.
struct SServer {
    child: Child,
    addr: SocketAddr,
}

impl SServer {
    fn start(pki: &Pki, name: &str, args: &[&str]) -> SServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .args(["s_server", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(pki.path(&format!("{name}.pem")))
            .arg("-key")
            .arg(pki.path(&format!("{name}.key")))
            .arg("-quiet")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server (Debian package openssl) is needed by this test");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..100 {
            // s_server keeps accepting after this probe's failed handshake.
            if std::net::TcpStream::connect(addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        SServer { child, addr }
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn settings(level: Level, ca_file: &str) -> Settings {
    Settings {
        level,
        ca_file: ca_file.to_owned(),
        loglevel: LogLevel {
            summary: true,
            ..LogLevel::default()
        },
        starttls_timeout: STEP,
        ..Settings::default()
    }
}

fn client(s: Settings) -> TlsClient {
    let mut notes = Vec::new();
    let c = TlsClient::new(s, &mut notes).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    c
}

fn policy(c: &TlsClient, dest: &str) -> Policy {
    let mut w = Vec::new();
    let p = c
        .policy(
            Destination {
                dest,
                host: dest,
                unix_socket: false,
            },
            &mut w,
        )
        .unwrap();
    assert!(w.is_empty(), "{w:?}");
    p
}

/// Connects and runs the handshake; the namaddr is `host[127.0.0.1]:port`.
async fn handshake(
    c: &TlsClient,
    p: &Policy,
    addr: SocketAddr,
    nexthop: &str,
    host: &str,
) -> (String, Result<TlsInfo, TlsFailure>) {
    let namaddr = format!("{host}[{}]:{}", addr.ip(), addr.port());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let peer = Peer {
        nexthop,
        host,
        namaddr: &namaddr,
    };
    let r = tokio::time::timeout(STEP * 2, c.starttls(tcp, p, &peer))
        .await
        .expect("starttls is bounded by smtp_starttls_timeout");
    (namaddr, r.map(|(_, info)| info))
}

fn texts(lines: &[tern_client::tls::LogLine]) -> Vec<String> {
    lines.iter().map(|l| l.text.clone()).collect()
}

#[tokio::test]
async fn verify_against_the_ca_is_verified() {
    let pki = Pki::new();
    let (addr, server) = rustls_server(&pki, "mx", &[&rustls::version::TLS13]).await;
    let c = client(settings(Level::Verify, &pki.ca()));
    let p = policy(&c, "test.example");
    let (namaddr, r) = handshake(&c, &p, addr, "test.example", "mx.test.example").await;
    let info = r.unwrap();
    assert_eq!(info.status, PeerStatus::Verified);
    assert_eq!(info.peer_cn, "mx.test.example");
    assert_eq!(info.issuer_cn, "Tern Test CA");
    let summary = info.summary(&namaddr);
    assert!(
        summary.starts_with(&format!(
            "Verified TLS connection established to {namaddr}: TLSv1.3 with cipher TLS_"
        )),
        "{summary}"
    );
    assert!(
        summary.ends_with("server-signature ECDSA (prime256v1) server-digest SHA256"),
        "{summary}"
    );
    assert_eq!(texts(&info.log), [summary]);
    // No SNI without smtp_tls_servername (Postfix's default).
    assert_eq!(server.await.unwrap(), None);
}

#[tokio::test]
async fn wrong_name_fails_at_verify_and_secure() {
    let pki = Pki::new();
    for (level, nexthop) in [
        (Level::Verify, "test.example"),
        (Level::Secure, "mx.test.example"),
    ] {
        let (addr, _server) = rustls_server(&pki, "wrong", &[&rustls::version::TLS13]).await;
        let c = client(settings(level, &pki.ca()));
        let p = policy(&c, nexthop);
        let (namaddr, r) = handshake(&c, &p, addr, nexthop, "mx.test.example").await;
        let f = r.unwrap_err();
        assert_eq!(f.kind, FailureKind::NotVerified, "{level:?}");
        assert_eq!(
            (f.dsn, f.text.as_str()),
            ("4.7.5", "Server certificate not verified")
        );
        assert!(!f.may_retry_plaintext);
        let log = texts(&f.log);
        assert_eq!(
            log[0],
            format!(
                "server certificate verification failed for {namaddr}: num=62:hostname mismatch"
            )
        );
        // OpenSSL's verify result is the name mismatch: not trusted (Debian's 3.7.11).
        assert!(
            log[1].starts_with(&format!(
                "Untrusted TLS connection established to {namaddr}: "
            )),
            "{log:?}"
        );
    }
    // secure's default dot-nexthop accepts any name below the next-hop domain.
    let (addr, _server) = rustls_server(&pki, "wrong", &[&rustls::version::TLS13]).await;
    let c = client(settings(Level::Secure, &pki.ca()));
    let p = policy(&c, "test.example");
    let (_, r) = handshake(&c, &p, addr, "test.example", "mx.test.example").await;
    assert_eq!(r.unwrap().status, PeerStatus::Verified);
}

#[tokio::test]
async fn may_completes_with_an_untrusted_certificate() {
    let pki = Pki::new();
    // (server cert, CAfile, expected status, untrusted-log line)
    let cases = [
        (
            "self",
            pki.ca(),
            PeerStatus::Untrusted,
            "self-signed certificate".to_owned(),
        ),
        (
            "mx",
            String::new(),
            PeerStatus::Untrusted,
            "untrusted issuer /CN=Tern Test CA".to_owned(),
        ),
        ("wrong", pki.ca(), PeerStatus::Trusted, String::new()),
    ];
    for (name, ca, status, why) in cases {
        let (addr, _server) = rustls_server(&pki, name, &[&rustls::version::TLS12]).await;
        let mut s = settings(Level::May, &ca);
        s.loglevel.untrusted = true;
        let c = client(s);
        let p = policy(&c, "test.example");
        let (namaddr, r) = handshake(&c, &p, addr, "test.example", "mx.test.example").await;
        let info = r.unwrap_or_else(|f| panic!("{name}: {f:?}"));
        assert_eq!(info.status, status, "{name}");
        let log = texts(&info.log);
        let summary = format!(
            "{} TLS connection established to {namaddr}: TLSv1.2 with cipher \
             ECDHE-ECDSA-AES256-GCM-SHA384 (256/256 bits)",
            status.word()
        );
        if why.is_empty() {
            assert_eq!(log, [summary], "{name}");
        } else {
            assert_eq!(
                log,
                [
                    format!("certificate verification failed for {namaddr}: {why}"),
                    summary
                ],
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn capath_is_a_hashed_directory() {
    let pki = Pki::new();
    let capath = pki.path("capath");
    std::fs::create_dir(&capath).unwrap();
    std::fs::copy(pki.path("ca.pem"), capath.join("ca.pem")).unwrap();
    // Without the hash links OpenSSL finds nothing, and neither does Tern.
    for (rehash, want) in [(false, PeerStatus::Untrusted), (true, PeerStatus::Verified)] {
        if rehash {
            let st = Command::new("openssl")
                .args(["rehash"])
                .arg(&capath)
                .status()
                .expect("openssl is needed by this test");
            assert!(st.success());
        }
        let (addr, _server) = rustls_server(&pki, "mx", &[&rustls::version::TLS13]).await;
        let mut s = settings(Level::Verify, "");
        s.ca_path = capath.display().to_string();
        let c = client(s);
        let p = policy(&c, "test.example");
        let (_, r) = handshake(&c, &p, addr, "test.example", "mx.test.example").await;
        let status = match r {
            Ok(info) => info.status,
            Err(f) => {
                assert_eq!(f.kind, FailureKind::NotVerified);
                PeerStatus::Untrusted
            }
        };
        assert_eq!(status, want, "rehash={rehash}");
    }
}

#[tokio::test]
async fn tls13_only_against_a_tls12_only_server() {
    let pki = Pki::new();
    for level in [Level::Encrypt, Level::May] {
        let server = SServer::start(&pki, "mx", &["-tls1_2"]);
        let mut s = settings(level, &pki.ca());
        s.protocols = "TLSv1.3".to_owned();
        s.mandatory_protocols = ">=TLSv1.3".to_owned();
        let c = client(s);
        let p = policy(&c, "test.example");
        let (namaddr, r) = handshake(&c, &p, server.addr, "test.example", "mx.test.example").await;
        let f = r.unwrap_err();
        assert_eq!(f.kind, FailureKind::Handshake);
        assert_eq!(
            (f.dsn, f.text.as_str()),
            ("4.7.5", "Cannot start TLS: handshake failure")
        );
        assert_eq!(f.may_retry_plaintext, level == Level::May);
        assert_eq!(f.throttle, level != Level::May);
        assert_eq!(f.log[0].text, format!("SSL_connect error to {namaddr}: -1"));
        assert!(f.log[1].warning && f.log[1].text.starts_with("TLS library problem: "));
    }
    // A list rustls cannot honour at all is refused before the handshake.
    let server = SServer::start(&pki, "mx", &["-tls1_2"]);
    let mut s = settings(Level::Encrypt, &pki.ca());
    s.mandatory_protocols = "TLSv1".to_owned();
    let c = client(s);
    let p = policy(&c, "test.example");
    let (_, r) = handshake(&c, &p, server.addr, "test.example", "mx.test.example").await;
    let f = r.unwrap_err();
    assert_eq!(
        texts(&f.log)[1],
        "TLS library problem: error:0A0000BF:SSL routines::no protocols available"
    );
}

#[tokio::test]
async fn openssl_server_verified_over_tls12() {
    let pki = Pki::new();
    let server = SServer::start(&pki, "mx", &["-tls1_2"]);
    let c = client(settings(Level::Verify, &pki.ca()));
    let p = policy(&c, "test.example");
    let (namaddr, r) = handshake(&c, &p, server.addr, "test.example", "mx.test.example").await;
    let info = r.unwrap();
    assert_eq!(
        info.summary(&namaddr),
        format!(
            "Verified TLS connection established to {namaddr}: TLSv1.2 with cipher \
             ECDHE-ECDSA-AES256-GCM-SHA384 (256/256 bits)"
        )
    );
}

#[tokio::test]
async fn sni_follows_smtp_tls_servername() {
    let pki = Pki::new();
    let cases = [
        ("hostname", Some("mx.test.example")),
        ("nexthop", Some("test.example")),
        ("mail.other.example", Some("mail.other.example")),
        ("", None),
    ];
    for (servername, want) in cases {
        let (addr, server) = rustls_server(&pki, "mx", &[&rustls::version::TLS13]).await;
        let mut s = settings(Level::Encrypt, &pki.ca());
        s.servername = servername.to_owned();
        let c = client(s);
        let p = policy(&c, "test.example");
        let (_, r) = handshake(&c, &p, addr, "test.example", "mx.test.example").await;
        r.unwrap();
        assert_eq!(server.await.unwrap().as_deref(), want, "{servername}");
    }
}

#[tokio::test]
async fn the_policy_table_picks_per_destination() {
    let pki = Pki::new();
    let table = pki.path("tls_policy");
    std::fs::write(
        &table,
        "strict.example secure match=mx.test.example\n\
         .test.example verify\n\
         [mx.test.example]:2525 none\n\
         loose.example may\n",
    )
    .unwrap();
    let mut s = settings(Level::Encrypt, &pki.ca());
    s.policy_maps = format!("texthash:{}", table.display());
    let c = client(s);
    let levels = [
        ("strict.example", Level::Secure),
        ("sub.test.example", Level::Verify),
        ("test.example", Level::Encrypt),
        ("[mx.test.example]:2525", Level::None),
        ("loose.example", Level::May),
        ("other.example", Level::Encrypt),
    ];
    for (dest, want) in levels {
        assert_eq!(policy(&c, dest).level, want, "{dest}");
    }
    // Against the wrong-name server: verify fails, may completes.
    for (dest, ok) in [
        ("sub.test.example", false),
        ("loose.example", true),
        ("strict.example", false),
    ] {
        let (addr, _server) = rustls_server(&pki, "wrong", &[&rustls::version::TLS13]).await;
        let p = policy(&c, dest);
        let (_, r) = handshake(&c, &p, addr, dest, "mx.test.example").await;
        assert_eq!(r.is_ok(), ok, "{dest}");
    }
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let pki = Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let conn = listener.accept().await;
        tokio::time::sleep(STEP).await;
        drop(conn);
    });
    let mut s = settings(Level::May, &pki.ca());
    s.starttls_timeout = Duration::from_secs(1);
    let c = client(s);
    let p = policy(&c, "test.example");
    let (namaddr, r) = handshake(&c, &p, addr, "test.example", "mx.test.example").await;
    let f = r.unwrap_err();
    assert_eq!(f.kind, FailureKind::Handshake);
    assert_eq!(
        texts(&f.log),
        [format!(
            "SSL_connect error to {namaddr}: Connection timed out"
        )]
    );
    hold.abort();
}

#[test]
fn settings_from_main_cf() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.cf"),
        "smtp_tls_security_level = secure\n\
         smtp_tls_loglevel = 1\n\
         smtp_tls_servername = hostname\n\
         smtp_starttls_timeout = 2m\n\
         lmtp_use_tls = yes\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("master.cf"), "").unwrap();
    let config = tern_config::config::Config::load(dir.path()).unwrap();
    let s = Settings::from_config(&config, None, "smtp").unwrap();
    assert_eq!(s.level, Level::Secure);
    assert!(s.loglevel.summary);
    assert_eq!(s.servername, "hostname");
    assert_eq!(s.starttls_timeout, Duration::from_mins(2));
    assert_eq!(s.secure_cert_match, "nexthop, dot-nexthop");
    assert_eq!(s.mandatory_protocols, ">=TLSv1");
    let l = Settings::from_config(&config, None, "lmtp").unwrap();
    assert_eq!(l.level, Level::May);
    assert_eq!(l.param("tls_policy_maps"), "lmtp_tls_policy_maps");
    let _unused: &Path = dir.path();
}
