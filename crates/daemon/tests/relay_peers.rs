//! smtp(8) and lmtp(8) in the daemon against real servers: aiosmtpd records the DSN
//! (NOTIFY, ORCPT, ENVID, RET) and SMTPUTF8 parameters as the client gave them to Tern;
//! a private Debian Postfix delivers what Tern relays to a local mailbox; an LMTP server
//! answers each recipient after the dot. Needs `cargo build -p tern-commands`, root,
//! Debian's Postfix and python3-aiosmtpd.

mod relay_util;

use std::time::Duration;

use relay_util::{Instance, lines, wait_file};
use tern_testkit::peers::{ScriptedServer, Step, aiosmtpd_recorder, expect, send};
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::{python, smtplib_send};

#[test]
fn dsn_and_smtputf8_parameters_reach_the_next_server() {
    let peer = aiosmtpd_recorder(true).expect("aiosmtpd");
    let tern = Instance::start(&format!("relayhost = [127.0.0.1]:{}", peer.port), "", &[]);
    let script = format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
s.ehlo("client.example")
code, text = s.mail("alice@example.org", ["RET=HDRS", "ENVID=QQ+2Bid"])
assert code == 250, text
code, text = s.rcpt("bob@example.com", ["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;orig@example.com"])
assert code == 250, text
code, text = s.rcpt("carol@example.com", ["NOTIFY=NEVER"])
assert code == 250, text
code, text = s.data(b"Subject: dsn\r\n\r\nwith dsn\r\n")
assert code == 250, text
s.rset()
code, text = s.mail("alice@example.org", ["SMTPUTF8", "BODY=8BITMIME"])
assert code == 250, text
code, text = s.rcpt("d\u00f8rte@example.com")
assert code == 250, text
code, text = s.data("Subject: caf\u00e9\r\n\r\nutf-8 body \u00e6\r\n".encode())
assert code == 250, text
s.quit()
"#,
        port = tern.t.port
    );
    python(&script);
    wait_file(&peer.record, "RCPT TO:<d\u{f8}rte@example.com>");
    let record = wait_file(&peer.record, "RCPT TO:<bob@example.com>");
    let blocks: Vec<Vec<&str>> = record
        .split("\n\n")
        .filter(|b| !b.is_empty())
        .map(|b| b.lines().filter(|l| !l.starts_with("CONTENT ")).collect())
        .collect();
    // The two messages may arrive in either order; no third (no success notice: the
    // next server offers DSN and reports NOTIFY=SUCCESS itself).
    assert_eq!(blocks.len(), 2, "{record}\n{}", tern.log());
    let dsn = blocks
        .iter()
        .find(|b| b.iter().any(|l| l.contains("bob@")))
        .expect("the DSN message");
    let size = dsn[0]
        .split(' ')
        .find_map(|w| w.strip_prefix("SIZE="))
        .expect("SIZE=");
    assert_eq!(
        dsn[..],
        [
            format!("MAIL FROM:<alice@example.org> SIZE={size} ENVID=QQ+2Bid RET=HDRS").as_str(),
            "RCPT TO:<bob@example.com> ORCPT=rfc822;orig@example.com NOTIFY=SUCCESS,DELAY",
            "RCPT TO:<carol@example.com> ORCPT=rfc822;carol@example.com NOTIFY=NEVER",
        ],
        "{record}"
    );
    let utf8 = blocks
        .iter()
        .find(|b| b.iter().any(|l| l.contains("rte@")))
        .expect("the SMTPUTF8 message");
    assert!(
        utf8[0].starts_with("MAIL FROM:<alice@example.org> SIZE=")
            && utf8[0].ends_with(" BODY=8BITMIME SMTPUTF8"),
        "{record}"
    );
    assert!(
        utf8[1].starts_with("RCPT TO:<d\u{f8}rte@example.com>"),
        "{record}"
    );
    let log = tern.wait("status=sent (250 2.0.0 Ok: queued as RECORDED)", 3);
    assert_eq!(
        log.matches("status=sent (250 2.0.0 Ok: queued as RECORDED)")
            .count(),
        3,
        "{log}"
    );
    // A moment for a success notice that must not come.
    std::thread::sleep(Duration::from_secs(1));
    let record = std::fs::read_to_string(&peer.record).unwrap_or_default();
    assert!(!record.contains("MAIL FROM:<>"), "{record}\n{log}");
}

