//! Tern's daemon fed by Postfix's own load generator, smtp-source (Debian's postfix package,
//! which .ci/run installs): every message it sends is accepted and lands in the queue.

use std::process::Command;
use std::time::{Duration, Instant};

use tern_queue::{QueueLayout, QueueName, scan};
use tern_testkit::tern::Tern;

const SMTP_SOURCE: &str = "/usr/sbin/smtp-source";

fn incoming(t: &Tern) -> usize {
    let layout = QueueLayout::new(t.queue_dir());
    scan(&layout, QueueName::Incoming)
        .expect("scan incoming")
        .entries
        .len()
}

#[test]
fn smtp_source_messages_all_land_in_the_queue() {
    assert!(
        std::path::Path::new(SMTP_SOURCE).exists(),
        "{SMTP_SOURCE} is missing: install Debian's postfix (run .ci/run)"
    );
    let t = Tern::start("").unwrap_or_else(|e| panic!("cannot start Tern: {e}"));
    // 5 sessions, 100 messages, 2 recipients each, 4 KiB bodies, PIPELINING on.
    let status = Command::new(SMTP_SOURCE)
        .args([
            "-s",
            "5",
            "-m",
            "100",
            "-r",
            "2",
            "-l",
            "4096",
            "-f",
            "sender@example.test",
        ])
        // smtp-source numbers its recipients (`1rcpt@...`, `2rcpt@...`), which no local
        // table knows: a remote domain, relayed for mynetworks, is not checked.
        .args(["-t", "rcpt@example.net", &t.addr()])
        .status()
        .expect("run smtp-source");
    assert!(status.success(), "smtp-source failed: {status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while incoming(&t) < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(incoming(&t), 100);
    let log = t.log();
    assert_eq!(
        log.matches(": client=localhost[127.0.0.1]").count(),
        100,
        "{log}"
    );
}
