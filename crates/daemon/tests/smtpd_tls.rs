//! smtpd's TLS against a real Tern daemon and real clients (openssl s_client, swaks, a
//! rustls client for the injection test), with a test CA made for the run
//! (tern_testkit::tlscerts). STARTTLS at TLS 1.2 and 1.3, wrapper mode on a second
//! listener, `encrypt`'s 530, plaintext pipelined behind STARTTLS discarded, the log
//! line, the Received: clause, client certificates with relay_clientcerts, and a reload
//! that picks up a new certificate.
//!
//! Needs openssl and swaks (Debian packages); fails without them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tern_testkit::tern::{Tern, free_port};
use tern_testkit::tlscerts::TestCa;

fn tls_main(ca: &TestCa, leaf: &tern_testkit::tlscerts::Leaf, extra: &str) -> String {
    format!(
        "smtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\nsmtpd_tls_CAfile = {}\n\
         smtpd_tls_loglevel = 1\nsmtpd_tls_received_header = yes\n{extra}",
        leaf.cert.display(),
        leaf.key.display(),
        ca.ca_file().display()
    )
}

/// openssl s_client with `input` on stdin; returns stdout and stderr.
fn s_client(args: &[&str], input: &str) -> String {
    let mut child = Command::new("timeout")
        .arg("20")
        .arg("openssl")
        .arg("s_client")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client (Debian package openssl)");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        for line in input.lines() {
            // One command at a time: s_client is not a pipelining client.
            std::thread::sleep(Duration::from_millis(300));
            if stdin.write_all(format!("{line}\n").as_bytes()).is_err() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    });
    let out = child.wait_with_output().expect("s_client output");
    let _ = writer.join();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn swaks(args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("30")
        .arg("swaks")
        .args(args)
        .output()
        .expect("swaks (Debian package swaks)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const DIALOG: &str = "EHLO client.example\nMAIL FROM:<a@example.org>\nRCPT TO:<root@localhost>\nDATA\nSubject: tls\n\nhello\n.\nQUIT\n";

#[test]
fn starttls_tls12_and_tls13_deliver_and_log() {
    let ca = TestCa::new().expect("test CA (openssl)");
    let leaf = ca.leaf("mx.example.test").expect("leaf");
    let t = Tern::start(&tls_main(&ca, &leaf, "smtpd_tls_security_level = may\n")).expect("tern");
    let addr = format!("127.0.0.1:{}", t.port);
    for (flag, proto) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let out = s_client(
            &[
                "-starttls",
                "smtp",
                "-connect",
                &addr,
                "-crlf",
                "-ign_eof",
                flag,
            ],
            DIALOG,
        );
        assert!(out.contains("250 2.0.0 Ok: queued as"), "{flag}: {out}");
        let log = tern_testkit::support::wait_for(
            || t.log(),
            &format!(
                "Anonymous TLS connection established from localhost[127.0.0.1]: {proto} with cipher"
            ),
            1,
        );
        assert!(log.contains(proto), "{log}");
    }
    let log = t.log();
    assert!(log.contains("starttls=1"), "{log}");
    // The Received: clause, in the queue file or the mailbox the message reached.
    let found = (0..100).find_map(|_| {
        let hit = grep_tree(t.dir.path(), "(using TLSv1.3 with cipher ");
        if hit.is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        hit
    });
    let text = found.expect("a Received: header with the TLS clause");
    assert!(text.contains("with ESMTPS id"), "{text}");
    assert!(text.contains("(No client certificate requested)"), "{text}");
}

/// The first file under `dir` that contains `needle`, returned whole (bounded walk).
fn grep_tree(dir: &std::path::Path, needle: &str) -> Option<String> {
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        seen += 1;
        if seen > 10_000 {
            break;
        }
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                let text = String::from_utf8_lossy(&bytes);
                if text.contains(needle) {
                    return Some(text.into_owned());
                }
            }
        }
    }
    None
}

fn read_reply(s: &mut TcpStream) -> String {
    let mut r = std::io::BufReader::new(s.try_clone().expect("clone"));
    tern_testkit::smtp::read_reply(&mut r).expect("reply")
}