#[test]
fn relay_to_debian_postfix_that_delivers_locally() {
    let pf = PostfixInstance::start("mydestination = $myhostname, localhost, remote.test")
        .expect("postfix");
    let tern = Instance::start(
        &format!(
            "transport_maps = inline:{{ remote.test=relay:[127.0.0.1]:{} }}",
            pf.port()
        ),
        "",
        &[],
    );
    let id = smtplib_send(
        tern.t.port,
        "alice@example.org",
        &["nobody@remote.test"],
        "Subject: over the wire\r\n\r\nrelayed by tern\r\n",
    );
    let log = tern.wait(&format!("{id}: removed"), 1);
    let got = lines(&log, "postfix/smtp", &id);
    assert_eq!(got.len(), 1, "{log}");
    let want = format!(
        "QID: to=<nobody@remote.test>, relay=127.0.0.1[127.0.0.1]:{}, delay=N, delays=N, \
         dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as ",
        pf.port()
    );
    assert!(got[0].starts_with(&want), "{}\n{want}", got[0]);
    let mailbox = wait_file(&pf.dir().join("spool/nobody"), "relayed by tern");
    assert!(mailbox.contains("relayed by tern"), "{}", pf.maillog());
    assert!(mailbox.contains("Subject: over the wire"), "{mailbox}");
    // Postfix's own log has the delivery to the mailbox.
    let plog =
        tern_testkit::support::wait_for(|| pf.maillog(), "status=sent (delivered to mailbox)", 1);
    assert!(plog.contains("to=<nobody@remote.test>"), "{plog}");
}

#[test]
fn lmtp_replies_per_recipient() {
    let server = ScriptedServer::start(vec![
        send("220 lmtp.example LMTP ready"),
        expect("LHLO mx.example.test"),
        send("250 lmtp.example"),
        expect("MAIL FROM:<alice@example.org>"),
        send("250 2.1.0 Ok"),
        expect("RCPT TO:<a@lmtp.test>"),
        send("250 2.1.5 Ok"),
        expect("RCPT TO:<b@lmtp.test>"),
        send("250 2.1.5 Ok"),
        expect("DATA"),
        send("354 go ahead"),
        Step::ReadData,
        send("250 2.0.0 <a@lmtp.test> delivered"),
        send("452 4.2.2 <b@lmtp.test> mailbox full"),
        expect("QUIT"),
        send("221 2.0.0 Bye"),
        Step::Close,
    ]);
    let tern = Instance::start(
        &format!(
            "transport_maps = inline:{{ lmtp.test=lmtp:inet:127.0.0.1:{} }}",
            server.port
        ),
        "",
        &[],
    );
    let id = smtplib_send(
        tern.t.port,
        "alice@example.org",
        &["a@lmtp.test", "b@lmtp.test"],
        "Subject: lmtp\r\n\r\nx\r\n",
    );
    let log = tern.wait(&format!("{id}: to=<b@lmtp.test>"), 1);
    let relay = format!("127.0.0.1[127.0.0.1]:{}", server.port);
    let mut got = lines(&log, "postfix/lmtp", &id);
    got.sort();
    assert_eq!(
        got,
        [
            format!(
                "QID: to=<a@lmtp.test>, relay={relay}, delay=N, delays=N, dsn=2.0.0, \
                 status=sent (250 2.0.0 <a@lmtp.test> delivered)"
            ),
            format!(
                "QID: to=<b@lmtp.test>, relay={relay}, delay=N, delays=N, dsn=4.2.2, \
                 status=deferred (host 127.0.0.1[127.0.0.1] said: 452 4.2.2 <b@lmtp.test> \
                 mailbox full (in reply to end of DATA command))"
            ),
        ],
        "{log}"
    );
    let t = server.finish();
    assert_eq!(t.error, None, "{:?}", t.lines);
}

#[test]
fn starttls_to_debian_postfix_at_may() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=pf.example.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (Debian package openssl) is needed");
    assert!(made.status.success(), "{made:?}");
    let pf = PostfixInstance::start(&format!(
        "mydestination = $myhostname, localhost, remote.test\n\
         smtpd_tls_security_level = may\n\
         smtpd_tls_cert_file = {}\n\
         smtpd_tls_key_file = {}\n\
         smtpd_tls_received_header = yes",
        cert.display(),
        key.display()
    ))
    .expect("postfix");
    let tern = Instance::start(
        &format!(
            "transport_maps = inline:{{ remote.test=relay:[127.0.0.1]:{} }}\n\
             smtp_tls_security_level = may\nsmtp_tls_loglevel = 1",
            pf.port()
        ),
        "",
        &[],
    );
    let id = smtplib_send(
        tern.t.port,
        "alice@example.org",
        &["nobody@remote.test"],
        "Subject: tls\r\n\r\nover tls\r\n",
    );
    let log = tern.wait(&format!("{id}: removed"), 1);
    let summary = format!(
        "postfix/smtp[{}]: Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:{}: TLSv1.3 with cipher ",
        log.lines()
            .find_map(|l| l.split_once("postfix/smtp[").map(|(_, r)| r))
            .and_then(|r| r.split_once(']'))
            .map(|(pid, _)| pid.to_owned())
            .unwrap_or_default(),
        pf.port()
    );
    assert!(log.contains(&summary), "{summary}\n{log}");
    assert!(
        lines(&log, "postfix/smtp", &id)
            .iter()
            .any(|l| l.contains("status=sent (250 2.0.0 Ok: queued as ")),
        "{log}"
    );
    let mailbox = wait_file(&pf.dir().join("spool/nobody"), "over tls");
    assert!(mailbox.contains("(using TLSv1.3 with cipher "), "{mailbox}");
}
