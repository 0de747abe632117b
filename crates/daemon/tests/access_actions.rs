//! The queue actions of access(5) results end to end: Tern's daemon with qmgr, local(8)
//! and a pipe(8) filter, `smtpd_recipient_restrictions = check_recipient_access
//! texthash:..., permit_mynetworks, reject_unauth_destination`, mail sent with smtplib.
//! What Debian's Postfix 3.7.11 does with the same table (a private instance as in
//! /work/shared/POSTFIX-REFERENCE.md):
//!
//! - HOLD: `QUEUEID: hold: RCPT from ...: <rcpt>: Recipient address triggers HOLD
//!   action; from=<...> to=<...> proto=ESMTP helo=<...>` (NOQUEUE before the first
//!   accepted recipient), cleanup's `message-id=`, the file in hold/, no qmgr line;
//!   `postsuper -H` releases it and it is delivered.
//! - DISCARD: `discard: ... Recipient address triggers DISCARD action; ...`, then
//!   `QUEUEID: client=...`, `250 2.0.0 Ok: queued as QUEUEID`, and nothing more: no
//!   `message-id=` line, no qmgr line, no file.
//! - FILTER transport:nexthop: every recipient to that transport and next hop (one
//!   request), unresolved: `FILTER sink:[127.0.0.1]:2599` with RCPT filter@ and plain@
//!   logs `to=<filter@example.com>, relay=127.0.0.1[127.0.0.1]:2599, ...` and the same
//!   for plain@ (here: to smtp-sink through smtp(8), and to a pipe(8) command).
//! - REDIRECT: qmgr logs `nrcpt=` of the envelope, and one delivery, to the redirect
//!   address with `orig_to=` the first recipient in qmgr's sort order.
//! - BCC: an extra recipient, logged without orig_to.
//! - PREPEND: the header above smtpd's Received:, no log line.
//!
//! Needs root, Python 3, Debian's Postfix tools not at all, and `cargo build -p
//! tern-commands --bins`; and the restriction engine (check_recipient_access calling
//! cleanup::Message::set_actions).

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

mod deliver_util;

use std::path::Path;
use std::process::Command;

use deliver_util::{TestUser, configure, master_cf, spool, tern_program, wait_for};
use tern_testkit::peers::smtp_sink;
use tern_testkit::support::smtplib_send;
use tern_testkit::tern::Tern;

const DOMAIN: &str = "mx.example.test";
const FROM: &str = "sender@example.org";

fn data(subject: &str) -> String {
    format!(
        "Subject: {subject}\r\nFrom: {FROM}\r\nMessage-Id: <{subject}@example.org>\r\n\r\nhello\r\n"
    )
}

fn mbox(spool: &Path, user: &TestUser) -> String {
    std::fs::read_to_string(spool.join(&user.name)).unwrap_or_default()
}

/// The log lines of `id` (after `QUEUEID: `), in order.
fn lines_of(log: &str, id: &str) -> Vec<String> {
    let tag = format!(": {id}: ");
    log.lines()
        .filter_map(|l| {
            l.split_once(&tag).map(|(head, text)| {
                let prog = head.rsplit(' ').next().unwrap_or("");
                let prog = prog.split('[').next().unwrap_or("");
                format!("{prog}: {text}")
            })
        })
        .collect()
}