#[test]
fn encrypt_level_refuses_mail_before_starttls() {
    let ca = TestCa::new().expect("test CA");
    let leaf = ca.leaf("mx.example.test").expect("leaf");
    let t = Tern::start(&tls_main(
        &ca,
        &leaf,
        "smtpd_tls_security_level = encrypt\n",
    ))
    .expect("tern");
    let mut s = TcpStream::connect(("127.0.0.1", t.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    read_reply(&mut s);
    s.write_all(b"EHLO c\r\n").unwrap();
    let ehlo = read_reply(&mut s);
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    for cmd in ["MAIL FROM:<a@example.org>\r\n", "AUTH PLAIN AGFAYg==\r\n"] {
        s.write_all(cmd.as_bytes()).unwrap();
        assert_eq!(
            read_reply(&mut s).trim_end(),
            "530 5.7.0 Must issue a STARTTLS command first",
            "{cmd}"
        );
    }
}

#[test]
fn plaintext_pipelined_behind_starttls_is_discarded() {
    let ca = TestCa::new().expect("test CA");
    let leaf = ca.leaf("mx.example.test").expect("leaf");
    let tern =
        Tern::start(&tls_main(&ca, &leaf, "smtpd_tls_security_level = may\n")).expect("tern");
    let mut s = TcpStream::connect(("127.0.0.1", tern.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    read_reply(&mut s);
    s.write_all(b"EHLO c\r\n").unwrap();
    read_reply(&mut s);
    // One write: the injected RSET arrives with STARTTLS.
    s.write_all(b"STARTTLS\r\nRSET\r\n").unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).expect("220");
    assert_eq!(&buf[..n], b"220 2.0.0 Ready to start TLS\r\n");
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca.ca_file()).unwrap();
    for c in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("mx.example.test").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    let mut tls = rustls::StreamOwned::new(conn, s);
    // Nothing is answered for the RSET: the read times out (or the handshake ends).
    let mut got = Vec::new();
    let mut chunk = [0u8; 512];
    match tls.read(&mut chunk) {
        Ok(n) => got.extend_from_slice(&chunk[..n]),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
    }
    assert!(
        got.is_empty(),
        "answered: {}",
        String::from_utf8_lossy(&got)
    );
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok();
    tls.write_all(b"EHLO c\r\n").unwrap();
    let n = tls.read(&mut chunk).expect("EHLO reply over TLS");
    let reply = String::from_utf8_lossy(&chunk[..n]);
    assert!(reply.starts_with("250-mx.example.test"), "{reply}");
    assert!(!reply.contains("STARTTLS"), "{reply}");
}

#[test]
fn swaks_starttls_and_wrapper_mode() {
    let ca = TestCa::new().expect("test CA");
    let leaf = ca.leaf("mx.example.test").expect("leaf");
    let mut t =
        Tern::configure(&tls_main(&ca, &leaf, "smtpd_tls_security_level = may\n")).expect("tern");
    let smtps = free_port().expect("port");
    t.write_master_cf(&format!(
        "127.0.0.1:{} inet n - n - - smtpd\n\
         127.0.0.1:{smtps} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes\n",
        t.port
    ))
    .expect("master.cf");
    t.launch().expect("launch");
    let port = t.port.to_string();
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--tls",
        "--from",
        "a@example.org",
        "--to",
        "root@localhost",
    ]);
    assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
    let p2 = smtps.to_string();
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &p2,
        "--tlsc",
        "--from",
        "a@example.org",
        "--to",
        "root@localhost",
    ]);
    assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
    assert!(!out.contains("STARTTLS"), "{out}");
    let log = t.log();
    assert_eq!(
        log.matches("Anonymous TLS connection established from localhost[127.0.0.1]")
            .count(),
        2,
        "{log}"
    );
}

