//! header_checks and body_checks (regexp tables) side by side with Debian's Postfix
//! 3.7.11: the same main.cf and tables, the same messages by SMTP. Equal for both: the
//! reply to each message's end of data (REJECT with and without text, a 4.x.x REJECT,
//! HOLD, DISCARD, a body REJECT), the cleanup log lines of every action (`reject:`,
//! `hold:`, `discard:`, `warning:`, `replace:`, `prepend:`, ...; queue ids made equal),
//! and the delivered message's header names and body (IGNORE, REPLACE and PREPEND on
//! headers and on body lines).
//!
//! Needs root, Debian's postfix, python3, and `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

mod deliver_util;

use std::path::Path;
use std::time::Duration;

use deliver_util::{TestUser, configure_with_spool};
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::{python, wait_until};

const HEADER_CHECKS: &str = r#"/^Subject: reject me$/ REJECT
/^Subject: reject text$/ REJECT 5.7.0 not wanted here
/^Subject: defer me$/ REJECT 4.7.1 come back later
/^Subject: hold me$/ HOLD
/^Subject: discard me$/ DISCARD
/^X-Drop:/ IGNORE
/^X-Old:/ REPLACE X-New: replaced
/^Subject: keep me$/ PREPEND X-Prepended: yes
/^X-Warn:/ WARN looked at
/^X-Info:/ INFO noted
/^Content-(Type|Disposition):.*name="?[^"]*\.exe"?/ REJECT attachment not allowed
/^X-Part-Drop:/ IGNORE
/^X-Nested: note/ WARN nested header seen
/^Content-Type: text\/x-old/ REPLACE Content-Type: text/plain
"#;

const BODY_CHECKS: &str = "\
/^BODY-REJECT$/ REJECT body refused
/^BODY-DROP$/ IGNORE
/^BODY-REPLACE$/ REPLACE replaced body line
/^BODY-PREPEND$/ PREPEND a line before
";

/// (subject, extra headers, body lines) of each message, in order.
const MESSAGES: &[(&str, &str, &str)] = &[
    ("reject me", "", "x"),
    ("reject text", "", "x"),
    ("defer me", "", "x"),
    ("hold me", "", "x"),
    ("discard me", "", "x"),
    ("body reject", "", "first\r\nBODY-REJECT\r\nlast"),
    (
        "mime exe",
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n",
        "preamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XX\r\n\
         Content-Type: application/octet-stream;\r\n\tname=\"evil.exe\"\r\n\r\nAAAA\r\n--XX--",
    ),
    (
        "mime keep",
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n",
        "preamble\r\n--XX\r\nContent-Type: text/x-old\r\nX-Part-Drop: yes\r\n\r\nhello\r\n\
         BODY-REPLACE\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\
         X-Nested: note\r\n\r\ninner body\r\n--XX--\r\nepilogue",
    ),
    (
        "keep me",
        "X-Drop: gone\r\nX-Old: old value\r\nX-Warn: yes\r\nX-Info: yes\r\n",
        "first\r\nBODY-DROP\r\nBODY-REPLACE\r\nBODY-PREPEND\r\nlast",
    ),
];

/// Sends each message in its own session; returns the replies to the end of data.
fn send_all(port: u16, to: &str) -> Vec<String> {
    MESSAGES
        .iter()
        .map(|(subject, extra, body)| {
            let data =
                format!("Subject: {subject}\r\nFrom: a@example.org\r\n{extra}\r\n{body}\r\n");
            let script = format!(
                r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
s.ehlo("client.example")
s.mail("a@example.org")
s.rcpt({to:?})
code, text = s.data({data:?}.encode())
print(code, text.decode())
s.quit()
"#
            );
            let reply = python(&script).trim().to_owned();
            // Queue ids differ between the servers.
            match reply.split_once(" queued as ") {
                Some((head, _)) => format!("{head} queued as ID"),
                None => reply,
            }
        })
        .collect()
}

