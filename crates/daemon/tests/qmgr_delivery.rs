//! The queue manager end to end: Tern's daemon with qmgr, discard and error in
//! master.cf, mail sent with Python's smtplib, the log lines compared with a private
//! Debian Postfix given the same settings; a deferred message retried with short
//! backoff settings; a message left in active/ delivered once after a restart.
//! Needs `target/<profile>/postfix` (`cargo build -p tern-commands --bin postfix`),
//! root and Debian's Postfix.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tern_queue::{DeliveryStatus, QueueFile, QueueLayout, QueueName};
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::{constant_fields, program_and_text, smtplib_send, wait_for};
use tern_testkit::tern::Tern;

/// smtpd refuses a recipient that resolves to the error transport at RCPT time
/// (reject_unlisted_recipient); with the check off, qmgr bounces it through error(8).
const MAPS: &str = "transport_maps = inline:{ discard.test=discard:, error.test=error:gone }\n\
                    smtpd_reject_unlisted_recipient = no";

fn master_cf(t: &Tern, qmgr: bool) -> String {
    let q = if qmgr {
        "qmgr unix n - n 300 1 qmgr\n"
    } else {
        ""
    };
    format!(
        "127.0.0.1:{} inet n - n - - smtpd\n{q}\
         discard unix - - n - - discard\n\
         error unix - - n - - error\n",
        t.port
    )
}

fn start(extra: &str, qmgr: bool) -> Tern {
    let mut t = Tern::configure(extra).expect("configure");
    t.write_master_cf(&master_cf(&t, qmgr)).expect("master.cf");
    t.launch().expect("launch");
    t
}

/// Sends one message with smtplib; returns the queue id from the 250 reply.
fn send(port: u16, from: &str, to: &[&str]) -> String {
    smtplib_send(port, from, to, "Subject: t\r\n\r\nhello\r\n")
}

/// The lines of programs `programs` about queue id `id`, as `program: text` with the id,
/// the delays and the size made constant.
fn shapes(log: &str, id: &str, programs: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in log.lines() {
        let Some((program, text)) = program_and_text(line) else {
            continue;
        };
        if !programs.contains(&program) || !text.starts_with(&format!("{id}: ")) {
            continue;
        }
        let text = text.replacen(id, "QID", 1);
        let text = constant_fields(&text, &["delay=", "delays=", "size="]);
        out.insert(format!("{program}: {text}"));
    }
    out
}

#[test]
fn discard_and_error_as_postfix_logs_them() {
    let t = start(MAPS, true);
    let id = send(
        t.port,
        "a@discard.test",
        &["x@discard.test", "y@error.test"],
    );
    let log = wait_for(|| t.log(), &format!("{id}: removed"), 1);
    let programs = ["postfix/qmgr", "postfix/discard", "postfix/error"];
    let tern = shapes(&log, &id, &programs);

    let pf = PostfixInstance::start(MAPS).expect("postfix");
    let pid = send(
        pf.port(),
        "a@discard.test",
        &["x@discard.test", "y@error.test"],
    );
    let plog = wait_for(|| pf.maillog(), &format!("{pid}: removed"), 1);
    let postfix = shapes(&plog, &pid, &programs);
    assert_eq!(tern, postfix, "tern log:\n{log}\npostfix log:\n{plog}");
    assert!(tern.contains(
        "postfix/discard: QID: to=<x@discard.test>, relay=none, delay=N, delays=N, dsn=2.0.0, status=sent (discard.test)"
    ));
    // The queue is empty.
    let layout = QueueLayout::new(t.queue_dir());
    for q in [QueueName::Incoming, QueueName::Active, QueueName::Deferred] {
        let l = tern_queue::scan(&layout, q).expect("scan");
        assert!(l.entries.is_empty(), "{q:?}: {:?}", l.entries);
    }
}

#[test]
fn deferred_message_is_retried_and_keeps_its_status() {
    let t = start(
        "transport_maps = inline:{ later.test=nowhere: }\n\
         queue_run_delay = 1s\nminimal_backoff_time = 1s\nmaximal_backoff_time = 2s",
        true,
    );
    let id = send(t.port, "a@example.org", &["u@later.test"]);
    let needle = "status=deferred (mail transport unavailable)";
    let log = wait_for(|| t.log(), needle, 3);
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("{id}: to=<u@later.test>")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    for l in &lines {
        assert!(l.contains("postfix/qmgr["), "{l}");
        assert!(l.contains(", relay=none, "), "{l}");
        assert!(l.contains(", dsn=4.3.0, status=deferred (mail transport unavailable)"));
    }
    assert!(
        log.matches(&format!("{id}: from=<a@example.org>, size="))
            .count()
            >= 3,
        "each attempt is a pass through the active queue:\n{log}"
    );
    // Between attempts the file waits in deferred/ (hashed) with its status records.
    let layout = QueueLayout::new(t.queue_dir());
    let start = Instant::now();
    let path = loop {
        let l = tern_queue::scan(&layout, QueueName::Deferred).expect("scan");
        if let Some(e) = l.entries.iter().find(|e| e.id.as_str() == id) {
            break e.path.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not in deferred/"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        path.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str()),
        Some(&id[..1])
    );
    let qf = QueueFile::open(&path).expect("read");
    let last = qf.envelope.recipients[0].last.clone().expect("status");
    assert_eq!(last.status, DeliveryStatus::Deferred);
    assert_eq!(
        (last.dsn.as_str(), last.diagnostic.as_str()),
        ("4.3.0", "mail transport unavailable")
    );
}

#[test]
fn restart_delivers_a_message_left_in_active_once() {
    // Without a qmgr service the message stays in incoming/.
    let mut t = start(MAPS, false);
    let id = send(t.port, "a@discard.test", &["x@discard.test"]);
    assert!(t.stop(Duration::from_secs(10)));
    let layout = QueueLayout::new(t.queue_dir());
    let qid = tern_queue::QueueId::parse(&id).expect("id");
    // As if the daemon had died while delivering it.
    tern_queue::scan::move_file(&layout, &qid, QueueName::Incoming, QueueName::Active)
        .expect("move");
    t.write_master_cf(&master_cf(&t, true)).expect("master.cf");
    t.launch().expect("launch");
    let log = wait_for(|| t.log(), &format!("{id}: removed"), 1);
    assert_eq!(
        log.matches(&format!("{id}: to=<x@discard.test>")).count(),
        1,
        "{log}"
    );
    assert!(!layout.path(QueueName::Active, &qid).exists());
    assert!(!layout.path(QueueName::Incoming, &qid).exists());
}
