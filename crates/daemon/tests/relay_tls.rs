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
//! - smtp_tls_per_site (MUST, NONE) when smtp_tls_policy_maps is empty.
//! - a client certificate (smtp_tls_cert_file) that the server asks for, and a key that
//!   does not match it (Postfix's warnings; no TLS).
//!
//! The server's name `mx.tls.test` resolves to 127.0.0.1 through dnsmasq
//! (TERN_DNS_SERVER). Needs `cargo build -p tern-commands`, root, Debian's Postfix
//! (postfix, smtp-sink), dnsmasq and openssl; fails, never skips, without them.

// Test code: a failure is the test's failure.
#![allow(clippy::unwrap_used)]

mod relay_util;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
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
    let mut services = String::new();
    for l in ["verify", "secure", "encrypt", "may"] {
        let _ = writeln!(
            services,
            "{l} unix - - n - - smtp -o smtp_tls_security_level={l}"
        );
    }
    Instance::start(
        &format!("smtp_tls_loglevel = 1\n{main}"),
        &services,
        &[("TERN_DNS_SERVER", dns.addr().to_string())],
    )
}

/// A world-readable directory for lookup tables (the daemon reads them as mail_owner).
fn tables() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("tlsmaps.")
        .tempdir()
        .unwrap();
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
        assert!(plog.contains(&format!("to=<{rcpt}>, relay=none")), "{plog}");
    }
    let plog = peer.maillog();
    assert_eq!(
        plog.matches("TLS connection established from").count(),
        2,
        "{plog}"
    );
}

#[test]
fn wrong_name_defers_at_verify_and_secure() {
    let ca = TestCa::new().expect("test CA");
    let leaf = ca.leaf("wrong.tls.test").unwrap();
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
    let namaddr = format!("{MX}[127.0.0.1]:{p}");
    for rcpt in ["u@verify.example", "u@secure.example"] {
        let (id, log) = send_and_wait(&t, rcpt, "status=deferred");
        // smtp_proto.c smtp_start_tls(): TLS_MUST_MATCH and not matched is a site
        // failure by the local MTA, 4.7.5, after a completed handshake.
        assert_eq!(
            to_line(&log, &id),
            format!(
                "QID: to=<{rcpt}>, relay={namaddr}, delay=N, delays=N, dsn=4.7.5, \
                 status=deferred (Server certificate not verified)"
            ),
            "{log}"
        );
        // tls_client.c: at verify and above, TLS_LOG_UNTRUSTED is on; OpenSSL's
        // X509_V_ERR_HOSTNAME_MISMATCH (62) leaves the chain untrusted in the summary.
        let smtp = raw_lines(&log, "postfix/smtp[");
        let mismatch = format!(
            "]: server certificate verification failed for {namaddr}: num=62:hostname mismatch"
        );
        let summary = format!("]: Untrusted TLS connection established to {namaddr}: TLSv1.");
        let at = |needle: &str| smtp.iter().position(|l| l.contains(needle));
        let (m, s) = (at(&mismatch), at(&summary));
        assert!(
            m.is_some() && s.is_some() && m < s,
            "{mismatch}\n{summary}\n{log}"
        );
        assert!(
            queued_in(&t, "deferred", &id),
            "{id} not in deferred/:\n{log}"
        );
    }
    // Never plaintext: the peer saw two STARTTLS sessions and no MAIL FROM.
    let plog = wait_for(|| peer.maillog(), "disconnect from", 2);
    assert_eq!(
        plog.matches("TLS connection established from").count(),
        2,
        "{plog}"
    );
    assert!(!plog.contains(" mail="), "{plog}");
    assert!(!plog.contains("postfix/cleanup"), "{plog}");
}

