//! smtp(8)'s SASL client in the daemon, through the queue: Tern relays to Debian's
//! Postfix (tern_testkit::postfix) whose smtpd authenticates through a private Dovecot's
//! auth socket (tern_testkit::dovecot, `smtpd_sasl_type = dovecot`) and relays only for
//! authenticated clients (`smtpd_relay_restrictions = permit_sasl_authenticated,
//! reject`). The right password: the message arrives and Tern logs status=sent; a wrong
//! one: the message stays deferred with Postfix's "SASL authentication failed" text.
//! Needs `cargo build -p tern-commands`, root, Debian's Postfix and dovecot-core; fails,
//! never skips, without them.

mod relay_util;

use relay_util::{Instance, lines};
use tern_testkit::dovecot::Dovecot;
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::{smtplib_send, wait_for};

/// Debian's Postfix that takes mail for peer.test only from authenticated clients.
fn peer(dovecot: &Dovecot) -> PostfixInstance {
    PostfixInstance::start(&format!(
        "mydestination = $myhostname, localhost, peer.test\n\
         smtpd_sasl_auth_enable = yes\n\
         smtpd_sasl_type = dovecot\n\
         smtpd_sasl_path = {}\n\
         smtpd_relay_restrictions = permit_sasl_authenticated, reject\n",
        dovecot.auth_socket_path().display()
    ))
    .expect("private Postfix")
}

/// Tern relaying everything to `port` with SASL under `maps`.
fn tern(port: u16, maps: &str) -> Instance {
    Instance::start(
        &format!(
            "relayhost = [127.0.0.1]:{port}\n\
             smtp_sasl_auth_enable = yes\n\
             smtp_sasl_password_maps = {maps}\n\
             smtp_sasl_security_options = noanonymous\n"
        ),
        "",
        &[],
    )
}

fn send(tern: &Instance) -> String {
    smtplib_send(
        tern.t.port,
        "alice@example.org",
        &["root@peer.test"],
        "From: alice@example.org\r\nSubject: sasl\r\n\r\nAuthenticated relay.\r\n",
    )
}

#[test]
fn authenticated_relay_to_postfix_with_dovecot_auth() {
    let dovecot = Dovecot::start_auth(&[("tern", "s3cret-pw")]).expect("private Dovecot");
    let pf = peer(&dovecot);
    let dir = tempfile::tempdir().expect("tempdir");
    // A texthash table keyed by the next hop as written (the host key is 127.0.0.1).
    let table = dir.path().join("sasl_passwd");
    std::fs::write(
        &table,
        format!("[127.0.0.1]:{} tern:s3cret-pw\n", pf.port()),
    )
    .expect("sasl_passwd");
    let tern = tern(pf.port(), &format!("texthash:{}", table.display()));
    let id = send(&tern);
    let log = tern.wait(&format!("{id}: removed"), 1);
    let got = lines(&log, "postfix/smtp", &id);
    let relay = format!("relay=127.0.0.1[127.0.0.1]:{}", pf.port());
    assert!(
        got.iter().any(|l| l.contains("to=<root@peer.test>")
            && l.contains(&relay)
            && l.contains("dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as ")),
        "{got:?}\n{log}"
    );
    // Postfix's smtpd logged the login (Dovecot checked the password).
    // (Its delivery line comes after the session's lines: wait for that one.)
    let pflog = wait_for(|| pf.maillog(), "to=<root@peer.test>", 1);
    assert!(
        pflog.contains("sasl_method=PLAIN, sasl_username=tern"),
        "{pflog}"
    );
    assert!(!log.contains("s3cret"), "{log}");
}

#[test]
fn wrong_password_stays_deferred() {
    let dovecot = Dovecot::start_auth(&[("tern", "s3cret-pw")]).expect("private Dovecot");
    let pf = peer(&dovecot);
    let tern = tern(pf.port(), "inline:{ 127.0.0.1=tern:wrong }");
    let id = send(&tern);
    let log = tern.wait("status=deferred", 1);
    let got = lines(&log, "postfix/smtp", &id);
    let want = "dsn=4.7.8, status=deferred (SASL authentication failed; server \
                127.0.0.1[127.0.0.1] said: 535 5.7.8 Error: authentication failed: ";
    assert!(
        got.iter()
            .any(|l| l.contains("to=<root@peer.test>") && l.contains(want)),
        "{got:?}\n{log}\n{}",
        pf.maillog()
    );
    assert!(!log.contains(&format!("{id}: removed")), "{log}");
    assert!(!log.contains("wrong"), "{log}");
}
