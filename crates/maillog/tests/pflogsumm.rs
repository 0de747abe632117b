//! pflogsumm (Debian package `pflogsumm`) reads a log written only by our builders and our
//! `maillog_file` writer, and counts what a Postfix log of the same sessions would give.
//!
//! The test fails, never skips, when pflogsumm is missing: `apt-get install pflogsumm`.

use std::path::Path;
use std::process::Command as Process;
use std::time::Duration;

use tern_maillog::delay::Delays;
use tern_maillog::delivery::{self, Delivery, Status};
use tern_maillog::queue::{self, Notification};
use tern_maillog::smtpd::{self, Client, Command, CommandCounts, Sasl, Stage, Transaction};
use tern_maillog::{Ident, LogConfig, Logger};

const C: Client<'static> = Client {
    name: "client.example.org",
    addr: "192.0.2.10",
};

struct Ids {
    smtpd: Ident,
    submission: Ident,
    cleanup: Ident,
    qmgr: Ident,
    local: Ident,
    smtp: Ident,
    pickup: Ident,
    bounce: Ident,
}

fn ids() -> Ids {
    Ids {
        smtpd: Ident::new("postfix", "smtpd"),
        submission: Ident::new("postfix/submission", "smtpd"),
        cleanup: Ident::new("postfix", "cleanup"),
        qmgr: Ident::new("postfix", "qmgr"),
        local: Ident::new("postfix", "local"),
        smtp: Ident::new("postfix", "smtp"),
        pickup: Ident::new("postfix", "pickup"),
        bounce: Ident::new("postfix", "bounce"),
    }
}

fn record(
    id: &str,
    to: &str,
    relay: &str,
    dsn: &str,
    status: Status,
    reason: &str,
) -> tern_maillog::Line {
    delivery::delivery(&Delivery {
        queue_id: id,
        to,
        orig_to: None,
        relay,
        conn_use: 0,
        delays: Delays {
            total: Duration::from_millis(120),
            ..Delays::default()
        },
        delay_resolution: 2,
        dsn,
        status,
        reason,
    })
}

fn tx<'a>(id: Option<&'a str>, to: &'a str) -> Transaction<'a> {
    Transaction {
        queue_id: id,
        sender: Some("sender@example.org"),
        recipient: Some(to),
        protocol: Some("ESMTP"),
        helo: Some("client.example.org"),
    }
}