/// cleanup's action lines (and warnings) of a log, from the action on, queue ids replaced
/// by their order of appearance.
fn actions(log: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in log.lines().filter(|l| l.contains("/cleanup[")) {
        let Some((_, text)) = line.split_once("]: ") else {
            continue;
        };
        let (id, rest) = text.split_once(": ").unwrap_or(("", text));
        let known = [
            "reject:", "hold:", "discard:", "warning:", "info:", "replace:", "prepend:",
        ];
        if !known.iter().any(|k| rest.starts_with(k)) {
            continue;
        }
        let n = ids.iter().position(|i| i == id).unwrap_or_else(|| {
            ids.push(id.to_owned());
            ids.len() - 1
        });
        out.push(format!("Q{n}: {rest}"));
    }
    out
}

/// The delivered message `subject` from an mbox: its header names and its body.
fn delivered(mbox: &Path, subject: &str) -> Option<(Vec<String>, String)> {
    let text = std::fs::read_to_string(mbox).ok()?;
    let msg = text
        .split("\nFrom ")
        .find(|m| m.contains(&format!("\nSubject: {subject}\n")))?;
    let (head, body) = msg.split_once("\n\n")?;
    let names = head
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with([' ', '\t']))
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_owned()))
        .collect();
    Some((names, body.trim_end().to_owned()))
}

#[test]
fn header_and_body_checks_side_by_side() {
    let user = TestUser::new("tern-t-hc", None);
    let to = format!("{}@mx.example.test", user.name);
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let hc = dir.path().join("header_checks");
    let bc = dir.path().join("body_checks");
    std::fs::write(&hc, HEADER_CHECKS).unwrap();
    std::fs::write(&bc, BODY_CHECKS).unwrap();
    let main = format!(
        "header_checks = regexp:{}\nbody_checks = regexp:{}\n",
        hc.display(),
        bc.display()
    );

    let pf = PostfixInstance::start(&main).expect("Debian's Postfix");
    let pf_replies = send_all(pf.port(), &to);
    let pf_mbox = pf.dir().join("spool").join(&user.name);
    assert!(
        wait_until(Duration::from_secs(30), || delivered(&pf_mbox, "keep me")
            .is_some()),
        "{}",
        pf.maillog()
    );

    let (mut t, mail) = configure_with_spool(&main);
    t.launch().expect("launch");
    let replies = send_all(t.port, &to);
    let mbox = mail.join(&user.name);
    assert!(
        wait_until(Duration::from_secs(30), || delivered(&mbox, "keep me")
            .is_some()),
        "{}",
        t.log()
    );

    assert_eq!(
        pf_replies,
        replies,
        "replies (Postfix, Tern)\n{}",
        std::fs::read_to_string(&mbox).unwrap_or_default()
    );
    assert!(replies[0].starts_with("550 5.7.1 message content rejected"));
    let want = actions(&pf.maillog());
    eprintln!("cleanup's lines:\n{}", want.join("\n"));
    assert!(want.len() >= 12, "{want:#?}");
    assert_eq!(
        want,
        actions(&t.log()),
        "Postfix log:\n{}\nTern log:\n{}",
        pf.maillog(),
        t.log()
    );
    for subject in ["keep me", "mime keep"] {
        let d = delivered(&mbox, subject);
        assert!(d.is_some(), "{subject} not delivered by Tern:\n{}", t.log());
        assert_eq!(
            delivered(&pf_mbox, subject),
            d,
            "{subject}: Postfix:\n{}\nTern:\n{}",
            std::fs::read_to_string(&pf_mbox).unwrap_or_default(),
            std::fs::read_to_string(&mbox).unwrap_or_default()
        );
    }
    let mime = delivered(&mbox, "mime keep").unwrap().1;
    assert!(
        !mime.contains("X-Part-Drop") && mime.contains("Content-Type: text/plain"),
        "{mime}"
    );
    assert_eq!(
        delivered(&pf_mbox, "keep me"),
        delivered(&mbox, "keep me"),
        "Postfix:\n{}\nTern:\n{}",
        std::fs::read_to_string(&pf_mbox).unwrap_or_default(),
        std::fs::read_to_string(&mbox).unwrap_or_default()
    );
    // Held in hold/, the discarded one nowhere, neither delivered.
    for s in ["hold me", "discard me"] {
        assert!(delivered(&mbox, s).is_none(), "{s}");
    }
    let held = std::fs::read_dir(t.queue_dir().join("hold"))
        .unwrap()
        .count();
    assert_eq!(held, 1, "{}", t.log());
}
