//! Automatic BCC (`always_bcc`, `sender_bcc_maps`, `recipient_bcc_maps`; cleanup_addr.c)
//! side by side with Debian's Postfix 3.7.11: the same main.cf and tables, the same
//! messages by SMTP and by sendmail; each local mailbox gets the same messages from both
//! servers, and the BCC copies are logged as deliveries to their own address without
//! `orig_to=`.
//!
//! Needs root, Debian's postfix, python3, and `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

mod deliver_util;

use std::path::Path;
use std::time::Duration;

use deliver_util::{TestUser, configure_with_spool, master_cf, sendmail_subject, tern_program};
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::{smtplib_send, wait_until};

const DOMAIN: &str = "mx.example.test";

/// The subjects in an mbox, sorted.
fn subjects(mbox: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(mbox).unwrap_or_default();
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Subject: "))
        .map(str::to_owned)
        .collect();
    out.sort();
    out
}

#[test]
fn automatic_bcc_side_by_side() {
    let rcpt = TestUser::new("tern-t-abr", None);
    let archive = TestUser::new("tern-t-aba", None);
    let sec = TestUser::new("tern-t-abs", None);
    let copy = TestUser::new("tern-t-abc", None);
    let users = [&rcpt, &archive, &sec, &copy];
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let sbcc = dir.path().join("sender_bcc");
    let rbcc = dir.path().join("recipient_bcc");
    std::fs::write(&sbcc, format!("boss@example.org {}@{DOMAIN}\n", sec.name)).unwrap();
    std::fs::write(
        &rbcc,
        format!("{}@{DOMAIN} {}@{DOMAIN}\n", rcpt.name, copy.name),
    )
    .unwrap();
    let main = format!(
        "always_bcc = {}@{DOMAIN}\nsender_bcc_maps = texthash:{}\n\
         recipient_bcc_maps = texthash:{}\n",
        archive.name,
        sbcc.display(),
        rbcc.display()
    );
    let to = format!("{}@{DOMAIN}", rcpt.name);
    let send = |port: u16, sendmail_prog: &Path, conf: &Path| {
        smtplib_send(
            port,
            "boss@example.org",
            &[&to],
            "Subject: from boss\r\n\r\nhi\r\n",
        );
        smtplib_send(
            port,
            "other@example.org",
            &[&to],
            "Subject: from other\r\n\r\nhi\r\n",
        );
        sendmail_subject(sendmail_prog, conf, &[], &to, "by sendmail");
    };
    // rcpt 3, archive 3, sec 1 (boss's), copy 3 (recipient's).
    let want_total = 10;

    let pf = PostfixInstance::start(&main).expect("Debian's Postfix");
    send(pf.port(), Path::new("/usr/sbin/sendmail"), pf.dir());
    let pf_spool = pf.dir().join("spool");
    let count = |spool: &Path| -> usize {
        users
            .iter()
            .map(|u| subjects(&spool.join(&u.name)).len())
            .sum()
    };
    assert!(
        wait_until(Duration::from_secs(30), || count(&pf_spool) >= want_total),
        "{}",
        pf.maillog()
    );

    let (mut t, mail) = configure_with_spool(&main);
    t.write_master_cf(&format!(
        "{}pickup unix n - n 60 1 pickup\n",
        master_cf(t.port)
    ))
    .unwrap();
    t.launch().expect("launch");
    send(t.port, &tern_program("sendmail"), &t.config_dir());
    assert!(
        wait_until(Duration::from_secs(30), || count(&mail) >= want_total),
        "{}",
        t.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    for u in users {
        assert_eq!(
            subjects(&pf_spool.join(&u.name)),
            subjects(&mail.join(&u.name)),
            "{}\nPostfix:\n{}\nTern:\n{}",
            u.name,
            pf.maillog(),
            t.log()
        );
    }
    assert_eq!(count(&mail), want_total);
    // The copies are deliveries to their own address, without orig_to=.
    let log = t.log();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("to=<{}@{DOMAIN}>", archive.name)))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains(", relay=local,") && !line.contains("orig_to="),
        "{line}"
    );
}