#[test]
fn may_without_starttls_is_plaintext_encrypt_defers() {
    let ca = TestCa::new().expect("test CA");
    let sink = smtp_sink(&[]).expect("smtp-sink");
    let dns = dns();
    let p = sink.port;
    let maps = tables();
    let transport = table(
        &maps,
        "transport",
        &format!("may.example may:[127.0.0.1]:{p}\nencrypt.example encrypt:[127.0.0.1]:{p}\n"),
    );
    let t = tern(
        &format!(
            "transport_maps = {transport}\nsmtp_tls_CAfile = {}\n",
            ca.ca_file().display()
        ),
        &dns,
    );
    let (id, log) = send_and_wait(&t, "u@may.example", "status=sent");
    assert_eq!(
        to_line(&log, &id),
        format!(
            "QID: to=<u@may.example>, relay=127.0.0.1[127.0.0.1]:{p}, delay=N, delays=N, \
             dsn=2.0.0, status=sent (250 2.0.0 Ok)"
        ),
        "{log}"
    );
    assert!(!log.contains("TLS connection established"), "{log}");
    let dump = relay_util::wait_file(&sink.record, "over tls or not");
    assert!(dump.contains("u@may.example"), "{dump}");

    // smtp_proto.c smtp_helo(): a level that requires TLS and no STARTTLS in EHLO; the
    // text names session->namaddr, without the port.
    let (id, log) = send_and_wait(&t, "u@encrypt.example", "status=deferred");
    assert_eq!(
        to_line(&log, &id),
        format!(
            "QID: to=<u@encrypt.example>, relay=127.0.0.1[127.0.0.1]:{p}, delay=N, \
             delays=N, dsn=4.7.4, status=deferred (TLS is required, but was not offered \
             by host 127.0.0.1[127.0.0.1])"
        ),
        "{log}"
    );
    let dump = std::fs::read_to_string(&sink.record).unwrap_or_default();
    assert!(!dump.contains("u@encrypt.example"), "{dump}");
}

#[test]
fn policy_maps_set_the_level_and_names_per_next_hop() {
    let ca = TestCa::new().expect("test CA");
    let leaf = ca.leaf("wrong.tls.test").unwrap();
    let peer = postfix_peer(Some(&leaf), "");
    let dns = dns();
    let p = peer.port();
    let maps = tables();
    let transport = table(
        &maps,
        "transport",
        &format!(
            "plain.example smtp:[127.0.0.1]:{p}\n\
             match.example smtp:[{MX}]:{p}\n\
             strict.example smtp:[mx2.tls.test]:{p}\n"
        ),
    );
    // TLS_README "TLS policy table": the key is the next hop as written, with [] and
    // port; `match=` replaces smtp_tls_secure_cert_match.
    let policy = table(
        &maps,
        "tls_policy",
        &format!(
            "[{MX}]:{p} secure match=wrong.tls.test\n\
             [mx2.tls.test]:{p} verify\n"
        ),
    );
    let t = tern(
        &format!(
            "transport_maps = {transport}\nsmtp_tls_policy_maps = {policy}\n\
             smtp_tls_security_level = may\nsmtp_tls_CAfile = {}\n",
            ca.ca_file().display()
        ),
        &dns,
    );
    let smtp_has = |log: &str, needle: &str| {
        raw_lines(log, "postfix/smtp[")
            .iter()
            .any(|l| l.contains(needle))
    };
    // No entry: the global may; the chain is trusted, no name is checked.
    let (id, log) = send_and_wait(&t, "u@plain.example", "status=sent");
    assert!(to_line(&log, &id).contains("dsn=2.0.0, status=sent (250 2.0.0 Ok"));
    let trusted =
        format!("]: Trusted TLS connection established to 127.0.0.1[127.0.0.1]:{p}: TLSv1.");
    assert!(smtp_has(&log, &trusted), "{trusted}\n{log}");
    // secure with match=: the other name verifies.
    let (id, log) = send_and_wait(&t, "u@match.example", "status=sent");
    assert!(to_line(&log, &id).contains("dsn=2.0.0, status=sent (250 2.0.0 Ok"));
    let verified = format!("]: Verified TLS connection established to {MX}[127.0.0.1]:{p}: TLSv1.");
    assert!(smtp_has(&log, &verified), "{verified}\n{log}");
    // verify with the default hostname match: mx2.tls.test is not in the certificate.
    let (id, log) = send_and_wait(&t, "u@strict.example", "status=deferred");
    assert_eq!(
        to_line(&log, &id),
        format!(
            "QID: to=<u@strict.example>, relay=mx2.tls.test[127.0.0.1]:{p}, delay=N, \
             delays=N, dsn=4.7.5, status=deferred (Server certificate not verified)"
        ),
        "{log}"
    );
    let plog = wait_for(|| peer.maillog(), "to=<u@match.example>", 1);
    assert!(plog.contains("to=<u@plain.example>"), "{plog}");
    assert!(!plog.contains("to=<u@strict.example>"), "{plog}");
}