#[test]
fn client_certificates_relay_with_relay_clientcerts() {
    let ca = TestCa::new().expect("test CA");
    let leaf = ca.leaf("mx.example.test").expect("leaf");
    let good = ca.leaf("good.client.example").expect("client leaf");
    let other = ca.self_signed("other.client.example").expect("other leaf");
    let print = ca.fingerprint_sha256(&good.cert).expect("fingerprint");
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("relay_clientcerts");
    std::fs::write(&table, format!("{print} good\n")).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&table, std::fs::Permissions::from_mode(0o644)).unwrap();
    let extra = format!(
        "smtpd_tls_security_level = may\nsmtpd_tls_ask_ccert = yes\n\
         relay_clientcerts = texthash:{}\n\
         smtpd_relay_restrictions = permit_tls_clientcerts, reject_unauth_destination\n",
        table.display()
    );
    let t = Tern::start(&tls_main(&ca, &leaf, &extra)).expect("tern");
    let port = t.port.to_string();
    let send = |leaf: &tern_testkit::tlscerts::Leaf| {
        swaks(&[
            "--server",
            "127.0.0.1",
            "--port",
            &port,
            "--tls",
            "--tls-cert",
            &leaf.cert.display().to_string(),
            "--tls-key",
            &leaf.key.display().to_string(),
            "--from",
            "a@example.org",
            "--to",
            "user@remote.example",
            "--quit-after",
            "RCPT",
        ])
    };
    let out = send(&good);
    assert!(out.contains("250 2.1.5 Ok"), "{out}");
    let out = send(&other);
    assert!(
        out.contains("554 5.7.1 <user@remote.example>: Relay access denied"),
        "{out}"
    );
    let log = t.log();
    assert!(
        log.contains("Trusted TLS connection established from localhost[127.0.0.1]"),
        "{log}"
    );
    assert!(
        log.contains("Untrusted TLS connection established from localhost[127.0.0.1]"),
        "{log}"
    );
}

#[test]
fn reload_picks_up_a_new_certificate() {
    let ca = TestCa::new().expect("test CA");
    let first = ca.leaf("first.example.test").expect("leaf");
    let second = ca.leaf("second.example.test").expect("leaf");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let install = |l: &tern_testkit::tlscerts::Leaf| {
        std::fs::copy(&l.cert, &cert).unwrap();
        std::fs::copy(&l.key, &key).unwrap();
        for f in [&cert, &key] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    };
    install(&first);
    let extra = format!(
        "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\n",
        cert.display(),
        key.display()
    );
    let t = Tern::start(&extra).expect("tern");
    let addr = format!("127.0.0.1:{}", t.port);
    let args = ["-starttls", "smtp", "-connect", &addr, "-crlf", "-ign_eof"];
    let out = s_client(&args, "QUIT\n");
    assert!(out.contains("CN = first.example.test"), "{out}");
    install(&second);
    t.reload().expect("reload");
    let out = s_client(&args, "QUIT\n");
    assert!(out.contains("CN = second.example.test"), "{out}");
}

/// A key only root may read (Let's Encrypt's privkey.pem is 0600): loaded at start, when
/// the daemon is still root; at a reload (as mail_owner) it cannot be read again, and the
/// running certificate stays in service with a warning instead of TLS going away.
#[test]
fn reload_keeps_a_root_only_key() {
    let ca = TestCa::new().expect("test CA");
    let leaf = ca.leaf("root-only.example.test").expect("leaf");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(&leaf.cert, &cert).unwrap();
    std::fs::copy(&leaf.key, &key).unwrap();
    std::fs::set_permissions(&cert, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let extra = format!(
        "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\n",
        cert.display(),
        key.display()
    );
    let t = Tern::start(&extra).expect("tern");
    let addr = format!("127.0.0.1:{}", t.port);
    let args = ["-starttls", "smtp", "-connect", &addr, "-crlf", "-ign_eof"];
    let out = s_client(&args, "QUIT\n");
    assert!(
        out.contains("CN = root-only.example.test"),
        "{out}\n{}",
        t.log()
    );
    t.reload().expect("reload");
    let out = s_client(&args, "QUIT\n");
    assert!(
        out.contains("CN = root-only.example.test"),
        "{out}\n{}",
        t.log()
    );
    let log = t.log();
    assert!(
        log.contains("keeping the ones loaded before"),
        "no warning about the kept certificate:\n{log}"
    );
}
