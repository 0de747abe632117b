//! Notices end to end: Tern's daemon with qmgr, error and retry in master.cf; a recipient
//! routed to error(8) bounces and the non-delivery report is queued for the sender (read
//! from its queue file and parsed with Python's email package); a bounce of a bounce goes
//! to 2bounce_notice_recipient; mail to double_bounce_sender is discarded; a delay warning
//! is sent once. The log lines are compared in shape with a private Debian Postfix given
//! the same settings. Notices are kept from delivery by routing their domain (held.test)
//! to the `retry` service, which defers.
//! Needs `target/<profile>/postfix` (`cargo build -p tern-commands --bin postfix`),
//! root, python3 and Debian's Postfix.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tern_queue::{QueueFile, QueueId, QueueLayout, QueueName};
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::{program_and_text, python_with_input, smtplib_send, wait_for};
use tern_testkit::tern::Tern;

const MAPS: &str = "transport_maps = inline:{ error.test=error:gone, held.test=retry: }\n\
                    smtpd_reject_unlisted_recipient = no";

fn start(extra: &str) -> Tern {
    let mut t = Tern::configure(&format!("{MAPS}\n{extra}")).expect("configure");
    let master = format!(
        "127.0.0.1:{} inet n - n - - smtpd\n\
         qmgr unix n - n 300 1 qmgr\n\
         error unix - - n - - error\n\
         retry unix - - n - - error\n",
        t.port
    );
    t.write_master_cf(&master).expect("master.cf");
    t.launch().expect("launch");
    t
}

/// Sends one message with smtplib; returns the queue id from the 250 reply.
fn send(port: u16, from: &str, to: &str) -> String {
    let data = "Subject: t\r\nMessage-Id: <orig@client.example>\r\n\r\nhello\r\n";
    smtplib_send(port, from, &[to], data)
}

