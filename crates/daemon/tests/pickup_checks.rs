//! header_checks on mail submitted with sendmail (pickup), side by side with Debian's
//! Postfix 3.7.11: a rejected local submission is returned to its sender (cleanup logs the
//! reject and `to=<...>, relay=none, ..., dsn=5.7.1, status=bounced (message content
//! rejected)`, bounce(8) sends the non-delivery notice), and a message that passes gets
//! its PREPEND header. Equal for both: those log lines (queue ids and delays made
//! constant), the notice in the sender's mailbox, nothing for the recipient of the
//! rejected message.
//!
//! Needs root, Debian's postfix, and `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

mod deliver_util;

use std::path::Path;
use std::time::Duration;

use deliver_util::{TestUser, configure_with_spool, master_cf, sendmail_subject, tern_program};
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::{constant_fields, wait_until};

const DOMAIN: &str = "mx.example.test";

/// cleanup's and bounce's lines about the messages, queue ids replaced in order of
/// appearance, delays made constant.
fn lines(log: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in log.lines() {
        let Some((head, text)) = line.split_once("]: ") else {
            continue;
        };
        let program = head.rsplit(' ').next().unwrap_or("");
        let program = program.split('[').next().unwrap_or("");
        if program != "postfix/cleanup" && program != "postfix/bounce" {
            continue;
        }
        if text.contains("message-id=") {
            continue;
        }
        let mut t = text.to_owned();
        for word in text.split(|c: char| !c.is_ascii_alphanumeric()) {
            if word.len() >= 10 && word.chars().all(|c| c.is_ascii_hexdigit()) {
                let n = ids.iter().position(|i| i == word).unwrap_or_else(|| {
                    ids.push(word.to_owned());
                    ids.len() - 1
                });
                t = t.replace(word, &format!("Q{n}"));
            }
        }
        out.push(format!(
            "{program}: {}",
            constant_fields(&t, &["delay=", "delays="])
        ));
    }
    out
}

#[test]
fn pickup_header_checks_side_by_side() {
    let sender = TestUser::new("tern-t-pcs", None);
    let rcpt = TestUser::new("tern-t-pcr", None);
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let hc = dir.path().join("header_checks");
    std::fs::write(
        &hc,
        "/^Subject: bad/ REJECT\n/^Subject: fine/ PREPEND X-Checked: yes\n",
    )
    .unwrap();
    let main = format!("header_checks = regexp:{}\n", hc.display());
    let from = format!("{}@{DOMAIN}", sender.name);
    let to = format!("{}@{DOMAIN}", rcpt.name);
    let run = |program: &Path, conf: &Path| {
        sendmail_subject(program, conf, &["-f", &from], &to, "bad thing");
        sendmail_subject(program, conf, &["-f", &from], &to, "fine thing");
    };
    let mbox = |spool: &Path, u: &TestUser| {
        std::fs::read_to_string(spool.join(&u.name)).unwrap_or_default()
    };
    let done = |spool: &Path| {
        mbox(spool, &sender).contains("message content rejected")
            && mbox(spool, &rcpt).contains("Subject: fine thing")
    };

    let pf = PostfixInstance::start(&main).expect("Debian's Postfix");
    run(Path::new("/usr/sbin/sendmail"), pf.dir());
    let pf_spool = pf.dir().join("spool");
    assert!(
        wait_until(Duration::from_secs(30), || done(&pf_spool)),
        "{}",
        pf.maillog()
    );

    let (mut t, spool) = configure_with_spool(&main);
    t.write_master_cf(&format!(
        "{}pickup unix n - n 60 1 pickup\n",
        master_cf(t.port)
    ))
    .unwrap();
    t.launch().expect("launch");
    run(&tern_program("sendmail"), &t.config_dir());
    assert!(
        wait_until(Duration::from_secs(30), || done(&spool)),
        "{}",
        t.log()
    );

    let want = lines(&pf.maillog());
    assert!(
        want.iter()
            .any(|l| l.contains("status=bounced (message content rejected)")),
        "{want:#?}"
    );
    assert_eq!(want, lines(&t.log()), "Postfix, Tern");
    // The recipient got only the message that passed, with its PREPEND header.
    for s in [&pf_spool, &spool] {
        let got = mbox(s, &rcpt);
        assert!(!got.contains("bad thing"), "{got}");
        assert!(got.contains("X-Checked: yes"), "{got}");
    }
}
