//! The relay policy (tern_rewrite) and cleanup's header work (tern_message) in the running
//! daemon, with the replies Debian's Postfix 3.7.11 gives for the same main.cf (observed
//! with a private instance as in /work/shared/POSTFIX-REFERENCE.md): a client outside
//! mynetworks relaying gets `454 4.7.1` at compatibility_level 3.6's default
//! smtpd_relay_restrictions and `554 5.7.1` with reject_unauth_destination; a message
//! with 51 Received: headers gets `554 5.4.0 Error: too many hops`.

use std::process::Command;

use tern_queue::{QueueFile, QueueLayout, QueueName};
use tern_testkit::tern::Tern;

/// Runs a Python smtplib script (`PORT` replaced); returns its standard output.
fn python(t: &Tern, script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script.replace("PORT", &t.port.to_string()))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// RCPT TO a remote domain from 127.0.0.2 (outside mynetworks = 127.0.0.1/32).
const RELAY: &str = r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", PORT, timeout=30, source_address=("127.0.0.2", 0))
s.ehlo("client.example")
s.mail("a@example.org")
code, text = s.rcpt("x@elsewhere.example")
print(code, text.decode())
s.quit()
"#;

#[test]
fn relay_denied_outside_mynetworks() {
    for (extra, want) in [
        (
            "mynetworks = 127.0.0.1/32",
            "454 4.7.1 <x@elsewhere.example>: Relay access denied",
        ),
        (
            "mynetworks = 127.0.0.1/32\n\
             smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination",
            "554 5.7.1 <x@elsewhere.example>: Relay access denied",
        ),
    ] {
        let t = Tern::start(extra).expect("start");
        assert_eq!(python(&t, RELAY).trim(), want, "{extra}");
        let line = format!(
            "NOQUEUE: reject: RCPT from unknown[127.0.0.2]: {want}; \
             from=<a@example.org> to=<x@elsewhere.example> proto=ESMTP helo=<client.example>"
        );
        assert!(t.log().contains(&line), "{line}\n{}", t.log());
    }
}

fn stored(t: &Tern) -> Vec<(String, String)> {
    let layout = QueueLayout::new(t.queue_dir());
    // A journaled file gets its name just after its 250 (docs/queue-format.md).
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut out = Vec::new();
    for e in tern_queue::scan(&layout, QueueName::Incoming)
        .expect("scan")
        .entries
    {
        let f = QueueFile::open(&e.path).expect("queue file");
        let mut body = Vec::new();
        let mut src = std::fs::File::open(&e.path).expect("open");
        f.copy_content(&mut src, &mut body).expect("content");
        let id = e
            .path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        out.push((id, String::from_utf8(body).expect("utf8")));
    }
    out
}

#[test]
fn received_message_id_date_from() {
    let t = Tern::start("").expect("start");
    python(
        &t,
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", PORT, timeout=30)
s.ehlo("client.example")
s.sendmail("a@example.org", ["root@localhost"], b"Subject: hi\r\n\r\nbody\r\n")
s.quit()
"#,
    );
    let msgs = stored(&t);
    assert_eq!(msgs.len(), 1);
    let (id, c) = &msgs[0];
    let head = format!(
        "Received: from client.example (localhost [127.0.0.1])\n\tby mx.example.test \
         (Postfix) with ESMTP id {id}\n\tfor <root@localhost>; "
    );
    assert!(c.starts_with(&head), "{c}");
    // Postfix's form: <YYYYMMDDhhmmss.QUEUEID@myhostname>.
    let at = c.find("\nMessage-Id: <").expect("Message-Id") + "\nMessage-Id: <".len();
    let value = &c[at..at + c[at..].find('>').expect(">")];
    let (stamp, rest) = value.split_once('.').expect("dot");
    assert!(
        stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()),
        "{value}"
    );
    assert_eq!(rest, format!("{id}@mx.example.test"));
    // Local client (permit_inet_interfaces): Date: and From: are added too, in that order.
    let order = [
        "\nSubject: hi\n",
        "\nMessage-Id: <",
        "\nDate: ",
        "\nFrom: a@example.org\n\nbody\n",
    ];
    let mut pos = 0;
    for needle in order {
        let p = c[pos..]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} in {c}"));
        pos += p;
    }
    let log = t.log();
    assert!(
        log.contains("postfix/cleanup[") && log.contains(&format!("{id}: message-id=<{value}>")),
        "{log}"
    );
}

#[test]
fn too_many_hops() {
    let t = Tern::start("").expect("start");
    let out = python(
        &t,
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", PORT, timeout=30)
s.ehlo("client.example")
hops = b"".join(b"Received: from h%d by h%d; Thu, 26 Nov 2026 20:00:00 +0000\r\n" % (i, i)
                for i in range(51))
try:
    s.sendmail("a@example.org", ["root@localhost"], hops + b"Subject: loop\r\n\r\nbody\r\n")
    print("accepted")
except smtplib.SMTPDataError as e:
    print(e.smtp_code, e.smtp_error.decode())
s.quit()
"#,
    );
    assert_eq!(out.trim(), "554 5.4.0 Error: too many hops");
    assert!(stored(&t).is_empty());
    let log = t.log();
    assert!(
        log.contains(": message rejected: hopcount exceeded"),
        "{log}"
    );
}

/// Never an open relay: with no restriction that can refuse relaying (here the empty
/// defaults of compatibility_level 0), the daemon refuses to start, as Postfix's smtpd does.
#[test]
fn no_relay_limit_refuses_to_start() {
    let started = Tern::start("compatibility_level = 0\nsmtpd_relay_restrictions =\n");
    assert!(
        started.is_err(),
        "a daemon without a relay limit must not start"
    );
}
