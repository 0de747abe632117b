//! The Dovecot LMTP harness (tern_testkit::dovecot) proved with a client nobody here wrote:
//! a private Debian Postfix takes mail by SMTP and its lmtp(8) delivers it to the private
//! Dovecot, over TCP and over the unix socket, and Dovecot's Maildirs get it. Needs root,
//! Debian's postfix, dovecot-core and dovecot-lmtpd; fails, never skips, without them.

use std::os::unix::fs::MetadataExt;

use tern_testkit::dovecot::{Dovecot, MAIL_OWNER};
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::{smtplib_send, wait_for};

/// main.cf lines that relay `lmtp.test` to Dovecot's TCP listener and `sock.test` to its
/// unix socket (relay_domains: any recipient is accepted, as relay_recipient_maps is
/// empty; transport_maps picks the lmtp(8) next hop, transport(5)).
fn postfix_to(dovecot: &Dovecot) -> String {
    format!(
        "relay_domains = lmtp.test, sock.test\n\
         transport_maps = inline:{{ lmtp.test=lmtp:inet:127.0.0.1:{}, sock.test=lmtp:unix:{} }}\n",
        dovecot.port(),
        dovecot.socket_path().display()
    )
}

fn text(m: &[u8]) -> String {
    String::from_utf8_lossy(m).into_owned()
}

#[test]
fn postfix_lmtp_delivers_to_dovecot_over_tcp_and_unix_socket() {
    let dovecot = Dovecot::start().expect("private Dovecot");
    let pf = PostfixInstance::start(&postfix_to(&dovecot)).expect("private Postfix");
    let data = "From: a@example.test\r\nSubject: lmtp harness\r\n\r\nHello, Dovecot.\r\n";
    smtplib_send(
        pf.port(),
        "a@example.test",
        &["bob@lmtp.test", "carol+box@sock.test"],
        data,
    );

    let bob = dovecot.wait_for_messages("bob@lmtp.test", 1);
    // Dovecot's user name drops the +detail; the message still goes to INBOX.
    let carol = dovecot.wait_for_messages("carol@sock.test", 1);
    let log = wait_for(|| pf.maillog(), "status=sent", 2);
    assert_eq!(
        bob.len(),
        1,
        "bob: maillog:\n{log}\ndovecot:\n{}",
        dovecot.log()
    );
    assert_eq!(
        carol.len(),
        1,
        "carol: maillog:\n{log}\ndovecot:\n{}",
        dovecot.log()
    );
    for (m, rcpt) in [
        (&bob[0], "bob@lmtp.test"),
        (&carol[0], "carol+box@sock.test"),
    ] {
        let m = text(m);
        assert!(m.contains("Subject: lmtp harness\n"), "{m}");
        assert!(m.ends_with("\nHello, Dovecot.\n"), "{m}");
        assert!(m.contains(&format!("Delivered-To: {rcpt}\n")), "{m}");
        assert!(m.starts_with("Return-Path: <a@example.test>\n"), "{m}");
    }

    // Postfix's own record of the two LMTP deliveries: the TCP and the unix next hop.
    let tcp_relay = format!("relay=127.0.0.1[127.0.0.1]:{}", dovecot.port());
    let sent: Vec<&str> = log.lines().filter(|l| l.contains("status=sent")).collect();
    assert!(
        sent.iter()
            .any(|l| l.contains("postfix/lmtp[") && l.contains(&tcp_relay)),
        "{log}"
    );
    // Postfix names a unix-domain next hop `relay=$myhostname[PATH]` (lmtp(8) uses
    // var_myhostname as the host name of a local socket: smtp_connect.c).
    let unix_relay = format!(
        "relay={}[{}]",
        tern_testkit::postfix::MYHOSTNAME,
        dovecot.socket_path().display()
    );
    assert!(sent.iter().any(|l| l.contains(&unix_relay)), "{log}");
    assert!(
        sent.iter().all(|l| l.contains("status=sent (250 2.0.0 <")),
        "{log}"
    );

    // The files belong to the mail owner, not root.
    let owner = nix::unistd::User::from_name(MAIL_OWNER).unwrap().unwrap();
    let new = dovecot.maildir("bob@lmtp.test").join("new");
    let file = std::fs::read_dir(&new).unwrap().next().unwrap().unwrap();
    assert_eq!(file.metadata().unwrap().uid(), owner.uid.as_raw());
    assert!(
        dovecot.log().contains("lmtp(bob@lmtp.test)"),
        "{}",
        dovecot.log()
    );
}

#[test]
fn dovecot_rejects_unknown_users_per_recipient_and_postfix_bounces() {
    let dovecot =
        Dovecot::start_with_users(&["bob@lmtp.test", "sender@lmtp.test"]).expect("private Dovecot");
    let pf = PostfixInstance::start(&postfix_to(&dovecot)).expect("private Postfix");
    let data = "From: sender@lmtp.test\r\nSubject: one known, one not\r\n\r\nHi.\r\n";
    smtplib_send(
        pf.port(),
        "sender@lmtp.test",
        &["bob@lmtp.test", "ghost@lmtp.test"],
        data,
    );

    let bob = dovecot.wait_for_messages("bob@lmtp.test", 1);
    // The bounce for ghost comes back to the sender through the same LMTP next hop.
    let bounces = dovecot.wait_for_messages("sender@lmtp.test", 1);
    let log = wait_for(|| pf.maillog(), "status=sent", 2);
    assert_eq!(bob.len(), 1, "maillog:\n{log}\ndovecot:\n{}", dovecot.log());
    assert_eq!(
        bounces.len(),
        1,
        "maillog:\n{log}\ndovecot:\n{}",
        dovecot.log()
    );
    assert!(text(&bounces[0]).contains("<ghost@lmtp.test>"));
    let bounced = log
        .lines()
        .find(|l| l.contains("to=<ghost@lmtp.test>") && l.contains("status=bounced"))
        .unwrap_or_else(|| panic!("no bounce for ghost:\n{log}"));
    assert!(
        bounced.contains("said: 550 5.1.1 <ghost@lmtp.test> User doesn't exist: ghost@lmtp.test"),
        "{bounced}"
    );
    assert!(dovecot.messages("ghost@lmtp.test").is_empty());
}

/// The processes whose title names this instance (`dovecot-tern-test-PORT/...`, from
/// `instance_name`) or that run its configuration file.
fn processes_of(dovecot_port: u16, conf: &str) -> Vec<String> {
    let tag = format!("tern-test-{dovecot_port}");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&tag) || c.contains(conf))
        .collect()
}

#[test]
fn dovecot_answers_on_the_unix_socket_and_stops_on_drop() {
    let dovecot = Dovecot::start().expect("private Dovecot");
    let (port, conf) = (
        dovecot.port(),
        dovecot.dir().join("dovecot.conf").display().to_string(),
    );
    // LHLO over the unix socket, as an lmtp:unix: client would speak it.
    let script = format!(
        r#"
import smtplib
s = smtplib.LMTP({:?}, timeout=10)
code, _ = s.ehlo("tern.test")
assert code == 250, code
s.quit()
print("ok")
"#,
        dovecot.socket_path().display().to_string()
    );
    assert_eq!(tern_testkit::support::python(&script).trim(), "ok");
    assert!(
        !processes_of(port, &conf).is_empty(),
        "no Dovecot processes?"
    );
    let dir = dovecot.dir().to_path_buf();
    drop(dovecot);
    let left = processes_of(port, &conf);
    assert!(left.is_empty(), "left running after drop: {left:?}");
    assert!(!dir.exists(), "{} stays", dir.display());
}
