//! Secure submission end to end (issue 9): a real Tern daemon with a submission listener
//! carrying the `-o` settings of the stock master.cf's `submission` entry (conf/master.cf,
//! Postfix 3.7's: smtpd_tls_security_level=encrypt, smtpd_sasl_auth_enable=yes,
//! smtpd_tls_auth_only=yes, smtpd_recipient_restrictions=permit_sasl_authenticated,reject),
//! STARTTLS with a test CA's certificate, swaks as the mail program, and
//!
//! - Debian's Dovecot as the SASL back end (`smtpd_sasl_type = dovecot`): PLAIN and LOGIN
//!   with the right password relay to a remote domain (smtp-sink as the relayhost gets the
//!   message); a wrong password gets `535 5.7.8`; no AUTH gets Postfix's `554 5.7.1 <rcpt>:
//!   Recipient address rejected: Access denied`; before STARTTLS, EHLO offers no AUTH and
//!   MAIL gets `530 5.7.0 Must issue a STARTTLS command first`;
//! - the built-in back end (`smtpd_sasl_type = tern`, a table made by `tern-saslpasswd`)
//!   the same, without Dovecot.
//!
//! Needs root, swaks, openssl, Debian's Dovecot (dovecot-core) and Postfix (smtp-sink), and
//! `cargo build -p tern-commands --bins`; fails, never skips, without them.

// Test code: a failure is the test's failure.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use tern_testkit::dovecot::Dovecot;
use tern_testkit::peers::smtp_sink;
use tern_testkit::support::wait_for;
use tern_testkit::tern::{Tern, free_port, postfix_binary};
use tern_testkit::tlscerts::TestCa;

/// The stock submission entry's `-o` settings (conf/master.cf).
const SUBMISSION_OPTS: &str = "-o syslog_name=postfix/submission \
    -o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes \
    -o smtpd_tls_auth_only=yes -o smtpd_reject_unlisted_recipient=no \
    -o smtpd_client_restrictions= -o smtpd_helo_restrictions= \
    -o smtpd_sender_restrictions= -o smtpd_relay_restrictions= \
    -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject \
    -o milter_macro_daemon_name=ORIGINATING";

fn swaks(args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("60")
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

/// A Tern daemon with `sasl_main` (the back end), TLS, the relayhost `sink_port`, and a
/// submission listener; returns it and the submission port.
fn tern(ca: &TestCa, sasl_main: &str, sink_port: u16) -> (Tern, u16) {
    let leaf = ca.leaf("mx.example.test").expect("leaf");
    let mut t = Tern::configure(&format!(
        "smtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\nsmtpd_tls_loglevel = 1\n\
         relayhost = [127.0.0.1]:{sink_port}\n{sasl_main}",
        leaf.cert.display(),
        leaf.key.display(),
    ))
    .expect("tern");
    let submission = free_port().expect("port");
    t.write_master_cf(&format!(
        "127.0.0.1:{} inet n - n - - smtpd\n\
         127.0.0.1:{submission} inet n - n - - smtpd {SUBMISSION_OPTS}\n\
         qmgr unix n - n 300 1 qmgr\n\
         smtp unix - - n - - smtp\n\
         relay unix - - n - - smtp\n\
         local unix - n n - - local\n",
        t.port
    ))
    .expect("master.cf");
    t.launch()
        .unwrap_or_else(|e| panic!("launch: {e}\n{}", t.log()));
    (t, submission)
}

/// The EHLO reply before STARTTLS, and MAIL's reply then (plain TCP).
fn before_starttls(port: u16) -> (String, String) {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut read_reply = || {
        let mut all = String::new();
        for _ in 0..50 {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                break;
            }
        }
        all
    };
    read_reply();
    w.write_all(b"EHLO client.example\r\n").unwrap();
    let ehlo = read_reply();
    w.write_all(b"MAIL FROM:<alice@example.org>\r\n").unwrap();
    let mail = read_reply();
    let _ = w.write_all(b"QUIT\r\n");
    (ehlo, mail)
}