/// Five sessions: two deliveries over SMTP (one with a rejected second recipient), a
/// relay attempt, a sendmail message to an unknown user (bounced, with its notification
/// delivered), and an authenticated submission to a remote address (deferred).
fn write_sessions(log: &Logger) {
    let i = ids();
    let mut session = CommandCounts::default();
    for (command, ok) in [
        (Command::Ehlo, true),
        (Command::Mail, true),
        (Command::Rcpt, true),
    ] {
        session.record(command, ok);
    }
    session.record(Command::Data, true);
    session.record(Command::Quit, true);

    // 1. Delivered to a local user.
    log.log(&i.smtpd, &smtpd::connect(C));
    log.log(&i.smtpd, &smtpd::client("4A1B2C3D01", C, Sasl::default()));
    log.log(
        &i.cleanup,
        &queue::message_id("4A1B2C3D01", "<m1@client.example.org>"),
    );
    log.log(
        &i.qmgr,
        &queue::queue_active("4A1B2C3D01", "sender@example.org", 1000, 1),
    );
    log.log(&i.smtpd, &smtpd::disconnect(C, &session));
    let sent = record(
        "4A1B2C3D01",
        "alice@mx.example.test",
        "local",
        "2.0.0",
        Status::Sent,
        "delivered to mailbox",
    );
    log.log(&i.local, &sent);
    log.log(&i.qmgr, &queue::removed("4A1B2C3D01"));

    // 2. One recipient accepted, one rejected.
    log.log(&i.smtpd, &smtpd::connect(C));
    log.log(&i.smtpd, &smtpd::client("4A1B2C3D02", C, Sasl::default()));
    log.log(
        &i.smtpd,
        &smtpd::reject(
            Stage::Command(Command::Rcpt),
            C,
            "550 5.1.1 <ghost@mx.example.test>: Recipient address rejected: User unknown in local recipient table",
            tx(Some("4A1B2C3D02"), "ghost@mx.example.test"),
        ),
    );
    log.log(
        &i.cleanup,
        &queue::message_id("4A1B2C3D02", "<m2@client.example.org>"),
    );
    log.log(
        &i.qmgr,
        &queue::queue_active("4A1B2C3D02", "sender@example.org", 2000, 1),
    );
    let mut partial = session.clone();
    partial.record(Command::Rcpt, false);
    log.log(&i.smtpd, &smtpd::disconnect(C, &partial));
    let sent = record(
        "4A1B2C3D02",
        "bob@mx.example.test",
        "local",
        "2.0.0",
        Status::Sent,
        "delivered to mailbox",
    );
    log.log(&i.local, &sent);
    log.log(&i.qmgr, &queue::removed("4A1B2C3D02"));

    // 3. Relay denied.
    log.log(&i.smtpd, &smtpd::connect(C));
    log.log(
        &i.smtpd,
        &smtpd::reject(
            Stage::Command(Command::Rcpt),
            C,
            "554 5.7.1 <victim@remote.test>: Relay access denied",
            tx(None, "victim@remote.test"),
        ),
    );
    let mut denied = CommandCounts::default();
    for (command, ok) in [
        (Command::Ehlo, true),
        (Command::Mail, true),
        (Command::Rcpt, false),
        (Command::Quit, true),
    ] {
        denied.record(command, ok);
    }
    log.log(&i.smtpd, &smtpd::disconnect(C, &denied));

    // 4. sendmail to an unknown local user: bounced; the notification is delivered.
    log.log(
        &i.pickup,
        &queue::pickup("4A1B2C3D03", 0, "alice@mx.example.test"),
    );
    log.log(
        &i.cleanup,
        &queue::message_id("4A1B2C3D03", "<m3@mx.example.test>"),
    );
    log.log(
        &i.qmgr,
        &queue::queue_active("4A1B2C3D03", "alice@mx.example.test", 300, 1),
    );
    let bounced = record(
        "4A1B2C3D03",
        "ghost@mx.example.test",
        "local",
        "5.1.1",
        Status::Bounced,
        "unknown user: \"ghost\"",
    );
    log.log(&i.local, &bounced);
    log.log(
        &i.cleanup,
        &queue::message_id("4A1B2C3D04", "<m4@mx.example.test>"),
    );
    log.log(&i.qmgr, &queue::queue_active("4A1B2C3D04", "", 2100, 1));
    log.log(
        &i.bounce,
        &queue::notification("4A1B2C3D03", Notification::SenderNonDelivery, "4A1B2C3D04"),
    );
    log.log(&i.qmgr, &queue::removed("4A1B2C3D03"));
    let sent = record(
        "4A1B2C3D04",
        "alice@mx.example.test",
        "local",
        "2.0.0",
        Status::Sent,
        "delivered to mailbox",
    );
    log.log(&i.local, &sent);
    log.log(&i.qmgr, &queue::removed("4A1B2C3D04"));

    // 5. Authenticated submission to a remote address that is down: deferred.
    let sasl = Sasl {
        method: Some("PLAIN"),
        username: Some("carol"),
        sender: None,
    };
    log.log(&i.submission, &smtpd::connect(C));
    log.log(&i.submission, &smtpd::client("4A1B2C3D05", C, sasl));
    log.log(
        &i.cleanup,
        &queue::message_id("4A1B2C3D05", "<m5@client.example.org>"),
    );
    log.log(
        &i.qmgr,
        &queue::queue_active("4A1B2C3D05", "carol@mx.example.test", 500, 1),
    );
    let mut auth = session.clone();
    auth.record(Command::Auth, true);
    log.log(&i.submission, &smtpd::disconnect(C, &auth));
    let deferred = record(
        "4A1B2C3D05",
        "far@remote.test",
        "none",
        "4.4.1",
        Status::Deferred,
        "connect to mx.remote.test[192.0.2.99]:25: Connection refused",
    );
    log.log(&i.smtp, &deferred);
}

/// The number before `label` in pflogsumm's "Grand Totals".
fn total(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            let count = words.next()?;
            (words.next()? == label).then(|| count.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no '{label}' in pflogsumm's report:\n{report}"))
}

fn pflogsumm(log: &Path) -> String {
    let output = Process::new("pflogsumm").arg(log).output().unwrap_or_else(|e| {
        panic!("pflogsumm is missing ({e}): install Debian's package with `apt-get install pflogsumm`")
    });
    assert!(
        output.status.success(),
        "pflogsumm failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("pflogsumm prints UTF-8")
}

#[test]
fn pflogsumm_counts_our_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("maillog");
    let dir_text = dir.path().to_str().expect("UTF-8 temp dir");
    let logger = Logger::open(&LogConfig {
        maillog_file: path.to_str().expect("UTF-8 path"),
        maillog_file_prefixes: dir_text,
        syslog_facility: "mail",
        myhostname: "mx.example.test",
        config_directory: "/etc/postfix",
    })
    .expect("open maillog_file");
    write_sessions(&logger);

    let report = pflogsumm(&path);
    let cases = [
        ("received", 4),
        ("delivered", 3),
        ("forwarded", 0),
        ("deferred", 1),
        ("bounced", 1),
        ("rejected", 2),
        ("held", 0),
        ("discarded", 0),
    ];
    for (label, want) in cases {
        assert_eq!(total(&report, label), want, "{label} in\n{report}");
    }
    // pflogsumm gives the share of rejections among rejected and delivered: 2 / (2 + 3).
    assert!(report.contains("rejected (40%)"), "{report}");
    // Sizes come from the (queue active) lines of received messages.
    assert_eq!(total(&report, "bytes"), 1000 + 2000 + 300 + 500, "{report}");
}