/// The same next hops and policies through Debian's Postfix as the client and through
/// Tern: the smtp lines of each (port, queue ids and delays masked) are the same, for a
/// certificate that verifies (secure, match=) and one whose name does not (verify).
#[test]
fn postfix_client_logs_the_same_tls_lines() {
    let ca = TestCa::new().expect("test CA");
    let leaf = ca.leaf("wrong.tls.test").unwrap();
    let peer = postfix_peer(Some(&leaf), "");
    let dns = Dnsmasq::start(&["--host-record=localhost,127.0.0.1"]).expect("dnsmasq");
    let p = peer.port();
    let maps = tables();
    let transport = table(
        &maps,
        "transport",
        &format!("good.example smtp:[localhost]:{p}\nbad.example smtp:[127.0.0.1]:{p}\n"),
    );
    let policy = table(
        &maps,
        "tls_policy",
        &format!(
            "[localhost]:{p} secure match=wrong.tls.test\n\
             [127.0.0.1]:{p} verify match=mx.tls.test\n"
        ),
    );
    let main = format!(
        "transport_maps = {transport}\nsmtp_tls_policy_maps = {policy}\n\
         smtp_tls_CAfile = {}\nsmtp_tls_loglevel = 1\n",
        ca.ca_file().display()
    );
    // Debian's Postfix finds localhost in /etc/hosts, Tern through dnsmasq.
    let pf = PostfixInstance::start(&format!("{main}smtp_host_lookup = native\n"))
        .expect("postfix client");
    let t = Instance::start(&main, "", &[("TERN_DNS_SERVER", dns.addr().to_string())]);
    let mut got = Vec::new();
    for (port, log) in [
        (pf.port(), &(|| pf.maillog()) as &dyn Fn() -> String),
        (t.t.port, &(|| t.log()) as &dyn Fn() -> String),
    ] {
        let mut ids = Vec::new();
        let mut text = String::new();
        for rcpt in ["u@good.example", "u@bad.example"] {
            let id = smtplib_send(port, "a@example.org", &[rcpt], "Subject: x\r\n\r\nx\r\n");
            text = wait_for(log, &format!("{id}: to=<{rcpt}>"), 1);
            ids.push(id);
        }
        got.push(smtp_shapes(&text, &ids, &[(p, "PORT")]));
    }
    assert_eq!(
        got[0],
        got[1],
        "postfix:\n{}\ntern:\n{}",
        pf.maillog(),
        t.log()
    );
}