fn submit(port: u16, auth: Option<(&str, &str, &str)>, to: &str) -> String {
    let p = port.to_string();
    let mut args = vec![
        "--server",
        "127.0.0.1",
        "--port",
        &p,
        "--tls",
        "--from",
        "alice@example.org",
        "--to",
        to,
        "--helo",
        "client.example",
    ];
    if let Some((mech, user, pass)) = auth {
        args.extend(["--auth", mech, "--auth-user", user, "--auth-password", pass]);
    }
    swaks(&args)
}

/// Every acceptance point on one daemon whose back end knows alice / s3cret.
fn check_submission(t: &Tern, port: u16, sink: &tern_testkit::peers::Peer) {
    let (ehlo, mail) = before_starttls(port);
    assert!(ehlo.contains("250-STARTTLS"), "{ehlo}");
    assert!(
        !ehlo.contains("AUTH"),
        "AUTH offered before STARTTLS:\n{ehlo}"
    );
    assert!(
        mail.starts_with("530 5.7.0 Must issue a STARTTLS command first"),
        "{mail}"
    );
    for (i, mech) in ["PLAIN", "LOGIN"].iter().enumerate() {
        let rcpt = format!("bob{i}@remote.example");
        let out = submit(port, Some((mech, "alice", "s3cret")), &rcpt);
        assert!(out.contains("250-AUTH PLAIN LOGIN"), "{out}");
        assert!(out.contains("235 2.7.0 Authentication successful"), "{out}");
        assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
        let log = wait_for(|| t.log(), &format!("to=<{rcpt}>, relay=127.0.0.1"), 1);
        assert!(
            log.contains(&format!("sasl_method={mech}, sasl_username=alice")),
            "{log}"
        );
        let got = wait_for(
            || std::fs::read_to_string(&sink.record).unwrap_or_default(),
            &rcpt,
            1,
        );
        assert!(got.contains(&rcpt), "{got}");
    }
    let out = submit(
        port,
        Some(("PLAIN", "alice", "wrong")),
        "bob@remote.example",
    );
    assert!(
        out.contains("535 5.7.8 Error: authentication failed"),
        "{out}"
    );
    let log = t.log();
    assert!(log.contains("SASL PLAIN authentication failed"), "{log}");
    let out = submit(port, None, "carol@remote.example");
    assert!(
        out.contains("554 5.7.1 <carol@remote.example>: Recipient address rejected: Access denied"),
        "{out}"
    );
}

#[test]
fn submission_with_dovecot() {
    let ca = TestCa::new().expect("test CA");
    let dovecot = Dovecot::start_auth(&[("alice", "s3cret")]).expect("Debian's Dovecot");
    let sink = smtp_sink(&[]).expect("smtp-sink");
    let (t, port) = tern(
        &ca,
        &format!(
            "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = {}\n",
            dovecot.auth_socket_path().display()
        ),
        sink.port,
    );
    check_submission(&t, port, &sink);
}

