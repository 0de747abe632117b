//! smtp(8)'s TLS through the daemon and its queue (TLS_README, "SMTP client-side";
//! smtp_proto.c smtp_start_tls(), tls_client.c, tls_verify.c of Postfix 3.7): a test CA
//! made for the run (tern_testkit::tlscerts), Debian's Postfix as the TLS server, Tern's
//! mail log checked against the lines Postfix 3.7 writes, and the peer's side (mail there
//! or not).
//!
//! - verify and secure with a certificate for the right name: sent, `Verified TLS
//!   connection established`.
//! - the same with a certificate for another name: deferred (`Server certificate not
//!   verified`), never plaintext; the message stays in deferred/.
//! - may and a server without STARTTLS: plaintext.
//! - may and a broken handshake: deferred first; once the message has waited
//!   minimal_backoff_time the retry goes in plaintext (PLAINTEXT_FALLBACK_OK_AFTER_
//!   STARTTLS_FAILURE); at encrypt the same server never sees MAIL FROM.
//! - smtp_tls_policy_maps overriding the level and the match names per next hop.
//! - a client certificate (smtp_tls_cert_file) that the server asks for.
//!
//! The server's name `mx.tls.test` resolves to 127.0.0.1 through dnsmasq
//! (TERN_DNS_SERVER). Needs `cargo build -p tern-commands`, root, Debian's Postfix
//! (postfix, smtp-sink), dnsmasq and openssl; fails, never skips, without them.

// Test code: a failure is the test's failure.
#![allow(clippy::unwrap_used)]

mod relay_util;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use relay_util::{Instance, lines, raw_lines};
use tern_testkit::dns::Dnsmasq;
use tern_testkit::peers::smtp_sink;
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::{smtplib_send, wait_for};
use tern_testkit::tlscerts::{Leaf, TestCa};

/// The TLS server's name, as the next hop and in its certificate.
const MX: &str = "mx.tls.test";

/// dnsmasq with `mx.tls.test` (and `mx2.tls.test`) at 127.0.0.1.
fn dns() -> Dnsmasq {
    Dnsmasq::start(&[
        "--local=/test/",
        "--host-record=mx.tls.test,127.0.0.1",
        "--host-record=mx2.tls.test,127.0.0.1",
    ])
    .expect("dnsmasq")
}

/// Debian's Postfix as the TLS server: smtpd_tls_security_level=may with `leaf` (none
/// without one), every message discarded (and logged) after it is queued.
fn postfix_peer(leaf: Option<&Leaf>, extra: &str) -> PostfixInstance {
    let tls = match leaf {
        Some(l) => format!(
            "smtpd_tls_security_level = may\n\
             smtpd_tls_cert_file = {}\n\
             smtpd_tls_key_file = {}\n\
             smtpd_tls_loglevel = 1\n",
            l.cert.display(),
            l.key.display()
        ),
        None => "smtpd_tls_security_level = none\n".to_owned(),
    };
    PostfixInstance::start(&format!(
        "myhostname = peer.tls.test\n\
         default_transport = discard\n\
         {tls}{extra}"
    ))
    .expect("postfix peer")
}

/// A Tern instance with `main` and TLS services next to smtp: `verify`, `secure`,
/// `encrypt` and `may` (each `smtp -o smtp_tls_security_level=LEVEL`), resolving
/// through `dns`.
fn tern(main: &str, dns: &Dnsmasq) -> Instance {
    let services: String = ["verify", "secure", "encrypt", "may"]
        .iter()
        .map(|l| format!("{l} unix - - n - - smtp -o smtp_tls_security_level={l}\n"))
        .collect();
    Instance::start(
        &format!("smtp_tls_loglevel = 1\n{main}"),
        &services,
        &[("TERN_DNS_SERVER", dns.addr().to_string())],
    )
}

/// A world-readable directory for lookup tables (the daemon reads them as mail_owner).
fn tables() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("tlsmaps.").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A texthash: table `name` in `dir` holding `text`; returns its map name.
fn table(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    format!("texthash:{}", path.display())
}

/// One message to `rcpt`; waits for its `status=` line; returns (queue id, log).
fn send_and_wait(t: &Instance, rcpt: &str, status: &str) -> (String, String) {
    let id = smtplib_send(
        t.t.port,
        "alice@example.org",
        &[rcpt],
        "Subject: tls\r\n\r\nover tls or not\r\n",
    );
    let log = t.wait(&format!("{id}: to=<{rcpt}>"), 1);
    assert!(
        raw_lines(&log, &format!("{id}: to=<{rcpt}>"))
            .iter()
            .any(|l| l.contains(status)),
        "no {status} for {rcpt}:\n{log}"
    );
    (id, log)
}

/// The `to=` line of `id` (queue id as QID, delays as N).
fn to_line(log: &str, id: &str) -> String {
    lines(log, "postfix/smtp", id)
        .into_iter()
        .find(|l| l.starts_with("QID: to=<"))
        .unwrap_or_else(|| panic!("no to= line for {id}:\n{log}"))
}

/// Whether queue file `id` is in `sub` (deferred, active, ...) of the instance.
fn queued_in(t: &Instance, sub: &str, id: &str) -> bool {
    let dir = t.t.queue_dir().join(sub);
    // Postfix's hashed queue directories (hash_queue_depth) or flat: search both.
    let mut stack = vec![dir];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        seen += 1;
        if seen > 1000 {
            break;
        }
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_name().to_str() == Some(id) {
                return true;
            }
            if e.file_type().is_ok_and(|f| f.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    false
}

#[test]
fn verify_and_secure_with_the_right_name_are_verified() {
    let ca = TestCa::new().expect("test CA");
    let leaf = ca.leaf(MX).unwrap();
    let peer = postfix_peer(Some(&leaf), "");
    let dns = dns();
    let p = peer.port();
    let maps = tables();
    let transport = table(
        &maps,
        "transport",
        &format!("verify.example verify:[{MX}]:{p}\nsecure.example secure:[{MX}]:{p}\n"),
    );
    let t = tern(
        &format!(
            "transport_maps = {transport}\nsmtp_tls_CAfile = {}\n",
            ca.ca_file().display()
        ),
        &dns,
    );
    for rcpt in ["u@verify.example", "u@secure.example"] {
        let (id, log) = send_and_wait(&t, rcpt, "status=sent");
        let line = to_line(&log, &id);
        let want = format!(
            "QID: to=<{rcpt}>, relay={MX}[127.0.0.1]:{p}, delay=N, delays=N, dsn=2.0.0, \
             status=sent (250 2.0.0 Ok: queued as "
        );
        assert!(line.starts_with(&want), "{line}\nwant {want}\n{log}");
        let summary = format!("Verified TLS connection established to {MX}[127.0.0.1]:{p}: TLSv1.");
        assert!(
            raw_lines(&log, "postfix/smtp[")
                .iter()
                .any(|l| l.contains(&format!("]: {summary}"))),
            "{summary}\n{log}"
        );
        // The peer got it over TLS and queued it (discard logs the recipient).
        let plog = wait_for(|| peer.maillog(), &format!("to=<{rcpt}>"), 1);
        assert!(
            plog.contains(&format!("to=<{rcpt}>, relay=none")),
            "{plog}"
        );
    }
    let plog = peer.maillog();
    assert_eq!(
        plog.matches("TLS connection established from").count(),
        2,
        "{plog}"
    );
}