/// smtp_tls_per_site (obsolete, but honoured by Postfix 3.7 when smtp_tls_policy_maps is
/// empty): `MUST` for the server's host name makes a certificate for another name defer
/// (verify with smtp_tls_verify_cert_match = hostname); `NONE` for the next hop as written
/// sends in plaintext although smtp_tls_security_level = may and the server offers
/// STARTTLS. Debian's Postfix as the client logs the same smtp lines.
#[test]
fn per_site_must_defers_none_is_plaintext() {
    let ca = TestCa::new().expect("test CA");
    let leaf = ca.leaf("wrong.tls.test").unwrap();
    let peer = postfix_peer(Some(&leaf), "");
    let dns = Dnsmasq::start(&["--host-record=localhost,127.0.0.1"]).expect("dnsmasq");
    let p = peer.port();
    let maps = tables();
    let transport = table(
        &maps,
        "transport",
        &format!("must.example smtp:[localhost]:{p}\nnone.example smtp:[127.0.0.1]:{p}\n"),
    );
    // The first key is the host name (the next hop is `[localhost]:PORT`), the second
    // the next hop as written.
    let per_site = table(
        &maps,
        "tls_per_site",
        &format!("localhost MUST\n[127.0.0.1]:{p} NONE\n"),
    );
    let main = format!(
        "transport_maps = {transport}\nsmtp_tls_per_site = {per_site}\n\
         smtp_tls_security_level = may\nsmtp_tls_CAfile = {}\nsmtp_tls_loglevel = 1\n",
        ca.ca_file().display()
    );
    let pf = PostfixInstance::start(&format!("{main}smtp_host_lookup = native\n"))
        .expect("postfix client");
    let t = Instance::start(&main, "", &[("TERN_DNS_SERVER", dns.addr().to_string())]);
    let mut got = Vec::new();
    for (port, log) in [
        (pf.port(), &(|| pf.maillog()) as &dyn Fn() -> String),
        (t.t.port, &(|| t.log()) as &dyn Fn() -> String),
    ] {
        let mut ids = Vec::new();
        let mut text = String::new();
        for rcpt in ["u@must.example", "u@none.example"] {
            let id = smtplib_send(port, "a@example.org", &[rcpt], "Subject: x\r\n\r\nx\r\n");
            text = wait_for(log, &format!("{id}: to=<{rcpt}>"), 1);
            ids.push(id);
        }
        got.push(smtp_shapes(&text, &ids, &[(p, "PORT")]));
    }
    let tern = &got[1];
    eprintln!("tern:\n{}", tern.join("\n"));
    let has = |needle: &str| tern.iter().any(|l| l.contains(needle));
    assert!(
        has(
            "QID: to=<u@must.example>, relay=localhost[127.0.0.1]:PORT, delay=N, delays=N, \
             dsn=4.7.5, status=deferred (Server certificate not verified)"
        ),
        "{}",
        t.log()
    );
    assert!(
        has(
            "server certificate verification failed for localhost[127.0.0.1]:PORT: \
             num=62:hostname mismatch"
        ),
        "{}",
        t.log()
    );
    assert!(
        has(
            "QID: to=<u@none.example>, relay=127.0.0.1[127.0.0.1]:PORT, delay=N, delays=N, \
             dsn=2.0.0, status=sent (250 2.0.0 Ok"
        ),
        "{}",
        t.log()
    );
    assert!(
        !has("TLS connection established to 127.0.0.1"),
        "{}",
        t.log()
    );
    assert_eq!(
        got[0],
        got[1],
        "postfix:\n{}\ntern:\n{}",
        pf.maillog(),
        t.log()
    );
    // The peer: two TLS sessions (one per client, for must.example), no message from
    // them; both none.example messages in plaintext.
    let plog = wait_for(|| peer.maillog(), "to=<u@none.example>", 2);
    assert_eq!(
        plog.matches("TLS connection established from").count(),
        2,
        "{plog}"
    );
    assert!(!plog.contains("to=<u@must.example>"), "{plog}");
}