#[test]
fn submission_with_the_built_in_table() {
    let ca = TestCa::new().expect("test CA");
    let sink = smtp_sink(&[]).expect("smtp-sink");
    let dir = tempfile::Builder::new().prefix("sasl.").tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let table = dir.path().join("sasl_users");
    let cmd = postfix_binary().unwrap().with_file_name("tern-saslpasswd");
    let mut child = Command::new(&cmd)
        .arg("-f")
        .arg(&table)
        .arg("alice")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", cmd.display()));
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    {
        use std::os::unix::fs::PermissionsExt;
        // The daemon reads it as mail_owner.
        std::fs::set_permissions(&table, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (t, port) = tern(
        &ca,
        &format!(
            "smtpd_sasl_type = tern\nsmtpd_sasl_path = {}\n",
            table.display()
        ),
        sink.port,
    );
    check_submission(&t, port, &sink);
}

/// smtpd_client_auth_rate_limit and smtpd_client_new_tls_session_rate_limit (anvil): the
/// second AUTH in the time unit gets `450 4.7.1 Error: too many AUTH commands from ADDR`;
/// the second new TLS session is counted after its handshake and ended with a 421, the
/// third is refused before it (`454 4.7.0 Error: too many new TLS sessions from
/// NAME[ADDR]`). smtpd.c's texts.
#[test]
fn auth_and_new_tls_session_rate_limits() {
    let ca = TestCa::new().expect("test CA");
    let sink = smtp_sink(&[]).expect("smtp-sink");
    let dovecot = Dovecot::start_auth(&[("alice", "s3cret")]).expect("Debian's Dovecot");
    let (t, port) = tern(
        &ca,
        &format!(
            "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = {}\n\
             smtpd_client_event_limit_exceptions =\n\
             smtpd_client_auth_rate_limit = 1\n\
             smtpd_client_new_tls_session_rate_limit = 100\n\
             anvil_rate_time_unit = 60s\n",
            dovecot.auth_socket_path().display()
        ),
        sink.port,
    );
    let first = submit(
        port,
        Some(("PLAIN", "alice", "s3cret")),
        "bob@remote.example",
    );
    assert!(
        first.contains("235 2.7.0 Authentication successful"),
        "{first}"
    );
    let second = submit(
        port,
        Some(("PLAIN", "alice", "s3cret")),
        "bob@remote.example",
    );
    assert!(
        second.contains("450 4.7.1 Error: too many AUTH commands from 127.0.0.1"),
        "{second}"
    );
    let log = t.log();
    assert!(
        log.contains(
            "warning: AUTH command rate limit exceeded: 2 from localhost[127.0.0.1] for service"
        ),
        "{log}"
    );

    let ca2 = TestCa::new().expect("test CA");
    let (t2, port2) = tern(
        &ca2,
        &format!(
            "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = {}\n\
             smtpd_client_event_limit_exceptions =\n\
             smtpd_client_new_tls_session_rate_limit = 1\nanvil_rate_time_unit = 60s\n",
            dovecot.auth_socket_path().display()
        ),
        sink.port,
    );
    let _ = t2.log();
    let ok = submit(port2, None, "root@localhost");
    assert!(ok.contains("220 2.0.0 Ready to start TLS"), "{ok}");
    let second = submit(port2, None, "root@localhost");
    assert!(
        second.contains("421 4.7.0 ")
            && second.contains("Error: too many new TLS sessions from localhost[127.0.0.1]"),
        "{second}"
    );
    let third = submit(port2, None, "root@localhost");
    assert!(
        third.contains("454 4.7.0 Error: too many new TLS sessions from localhost[127.0.0.1]"),
        "{third}"
    );
    let log = t2.log();
    assert!(
        log.contains("warning: New TLS session rate limit exceeded: 2 from localhost[127.0.0.1]"),
        "{log}"
    );
    assert!(
        log.contains("warning: Refusing STARTTLS request from localhost[127.0.0.1]"),
        "{log}"
    );
}

/// smtpd_sasl_exceptions_networks (smtpd.c sasl_client_exception()): EHLO offers no AUTH
/// to a listed client, but its AUTH command still works (Postfix only hides the keyword,
/// for clients that try AUTH whenever it is offered); other clients see AUTH.
#[test]
fn sasl_exceptions_networks_hide_auth_in_ehlo() {
    let ca = TestCa::new().expect("test CA");
    let sink = smtp_sink(&[]).expect("smtp-sink");
    let dovecot = Dovecot::start_auth(&[("alice", "s3cret")]).expect("Debian's Dovecot");
    let (_t, port) = tern(
        &ca,
        &format!(
            "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = {}\n\
             smtpd_sasl_exceptions_networks = 127.0.0.1/32\n",
            dovecot.auth_socket_path().display()
        ),
        sink.port,
    );
    // From each client address: STARTTLS, EHLO, whether AUTH was offered, and AUTH
    // PLAIN's reply code anyway.
    let probe = |source: &str| -> String {
        tern_testkit::support::python(&format!(
            r#"
import smtplib, ssl, base64
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30, source_address=("{source}", 0))
s.ehlo("client.example")
s.starttls(context=ssl._create_unverified_context())
s.ehlo("client.example")
code, _ = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0s3cret").decode())
print("offered" if s.has_extn("auth") else "hidden", code)
s.quit()
"#
        ))
        .trim()
        .to_owned()
    };
    assert_eq!(probe("127.0.0.1"), "hidden 235");
    assert_eq!(probe("127.0.0.2"), "offered 235");
}