#[test]
fn hold_discard_filter_redirect_bcc_prepend() {
    let alice = TestUser::new("tern-t-acta", None);
    let bob = TestUser::new("tern-t-actb", None);
    let carol = TestUser::new("tern-t-actc", None);
    let a = format!("{}@{DOMAIN}", alice.name);
    let b = format!("{}@{DOMAIN}", bob.name);
    let c = format!("{}@{DOMAIN}", carol.name);

    let sink = smtp_sink(&[]).expect("smtp-sink");
    let mut t: Tern = configure("");
    let mail = spool(t.dir.path(), "mail");
    let filtered = spool(t.dir.path(), "filtered");
    let access = t.dir.path().join("access");
    std::fs::write(
        &access,
        format!(
            "{}+hold@{DOMAIN} HOLD\n\
             discard@remote.example DISCARD\n\
             filter@remote.example FILTER filt:dest.example\n\
             sink@remote.example FILTER smtp:[127.0.0.1]:{}\n\
             redirect@remote.example REDIRECT {b}\n\
             {}+bcc@{DOMAIN} BCC {c}\n\
             {}+pre@{DOMAIN} PREPEND X-Tag: yes\n",
            alice.name, sink.port, alice.name, alice.name
        ),
    )
    .unwrap();
    let senders = t.dir.path().join("senders");
    std::fs::write(
        &senders,
        "eodhold@example.org HOLD\neoddiscard@example.org DISCARD\n",
    )
    .unwrap();
    let main_cf = t.config_dir().join("main.cf");
    std::fs::write(
        &main_cf,
        std::fs::read_to_string(&main_cf).unwrap()
            + &format!(
                "mail_spool_directory = {}\n\
                 recipient_delimiter = +\n\
                 queue_run_delay = 1s\n\
                 smtpd_recipient_restrictions = check_recipient_access texthash:{}, \
                 permit_mynetworks, reject_unauth_destination\n\
                 smtpd_end_of_data_restrictions = check_sender_access texthash:{}\n",
                mail.display(),
                access.display(),
                senders.display()
            ),
    )
    .unwrap();
    t.write_master_cf(&format!(
        "{}smtp unix - - n - - smtp\n\
         filt unix - n n - - pipe user=nobody argv=/usr/bin/tee -a {}/out.${{nexthop}}\n",
        master_cf(t.port),
        filtered.display()
    ))
    .unwrap();
    t.launch().expect("launch");

    // HOLD: in hold/, not delivered, until postsuper -H.
    let hold_to = format!("{}+hold@{DOMAIN}", alice.name);
    let held = smtplib_send(t.port, FROM, &[&hold_to], &data("held"));
    let log = wait_for(
        || t.log(),
        &format!("{held}: message-id=<held@example.org>"),
        1,
    );
    assert!(
        log.contains(&format!(
            "NOQUEUE: hold: RCPT from localhost[127.0.0.1]: <{hold_to}>: Recipient address \
             triggers HOLD action; from=<{FROM}> to=<{hold_to}> proto=ESMTP helo=<client.example>"
        )),
        "{log}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(t.queue_dir().join("hold").join(&held).is_file(), "{log}");
    assert!(!t.log().contains(&format!("{held}: from=<")), "{}", t.log());

    // DISCARD: 250 with a queue id, then nothing; the other recipient gets nothing.
    let discarded = smtplib_send(t.port, FROM, &["discard@remote.example", &a], &data("gone"));
    // FILTER: both recipients to filt, next hop dest.example, one request.
    let filt = smtplib_send(
        t.port,
        FROM,
        &["filter@remote.example", &a],
        &data("filtered"),
    );
    // FILTER to smtp-sink through smtp(8): the next hop of the action, both recipients.
    let sunk = smtplib_send(t.port, FROM, &["sink@remote.example", &a], &data("sunk"));
    // REDIRECT: one delivery, to bob, for the first recipient in qmgr's order (alice:
    // mx.example.test sorts before remote.example).
    let redir = smtplib_send(
        t.port,
        FROM,
        &["redirect@remote.example", &a],
        &data("redirected"),
    );
    let bcc_to = format!("{}+bcc@{DOMAIN}", alice.name);
    let bcc = smtplib_send(t.port, FROM, &[&bcc_to], &data("bcc"));
    let pre_to = format!("{}+pre@{DOMAIN}", alice.name);
    let pre = smtplib_send(t.port, FROM, &[&pre_to], &data("prepended"));
    // HOLD and DISCARD from smtpd_end_of_data_restrictions: cleanup has seen the
    // headers by then (Debian's Postfix logs `message-id=` after smtpd's
    // `QUEUEID: discard: END-OF-MESSAGE from ...` line, and queues nothing).
    let eod_held = smtplib_send(t.port, "eodhold@example.org", &[&a], &data("eodheld"));
    let eod_gone = smtplib_send(t.port, "eoddiscard@example.org", &[&a], &data("eodgone"));
    for id in [&filt, &sunk, &redir, &bcc, &pre] {
        wait_for(|| t.log(), &format!("{id}: removed"), 1);
    }
    let log = t.log();

    assert!(
        log.contains(&format!(
            "NOQUEUE: discard: RCPT from localhost[127.0.0.1]: <discard@remote.example>: \
             Recipient address triggers DISCARD action; from=<{FROM}> \
             to=<discard@remote.example> proto=ESMTP helo=<client.example>"
        )),
        "{log}"
    );
    assert_eq!(
        lines_of(&log, &discarded),
        ["postfix/smtpd: client=localhost[127.0.0.1]"],
        "{log}"
    );
    for q in ["incoming", "active", "deferred", "hold"] {
        assert!(!t.queue_dir().join(q).join(&discarded).exists());
        assert!(!t.queue_dir().join(q).join(&eod_gone).exists());
    }
    let eod_lines = lines_of(&log, &eod_gone);
    assert_eq!(eod_lines.len(), 3, "{log}");
    assert!(
        eod_lines[1].starts_with(
            "postfix/smtpd: discard: END-OF-MESSAGE from localhost[127.0.0.1]: \
             <eoddiscard@example.org>: Sender address triggers DISCARD action;"
        ),
        "{log}"
    );
    assert_eq!(
        eod_lines[2],
        "postfix/cleanup: message-id=<eodgone@example.org>"
    );
    assert!(
        t.queue_dir().join("hold").join(&eod_held).is_file(),
        "{log}"
    );
    assert!(!log.contains(&format!("{eod_held}: from=<")), "{log}");

    let filt_lines: Vec<String> = lines_of(&log, &filt)
        .into_iter()
        .filter(|l| l.starts_with("postfix/pipe: to=<"))
        .map(|l| l.split(", delay=").next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        filt_lines,
        [
            "postfix/pipe: to=<filter@remote.example>, relay=filt".to_owned(),
            format!("postfix/pipe: to=<{a}>, relay=filt"),
        ],
        "{log}"
    );
    let out = std::fs::read_to_string(filtered.join("out.dest.example")).unwrap();
    assert_eq!(out.matches("Subject: filtered").count(), 1, "{out}");

    let relay = format!("relay=127.0.0.1[127.0.0.1]:{}", sink.port);
    let sunk_lines: Vec<String> = lines_of(&log, &sunk)
        .into_iter()
        .filter(|l| l.starts_with("postfix/smtp: to=<"))
        .map(|l| l.split(", delay=").next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        sunk_lines,
        [
            format!("postfix/smtp: to=<sink@remote.example>, {relay}"),
            format!("postfix/smtp: to=<{a}>, {relay}"),
        ],
        "{log}"
    );
    // smtp-sink's dump may land just after its reply: at most 5 s.
    let mut dump = String::new();
    for _ in 0..100 {
        dump = std::fs::read_to_string(&sink.record).unwrap_or_default();
        if dump.contains("Subject: sunk") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(dump.contains("Subject: sunk"), "{dump}");

    let redir_lines: Vec<String> = lines_of(&log, &redir)
        .into_iter()
        .filter(|l| l.contains(" to=<") || l.contains("nrcpt="))
        .map(|l| l.split(", relay=").next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(redir_lines.len(), 2, "{log}");
    assert!(
        redir_lines[0].ends_with(", nrcpt=2 (queue active)"),
        "{log}"
    );
    assert_eq!(
        redir_lines[1],
        format!("postfix/local: to=<{b}>, orig_to=<{a}>"),
        "{log}"
    );

    let bcc_lines: Vec<String> = lines_of(&log, &bcc)
        .into_iter()
        .filter(|l| l.contains(" to=<"))
        .map(|l| l.split(", relay=").next().unwrap_or("").to_owned())
        .collect();
    assert!(
        bcc_lines.contains(&format!("postfix/local: to=<{c}>")),
        "{log}"
    );
    assert!(
        bcc_lines.contains(&format!("postfix/local: to=<{bcc_to}>, orig_to=<{bcc_to}>"))
            || bcc_lines.contains(&format!("postfix/local: to=<{bcc_to}>")),
        "{log}"
    );

    let alice_box = mbox(&mail, &alice);
    let bob_box = mbox(&mail, &bob);
    let carol_box = mbox(&mail, &carol);
    assert!(!alice_box.contains("Subject: gone"), "{alice_box}");
    assert!(!alice_box.contains("Subject: filtered"), "{alice_box}");
    assert!(!alice_box.contains("Subject: redirected"), "{alice_box}");
    assert_eq!(
        bob_box.matches("Subject: redirected").count(),
        1,
        "{bob_box}"
    );
    assert!(
        bob_box.contains(&format!("X-Original-To: {a}\n")),
        "{bob_box}"
    );
    assert!(carol_box.contains("Subject: bcc"), "{carol_box}");
    assert!(alice_box.contains("Subject: bcc"), "{alice_box}");
    assert!(
        alice_box.contains("X-Tag: yes\nReceived: from client.example (localhost [127.0.0.1])\n"),
        "{alice_box}"
    );
    assert!(!alice_box.contains("Subject: held"), "{alice_box}");

    // postsuper -H releases the held message; the queue manager delivers it.
    let out = Command::new(tern_program("postsuper"))
        .args(["-c", &t.config_dir().display().to_string(), "-H", &held])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = wait_for(|| t.log(), &format!("{held}: removed"), 1);
    assert!(
        log.contains(&format!("{held}: released from hold")),
        "{log}"
    );
    assert!(mbox(&mail, &alice).contains("Subject: held"), "{log}");
}
