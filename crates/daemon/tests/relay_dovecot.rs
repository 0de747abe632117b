//! lmtp(8) in the daemon against Debian's Dovecot (tern_testkit::dovecot): mail for one
//! domain goes over TCP, for another over Dovecot's unix socket, and lands in the users'
//! Maildirs; an unknown user is bounced with Dovecot's per-recipient reply. The same
//! setup drives Debian's Postfix in crates/testkit/tests/lmtp_dovecot_postfix.rs, whose
//! log lines these are compared with. Needs `cargo build -p tern-commands`, root,
//! dovecot-core and dovecot-lmtpd; fails, never skips, without them.

mod relay_util;

use relay_util::{Instance, lines};
use tern_testkit::dovecot::Dovecot;
use tern_testkit::support::smtplib_send;

fn text(m: &[u8]) -> String {
    String::from_utf8_lossy(m).into_owned()
}

#[test]
fn lmtp_to_dovecot_over_tcp_and_unix_socket() {
    let dovecot =
        Dovecot::start_with_users(&["bob@lmtp.test", "carol@sock.test"]).expect("private Dovecot");
    let tern = Instance::start(
        &format!(
            "transport_maps = inline:{{ lmtp.test=lmtp:inet:127.0.0.1:{}, sock.test=lmtp:unix:{} }}",
            dovecot.port(),
            dovecot.socket_path().display()
        ),
        "",
        &[],
    );
    let id = smtplib_send(
        tern.t.port,
        "alice@example.org",
        &["bob@lmtp.test", "carol+box@sock.test", "ghost@lmtp.test"],
        "From: alice@example.org\r\nSubject: to dovecot\r\n\r\nHello, Dovecot.\r\n",
    );
    let bob = dovecot.wait_for_messages("bob@lmtp.test", 1);
    let carol = dovecot.wait_for_messages("carol@sock.test", 1);
    let log = tern.wait(&format!("{id}: removed"), 1);
    assert_eq!((bob.len(), carol.len()), (1, 1), "{log}\n{}", dovecot.log());
    for (m, rcpt) in [
        (&bob[0], "bob@lmtp.test"),
        (&carol[0], "carol+box@sock.test"),
    ] {
        let m = text(m);
        assert!(m.contains("Subject: to dovecot\n"), "{m}");
        assert!(m.ends_with("\nHello, Dovecot.\n"), "{m}");
        assert!(m.contains(&format!("Delivered-To: {rcpt}\n")), "{m}");
        assert!(m.starts_with("Return-Path: <alice@example.org>\n"), "{m}");
    }
    let got = lines(&log, "postfix/lmtp", &id);
    let tcp = format!("relay=127.0.0.1[127.0.0.1]:{}", dovecot.port());
    // A unix-domain next hop is named after myhostname (smtp_connect.c), as Debian's
    // Postfix logs it.
    let unix = format!("relay=mx.example.test[{}]", dovecot.socket_path().display());
    let find = |to: &str| {
        got.iter()
            .find(|l| l.contains(&format!("to=<{to}>")))
            .cloned()
            .unwrap_or_else(|| panic!("no line for {to}:\n{log}"))
    };
    let b = find("bob@lmtp.test");
    assert!(
        b.contains(&tcp) && b.contains("dsn=2.0.0, status=sent (250 2.0.0 <bob@lmtp.test> "),
        "{b}"
    );
    let c = find("carol+box@sock.test");
    assert!(
        c.contains(&unix) && c.contains("status=sent (250 2.0.0 <carol+box@sock.test> "),
        "{c}"
    );
    let g = find("ghost@lmtp.test");
    assert!(
        g.contains(&tcp)
            && g.contains(
                "dsn=5.1.1, status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.1.1 \
                 <ghost@lmtp.test> User doesn't exist: ghost@lmtp.test (in reply to RCPT TO command))"
            ),
        "{g}"
    );
}