/// Client certificates (smtp_tls_cert_file, smtp_tls_key_file): Debian's Postfix as the
/// server asks for one (smtpd_tls_ask_ccert) and relays only for its fingerprint
/// (permit_tls_clientcerts, relay_clientcerts). With the certificate the mail is relayed
/// and the summary names the client signature; without it the server refuses relay; with
/// a key that does not match, Tern logs Postfix's warnings, runs without TLS (`may` goes
/// in plaintext) and is refused the same way.
#[test]
fn client_certificate_is_presented_when_asked() {
    let ca = TestCa::new().expect("test CA");
    let leaf = ca.leaf(MX).unwrap();
    let client = ca.leaf("client.tls.test").unwrap();
    let other = ca.leaf("other.tls.test").unwrap();
    let maps = tables();
    let fp = ca.fingerprint_sha256(&client.cert).unwrap();
    let ccerts = table(
        &maps,
        "relay_clientcerts",
        &format!("{fp} client.tls.test\n"),
    );
    let peer = postfix_peer(
        Some(&leaf),
        &format!(
            "smtpd_tls_ask_ccert = yes\nsmtpd_tls_CAfile = {}\n\
             smtpd_tls_fingerprint_digest = sha256\nrelay_clientcerts = {ccerts}\n\
             smtpd_relay_restrictions = permit_tls_clientcerts, reject_unauth_destination\n",
            ca.ca_file().display()
        ),
    );
    let dns = dns();
    let p = peer.port();
    let transport = table(
        &maps,
        "transport",
        &format!(
            "cert.example withcert:[{MX}]:{p}\nnocert.example smtp:[{MX}]:{p}\n\
             badkey.example badkey:[{MX}]:{p}\n"
        ),
    );
    let (cert, key, bad) = (
        client.cert.display().to_string(),
        client.key.display().to_string(),
        other.key.display().to_string(),
    );
    let t = Instance::start(
        &format!(
            "smtp_tls_loglevel = 1\ntransport_maps = {transport}\n\
             smtp_tls_security_level = may\nsmtp_tls_CAfile = {}\n",
            ca.ca_file().display()
        ),
        &format!(
            "withcert unix - - n - - smtp -o smtp_tls_cert_file={cert} \
             -o smtp_tls_key_file={key}\n\
             badkey unix - - n - - smtp -o smtp_tls_cert_file={cert} \
             -o smtp_tls_key_file={bad}\n"
        ),
        &[("TERN_DNS_SERVER", dns.addr().to_string())],
    );
    let namaddr = format!("{MX}[127.0.0.1]:{p}");
    let (id, log) = send_and_wait(&t, "u@cert.example", "status=sent");
    assert!(
        to_line(&log, &id).starts_with(&format!(
            "QID: to=<u@cert.example>, relay={namaddr}, delay=N, delays=N, dsn=2.0.0, \
             status=sent (250 2.0.0 Ok: queued as "
        )),
        "{log}"
    );
    // tls_misc.c tls_log_summary(): the client's signature after the server's (TLS 1.3).
    let summary = format!(
        "]: Trusted TLS connection established to {namaddr}: TLSv1.3 with cipher \
         TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA \
         (prime256v1) server-digest SHA256 client-signature ECDSA (prime256v1) client-digest \
         SHA256"
    );
    assert!(
        raw_lines(&log, "postfix/smtp[")
            .iter()
            .any(|l| l.ends_with(&summary)),
        "{summary}\n{log}"
    );
    let plog = wait_for(|| peer.maillog(), "to=<u@cert.example>", 1);
    assert!(
        plog.contains("]: Trusted TLS connection established from localhost[127.0.0.1]: TLSv1.3"),
        "{plog}"
    );

    let refused = |rcpt: &str| {
        format!(
            "QID: to=<{rcpt}>, relay={namaddr}, delay=N, delays=N, dsn=5.7.1, \
             status=bounced (host {MX}[127.0.0.1] said: 554 5.7.1 <{rcpt}>: Relay access \
             denied (in reply to RCPT TO command))"
        )
    };
    let (id, log) = send_and_wait(&t, "u@nocert.example", "status=bounced");
    assert_eq!(to_line(&log, &id), refused("u@nocert.example"), "{log}");

    // tls_certkey.c set_cert_stuff(): SSL_CTX_use_PrivateKey_file() refuses a key of the
    // certificate's algorithm that does not match it; tls_client_init() fails, and
    // smtp(8) goes on without TLS.
    let (id, log) = send_and_wait(&t, "u@badkey.example", "status=bounced");
    assert_eq!(to_line(&log, &id), refused("u@badkey.example"), "{log}");
    let warnings = [
        format!(
            "]: warning: cannot get RSA private key from file \"{bad}\": disabling TLS support"
        ),
        "]: warning: TLS library problem: error:05800074:x509 certificate routines::key \
         values mismatch:../crypto/x509/x509_cmp.c:403:"
            .to_owned(),
    ];
    let smtp = raw_lines(&log, "postfix/smtp[");
    for w in &warnings {
        assert!(smtp.iter().any(|l| l.ends_with(w.as_str())), "{w}\n{log}");
    }
    let plog = wait_for(|| peer.maillog(), "to=<u@badkey.example>", 1);
    // Three sessions: TLS with the certificate, TLS without, plaintext.
    assert_eq!(
        plog.matches("TLS connection established from").count(),
        2,
        "{plog}"
    );
}