/// The id after `needle` in the log (`...: sender non-delivery notification: NEWID`).
fn id_after(log: &str, needle: &str) -> String {
    let at = log
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle:?} in\n{log}"));
    log[at + needle.len()..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The lines of `programs` about `ids` (replaced by QID, NEWID, ...), with delays, sizes,
/// message-ids and the notice's id made constant.
fn shapes(log: &str, ids: &[(&str, &str)], programs: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in log.lines() {
        let Some((program, text)) = program_and_text(line) else {
            continue;
        };
        if !programs.contains(&program) {
            continue;
        }
        let text = text
            .strip_prefix("warning: ")
            .map_or(text.to_owned(), |t| format!("W {t}"));
        let Some(&(id, name)) = ids.iter().find(|(id, _)| text.contains(&format!("{id}: "))) else {
            continue;
        };
        let mut text = text.replacen(id, name, 1);
        for (other, oname) in ids {
            text = text.replace(other, oname);
        }
        let words: Vec<String> = text
            .split(", ")
            .map(|w| {
                for key in ["delay=", "delays=", "size="] {
                    if w.starts_with(key) {
                        return format!("{key}N");
                    }
                }
                if let Some((a, _)) = w.split_once("message-id=<") {
                    return format!("{a}message-id=<M>");
                }
                w.to_owned()
            })
            .collect();
        out.insert(format!("{program}: {}", words.join(", ")));
    }
    out
}

/// The content of the queue file of `id`, wherever it is in the queue.
fn content_of(t: &Tern, id: &str) -> (QueueFile, Vec<u8>) {
    let layout = QueueLayout::new(t.queue_dir());
    let qid = QueueId::parse(id).expect("id");
    let start = Instant::now();
    loop {
        for q in [QueueName::Incoming, QueueName::Active, QueueName::Deferred] {
            let path = layout.path(q, &qid);
            if let Ok(qf) = QueueFile::open(&path) {
                let mut out = Vec::new();
                let mut f = std::fs::File::open(&path).expect("open");
                qf.copy_content(&mut f, &mut out).expect("copy");
                return (qf, out);
            }
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{id} not queued");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Parses a notice with Python's email package; prints the facts the tests check.
fn parse_report(content: &[u8]) -> String {
    let script = r#"
import email, sys
from email import policy
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.compat32)
print("type", m.get_content_type(), m.get_param("report-type"))
print("from", m["From"])
print("to", m["To"])
print("subject", m["Subject"])
parts = m.get_payload()
print("parts", [p.get_content_type() for p in parts])
ds = parts[1].get_payload()
for block in ds:
    for k in ("Reporting-MTA", "Final-Recipient", "Original-Recipient", "Action", "Status", "Diagnostic-Code"):
        if block[k] is not None:
            print(k, block[k])
"#;
    python_with_input(script, content)
}

const PROGRAMS: [&str; 3] = ["postfix/qmgr", "postfix/bounce", "postfix/cleanup"];

#[test]
fn error_recipient_bounces_to_the_sender() {
    let t = start("");
    let id = send(t.port, "a@held.test", "y@error.test");
    let log = wait_for(|| t.log(), "sender non-delivery notification: ", 1);
    let new = id_after(&log, &format!("{id}: sender non-delivery notification: "));
    let log = wait_for(|| t.log(), &format!("{new}: to=<a@held.test>"), 1);
    let (qf, content) = content_of(&t, &new);
    assert_eq!(qf.envelope.sender, "");
    assert_eq!(qf.envelope.recipients.len(), 1);
    assert_eq!(qf.envelope.recipients[0].address, "a@held.test");
    let report = parse_report(&content);
    for want in [
        "type multipart/report delivery-status",
        "from Mail Delivery System <MAILER-DAEMON@mx.example.test>",
        "to a@held.test",
        "subject Undelivered Mail Returned to Sender",
        "parts ['text/plain', 'message/delivery-status', 'message/rfc822']",
        "Reporting-MTA dns; mx.example.test",
        "Final-Recipient rfc822; y@error.test",
        "Action failed",
        "Status 5.0.0",
        "Diagnostic-Code X-Postfix; gone",
    ] {
        assert!(report.contains(want), "{want}\n{report}");
    }
    let tern = shapes(&log, &[(&id, "QID"), (&new, "NEWID")], &PROGRAMS);
    for want in [
        "postfix/bounce: QID: sender non-delivery notification: NEWID",
        "postfix/cleanup: NEWID: message-id=<M>",
        "postfix/qmgr: NEWID: from=<>, size=N, nrcpt=1 (queue active)",
    ] {
        assert!(tern.contains(want), "{want}\n{tern:#?}");
    }

    let pf = PostfixInstance::start(MAPS).expect("postfix");
    let pid = send(pf.port(), "a@held.test", "y@error.test");
    let plog = wait_for(|| pf.maillog(), "sender non-delivery notification: ", 1);
    let pnew = id_after(&plog, &format!("{pid}: sender non-delivery notification: "));
    let plog = wait_for(|| pf.maillog(), &format!("{pnew}: to=<a@held.test>"), 1);
    let postfix = shapes(&plog, &[(&pid, "QID"), (&pnew, "NEWID")], &PROGRAMS);
    assert_eq!(tern, postfix, "tern log:\n{log}\npostfix log:\n{plog}");
}

#[test]
fn bounce_of_a_bounce_goes_to_2bounce_recipient() {
    let extra = "notify_classes = 2bounce\n2bounce_notice_recipient = pm@held.test";
    let t = start(extra);
    let id = send(t.port, "", "y@error.test");
    let log = wait_for(|| t.log(), "postmaster non-delivery notification: ", 1);
    let new = id_after(
        &log,
        &format!("{id}: postmaster non-delivery notification: "),
    );
    let log = wait_for(|| t.log(), &format!("{new}: to=<pm@held.test>"), 1);
    let (qf, content) = content_of(&t, &new);
    assert_eq!(qf.envelope.sender, "double-bounce@mx.example.test");
    let report = parse_report(&content);
    assert!(
        report.contains("subject Postmaster Copy: Undelivered Mail"),
        "{report}"
    );
    assert!(report.contains("Action failed"), "{report}");
    let tern = shapes(&log, &[(&id, "QID"), (&new, "NEWID")], &PROGRAMS);

    let pf = PostfixInstance::start(&format!("{MAPS}\n{extra}")).expect("postfix");
    let pid = send(pf.port(), "", "y@error.test");
    let plog = wait_for(|| pf.maillog(), "postmaster non-delivery notification: ", 1);
    let pnew = id_after(
        &plog,
        &format!("{pid}: postmaster non-delivery notification: "),
    );
    let plog = wait_for(|| pf.maillog(), &format!("{pnew}: to=<pm@held.test>"), 1);
    let postfix = shapes(&plog, &[(&pid, "QID"), (&pnew, "NEWID")], &PROGRAMS);
    assert_eq!(tern, postfix, "tern log:\n{log}\npostfix log:\n{plog}");
}

#[test]
fn double_bounce_is_discarded() {
    let t = start("");
    // A notice about mail from double_bounce_sender is never sent ...
    let a = send(t.port, "double-bounce@mx.example.test", "y@error.test");
    // ... and mail to it is discarded by the queue manager.
    let b = send(t.port, "a@held.test", "double-bounce@mx.example.test");
    let log = wait_for(|| t.log(), &format!("{a}: removed"), 1);
    let log = wait_for(|| log.clone() + &t.log(), &format!("{b}: removed"), 1);
    assert!(!log.contains("non-delivery notification"), "{log}");
    let tern = shapes(&log, &[(&a, "A"), (&b, "B")], &PROGRAMS);
    for want in [
        "postfix/bounce: W A: undeliverable postmaster notification discarded",
        "postfix/qmgr: B: to=<double-bounce@mx.example.test>, relay=none, delay=N, \
         delays=N, dsn=2.0.0, status=sent (undeliverable postmaster notification discarded)",
    ] {
        assert!(tern.contains(want), "{want}\n{tern:#?}");
    }

    let pf = PostfixInstance::start(MAPS).expect("postfix");
    let pa = send(pf.port(), "double-bounce@mx.example.test", "y@error.test");
    let pb = send(pf.port(), "a@held.test", "double-bounce@mx.example.test");
    wait_for(|| pf.maillog(), &format!("{pa}: removed"), 1);
    let plog = wait_for(|| pf.maillog(), &format!("{pb}: removed"), 1);
    let postfix = shapes(&plog, &[(&pa, "A"), (&pb, "B")], &PROGRAMS);
    assert_eq!(tern, postfix, "tern log:\n{log}\npostfix log:\n{plog}");
}

#[test]
fn delay_warning_is_sent_once() {
    let extra = "delay_warning_time = 1s\nqueue_run_delay = 1s\n\
                 minimal_backoff_time = 1s\nmaximal_backoff_time = 2s";
    let t = start(extra);
    let id = send(t.port, "a@held.test", "u@held.test");
    let log = wait_for(|| t.log(), "sender delay notification: ", 1);
    let new = id_after(&log, &format!("{id}: sender delay notification: "));
    // Two more attempts of the original: no second warning.
    let log = wait_for(|| t.log(), &format!("{id}: to=<u@held.test>"), 3);
    assert_eq!(log.matches("sender delay notification").count(), 1, "{log}");
    let (_, content) = content_of(&t, &new);
    let report = parse_report(&content);
    for want in [
        "subject Delayed Mail (still being retried)",
        "Action delayed",
        "Status 4.0.0",
    ] {
        assert!(report.contains(want), "{want}\n{report}");
    }
    let first = |log: &str, id: &str, new: &str| {
        shapes(log, &[(id, "QID"), (new, "NEWID")], &["postfix/bounce"])
    };
    let tern = first(&log, &id, &new);

    let pf = PostfixInstance::start(&format!("{MAPS}\n{extra}")).expect("postfix");
    let pid = send(pf.port(), "a@held.test", "u@held.test");
    let plog = wait_for(|| pf.maillog(), "sender delay notification: ", 1);
    let pnew = id_after(&plog, &format!("{pid}: sender delay notification: "));
    assert_eq!(
        tern,
        first(&plog, &pid, &pnew),
        "tern log:\n{log}\npostfix log:\n{plog}"
    );
}