/// The postfix/smtp lines of `log`, queue ids `ids` made QID, each port of `ports` made
/// its name, the delays N, and the server's queue id after `status=sent (250 2.0.0 Ok`
/// dropped.
fn smtp_shapes(log: &str, ids: &[String], ports: &[(u16, &str)]) -> Vec<String> {
    log.lines()
        .filter_map(tern_testkit::support::program_and_text)
        .filter(|(prog, _)| *prog == "postfix/smtp")
        .map(|(_, t)| {
            let mut t = t.to_owned();
            for (p, name) in ports {
                t = t.replace(&format!("]:{p}"), &format!("]:{name}"));
            }
            for id in ids {
                t = t.replace(id.as_str(), "QID");
            }
            let t = t.split(": queued as ").next().unwrap_or(&t);
            tern_testkit::support::constant_fields(t, &["delay=", "delays="])
        })
        .collect()
}

/// What [`BrokenTls`] does after its 220 reply to STARTTLS.
#[derive(Debug, Clone, Copy)]
enum Break {
    /// Close the connection.
    Close,
    /// Send a line of text where the TLS ServerHello belongs, then close.
    Garbage,
}

/// A server that offers STARTTLS, answers it with 220 and then breaks the handshake; in
/// plaintext it takes the mail (`250 2.0.0 Ok: queued as PLAIN`). It records each
/// connection's command lines. Serves connections one at a time, at most 20, for at
/// most 60 s.
struct BrokenTls {
    port: u16,
    sessions: Arc<Mutex<Vec<Vec<String>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BrokenTls {
    fn start(how: Break) -> BrokenTls {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rec, halt) = (Arc::clone(&sessions), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut served = 0;
            while !halt.load(Ordering::Relaxed)
                && served < 20
                && start.elapsed() < Duration::from_mins(1)
            {
                match listener.accept() {
                    Ok((stream, _)) => {
                        served += 1;
                        let lines = serve_broken(stream, how);
                        rec.lock().unwrap().push(lines);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        BrokenTls {
            port,
            sessions,
            stop,
            thread: Some(thread),
        }
    }

    fn sessions(&self) -> Vec<Vec<String>> {
        self.sessions.lock().unwrap().clone()
    }

    /// The sessions once one has MAIL FROM (the server records a session at its end,
    /// after the client's log line); waits at most 10 s.
    fn wait_for_mail(&self) -> Vec<Vec<String>> {
        let start = Instant::now();
        loop {
            let s = self.sessions();
            if s.iter().flatten().any(|l| l.starts_with("MAIL FROM:"))
                || start.elapsed() > Duration::from_secs(10)
            {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BrokenTls {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection of [`BrokenTls`]; returns the client's lines (content excluded).
fn serve_broken(stream: TcpStream, how: Break) -> Vec<String> {
    let mut seen = Vec::new();
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let _ = w.write_all(b"220 broken.tls.test ESMTP\r\n");
    let mut in_data = false;
    // Bounded: a session of this test has a handful of commands and one short message.
    for _ in 0..200 {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let line = line.trim_end().to_owned();
        if in_data {
            if line == "." {
                in_data = false;
                let _ = w.write_all(b"250 2.0.0 Ok: queued as PLAIN\r\n");
            }
            continue;
        }
        seen.push(line.clone());
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-broken.tls.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
            "STAR" => {
                let _ = w.write_all(b"220 2.0.0 Ready to start TLS\r\n");
                // Take the ClientHello first and end with FIN, not RST (unread data at
                // close), so the client sees the same failure every run.
                let hello = r.fill_buf().map_or(0, <[u8]>::len);
                r.consume(hello);
                if let Break::Garbage = how {
                    let _ = w.write_all(b"this is not a TLS record\r\n");
                }
                let _ = w.shutdown(std::net::Shutdown::Write);
                let mut rest = Vec::new();
                let _ = r.take(1 << 20).read_to_end(&mut rest);
                break;
            }
            "MAIL" => b"250 2.1.0 Ok\r\n",
            "RCPT" => b"250 2.1.5 Ok\r\n",
            "DATA" => {
                in_data = true;
                b"354 End data with <CR><LF>.<CR><LF>\r\n"
            }
            "QUIT" => {
                let _ = w.write_all(b"221 2.0.0 Bye\r\n");
                break;
            }
            "RSET" | "NOOP" => b"250 2.0.0 Ok\r\n",
            _ => b"502 5.5.2 Error: command not recognized\r\n",
        };
        if w.write_all(reply).is_err() {
            break;
        }
    }
    seen
}

/// `may` and a broken handshake: deferred (`Cannot start TLS: handshake failure`) while
/// the message is younger than minimal_backoff_time; then the retry after the failed
/// handshake goes to the same server in plaintext (smtp.h
/// PLAINTEXT_FALLBACK_OK_AFTER_STARTTLS_FAILURE). At `encrypt` the server never sees
/// MAIL FROM. Debian's Postfix as the client against its own broken server gives the
/// same smtp lines.
#[test]
fn may_retries_a_broken_handshake_in_plaintext_encrypt_never() {
    let dns = dns();
    let (tern_may, tern_enc) = (
        BrokenTls::start(Break::Close),
        BrokenTls::start(Break::Garbage),
    );
    let (pf_may, pf_enc) = (
        BrokenTls::start(Break::Close),
        BrokenTls::start(Break::Garbage),
    );
    let maps = tables();
    let config = |may: &BrokenTls, enc: &BrokenTls, name: &str| {
        let transport = table(
            &maps,
            name,
            &format!(
                "may.example may:[127.0.0.1]:{}\nencrypt.example encrypt:[127.0.0.1]:{}\n",
                may.port, enc.port
            ),
        );
        format!(
            "transport_maps = {transport}\nsmtp_tls_loglevel = 1\n\
             minimal_backoff_time = 2s\nmaximal_backoff_time = 4s\nqueue_run_delay = 1s\n"
        )
    };
    let t = tern(&config(&tern_may, &tern_enc, "tern_transport"), &dns);
    let pf_main = config(&pf_may, &pf_enc, "pf_transport");
    let pf = PostfixInstance::start(&pf_main).expect("postfix client");
    let master = pf.dir().join("master.cf");
    let mut text = std::fs::read_to_string(&master).unwrap();
    for l in ["encrypt", "may"] {
        let _ = writeln!(
            text,
            "{l} unix - - n - - smtp -o smtp_tls_security_level={l}"
        );
    }
    std::fs::write(&master, text).unwrap();
    let out = std::process::Command::new("/usr/sbin/postfix")
        .arg("-c")
        .arg(pf.dir())
        .arg("reload")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::thread::sleep(Duration::from_secs(1));

    let mut shapes = Vec::new();
    for (port, log, may, enc) in [
        (
            t.t.port,
            &(|| t.log()) as &dyn Fn() -> String,
            &tern_may,
            &tern_enc,
        ),
        (
            pf.port(),
            &(|| pf.maillog()) as &dyn Fn() -> String,
            &pf_may,
            &pf_enc,
        ),
    ] {
        let body = "Subject: x\r\n\r\nx\r\n";
        let may_id = smtplib_send(port, "a@example.org", &["u@may.example"], body);
        let enc_id = smtplib_send(port, "a@example.org", &["u@encrypt.example"], body);
        let text = wait_for(log, "status=sent (250 2.0.0 Ok: queued as PLAIN)", 1);
        let sessions = may.wait_for_mail();
        // STARTTLS sessions (the first attempt, then the retry's TLS try), then the same
        // server in plaintext.
        assert!(sessions.len() >= 3, "{sessions:?}\n{text}");
        assert!(
            sessions
                .last()
                .unwrap()
                .iter()
                .any(|l| l.starts_with("MAIL FROM:")),
            "{sessions:?}"
        );
        let ports = [(may.port, "MAY"), (enc.port, "ENC")];
        shapes.push(smtp_shapes(&text, &[may_id, enc_id], &ports));
    }
    // At encrypt nothing went in plaintext, to either client's server.
    for enc in [&tern_enc, &pf_enc] {
        let sessions = enc.sessions();
        assert!(!sessions.is_empty());
        assert!(
            sessions.iter().flatten().all(|l| !l.starts_with("MAIL")),
            "{sessions:?}"
        );
    }
    let (tern, postfix) = (&shapes[0], &shapes[1]);
    eprintln!(
        "tern:\n{}\npostfix:\n{}",
        tern.join("\n"),
        postfix.join("\n")
    );
    // How many attempts fit in the time depends on the timing; the first attempt of each
    // message and the may message's last one (handshake failure, the recipient kept for
    // the plaintext retry, sent) must read as Postfix's.
    let may = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|l| l.contains("]:MAY") || l.starts_with("QID: Cannot"))
            .cloned()
            .collect()
    };
    let enc = |v: &[String]| -> Vec<String> {
        v.iter()
            .filter(|l| l.contains("]:ENC") || l.starts_with("warning: TLS library problem"))
            .map(|l| {
                // XXX: the library's own error text follows (OpenSSL's `error:0A00010B:SSL
                // routines::wrong version number:...`, rustls's `received corrupt message
                // of type InvalidContentType`).
                l.split_once("TLS library problem: ")
                    .map_or(l.clone(), |(a, _)| format!("{a}TLS library problem: ..."))
            })
            .collect()
    };
    let (tm, pm) = (may(tern), may(postfix));
    assert_eq!(tm[..2], pm[..2], "first attempt");
    assert_eq!(tm[tm.len() - 3..], pm[pm.len() - 3..], "plaintext retry");
    assert_eq!(enc(tern)[..3], enc(postfix)[..3], "encrypt");
}

/// Issue 9, the client side's TLS checks against Tern's own smtpd: a second Tern instance
/// serves STARTTLS with the test CA's certificate for `mx.tls.test` (or another name);
/// the first relays to it at `verify`. The right name: sent over a verified connection,
/// the server logs `Anonymous TLS connection established from ...` and delivers the
/// message into its mailbox; the wrong name: deferred, the server never sees MAIL FROM.
#[test]
fn tern_client_verifies_tern_server() {
    let ca = TestCa::new().expect("test CA");
    let dns = dns();
    for (cert_name, verified) in [(MX, true), ("wrong.tls.test", false)] {
        let leaf = ca.leaf(cert_name).unwrap();
        let server = Instance::start(
            &format!(
                "myhostname = server.tls.test\n\
                 mydestination = $myhostname, localhost, verify.example\n\
                 smtpd_tls_security_level = may\n\
                 smtpd_tls_cert_file = {}\n\
                 smtpd_tls_key_file = {}\n\
                 smtpd_tls_loglevel = 1\n",
                leaf.cert.display(),
                leaf.key.display()
            ),
            "",
            &[],
        );
        let p = server.t.port;
        let maps = tables();
        let transport = table(
            &maps,
            "transport",
            &format!("verify.example verify:[{MX}]:{p}\n"),
        );
        let t = tern(
            &format!(
                "transport_maps = {transport}\nsmtp_tls_CAfile = {}\n",
                ca.ca_file().display()
            ),
            &dns,
        );
        let rcpt = "root@verify.example";
        if verified {
            let (id, log) = send_and_wait(&t, rcpt, "status=sent");
            let line = to_line(&log, &id);
            assert!(
                line.contains("status=sent (250 2.0.0 Ok: queued as "),
                "{line}"
            );
            assert!(
                log.contains(&format!(
                    "Verified TLS connection established to {MX}[127.0.0.1]:{p}: TLSv1.3"
                )),
                "{log}"
            );
            let slog = server.wait("status=sent", 1);
            assert!(
                slog.contains("Anonymous TLS connection established from "),
                "{slog}"
            );
            assert!(slog.contains("to=<root@verify.example>"), "{slog}");
        } else {
            let (id, log) = send_and_wait(&t, rcpt, "status=deferred");
            assert!(
                to_line(&log, &id).ends_with("status=deferred (Server certificate not verified)"),
                "{log}"
            );
            let slog = server.log();
            assert!(!slog.contains("from=<alice@example.org>"), "{slog}");
        }
    }
}
