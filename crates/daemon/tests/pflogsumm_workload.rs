//! pflogsumm (Debian's) over the log of a mixed workload, through Tern and through
//! Debian's Postfix: local deliveries by SMTP and by sendmail, a relay to smtp-sink, a
//! deferral (a dead next hop), a bounce (sendmail to an unknown user, with its
//! notice), an alias forwarded to a remote address, and an SMTP reject. pflogsumm's
//! Grand Totals of Tern's log equal the workload's counts and those of Postfix's log.
//!
//! Needs root, Debian's postfix (smtp-sink, sendmail, postalias) and pflogsumm, and
//! `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

mod deliver_util;
mod delivery_util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use deliver_util::{TestUser, configure, master_cf, sendmail_subject, spool};
use delivery_util::wait_until;
use tern_testkit::peers::smtp_sink;
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::{python, smtplib_send};

const HOST: &str = "wl.example.test";

/// The Grand Totals pflogsumm prints, by label.
const LABELS: [&str; 8] = [
    "received",
    "delivered",
    "forwarded",
    "deferred",
    "bounced",
    "rejected",
    "held",
    "discarded",
];

fn settings(spool: &Path, aliases: &Path, sink: u16) -> String {
    format!(
        "myhostname = {HOST}\nmydomain = example.test\nmydestination = $myhostname, localhost\n\
         mail_spool_directory = {}/\n\
         transport_maps = inline:{{ dead.example=smtp:[127.0.0.1]:1, sink.example=smtp:[127.0.0.1]:{sink} }}\n\
         alias_maps = hash:{a}\nalias_database = hash:{a}\n",
        spool.display(),
        a = aliases.display()
    )
}

/// aliases(5) with `fwd: b@sink.example`, built by `postalias`.
fn aliases(dir: &Path, postalias: &Path) -> PathBuf {
    std::fs::create_dir(dir).unwrap();
    let file = dir.join("aliases");
    std::fs::write(&file, "postmaster: root\nfwd: b@sink.example\n").unwrap();
    let built = Command::new(postalias)
        .arg(format!("hash:{}", file.display()))
        .output()
        .expect("postalias");
    assert!(built.status.success(), "{built:?}");
    file
}

/// The SMTP part: two local messages, one to the sink, one to the dead next hop, and a
/// RCPT for an unknown local user (rejected, so the transaction carries no message).
fn smtp_part(port: u16, user: &str) {
    for subject in ["one", "two"] {
        smtplib_send(
            port,
            "s@example.org",
            &[user],
            &format!("Subject: {subject}\r\n\r\nx\r\n"),
        );
    }
    smtplib_send(
        port,
        "s@example.org",
        &["a@sink.example"],
        "Subject: sink\r\n\r\nx\r\n",
    );
    smtplib_send(
        port,
        "s@example.org",
        &["a@dead.example"],
        "Subject: dead\r\n\r\nx\r\n",
    );
    let out = python(&format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port}, timeout=30)
s.ehlo("client.example")
s.mail("s@example.org")
print(s.rcpt("nosuchuser@{HOST}")[0])
s.quit()
"#
    ));
    assert_eq!(out.trim(), "550");
}

/// Runs the workload against one MTA and returns pflogsumm's report of its log.
fn run_workload(
    port: u16,
    sendmail_program: &Path,
    conf: &str,
    user: &str,
    log: impl Fn() -> String,
    shared: &Path,
    name: &str,
) -> String {
    smtp_part(port, user);
    sendmail_subject(sendmail_program, Path::new(conf), &[], user, "by sendmail");
    sendmail_subject(sendmail_program, Path::new(conf), &[], "fwd", "forwarded");
    sendmail_subject(
        sendmail_program,
        Path::new(conf),
        &[],
        "nosuchuser",
        "bounces",
    );
    // Everything but the deferred message done: 2 + 1 + 1 by SMTP and sendmail to the
    // user, the sink message, the forwarded original and its copy, the bounced message
    // and its notice: eight removals.
    let done = || {
        let l = log();
        l.matches(": removed").count() >= 8 && l.contains("status=deferred")
    };
    assert!(
        wait_until(Duration::from_mins(1), done),
        "{name}:\n{}",
        log()
    );
    let path = shared.join(format!("{name}.log"));
    std::fs::write(&path, log()).unwrap();
    let out = Command::new("pflogsumm")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("pflogsumm is missing ({e}): apt-get install pflogsumm"));
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
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

#[test]
fn pflogsumm_counts_tern_as_postfix() {
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let u = TestUser::new("tern-t-wl1", None);
    let sink = smtp_sink(&[]).expect("smtp-sink");

    let pf_aliases = aliases(
        &shared.path().join("pf-etc"),
        Path::new("/usr/sbin/postalias"),
    );
    let pf_spool = spool(shared.path(), "postfix");
    let pf = PostfixInstance::start(&settings(&pf_spool, &pf_aliases, sink.port)).expect("postfix");
    let pf_report = run_workload(
        pf.port(),
        Path::new("/usr/sbin/sendmail"),
        &pf.dir().display().to_string(),
        &u.name,
        || pf.maillog(),
        shared.path(),
        "postfix",
    );

    let tern_postalias = tern_testkit::tern::postfix_binary()
        .unwrap()
        .with_file_name("postalias");
    let t_aliases = aliases(&shared.path().join("tern-etc"), &tern_postalias);
    let t_spool = spool(shared.path(), "tern");
    let mut t = configure(&settings(&t_spool, &t_aliases, sink.port));
    t.write_master_cf(&format!(
        "{}pickup unix n - n 60 1 pickup\nsmtp unix - - n - - smtp\n",
        master_cf(t.port)
    ))
    .unwrap();
    t.launch().unwrap();
    let sendmail_program = tern_testkit::tern::postfix_binary()
        .unwrap()
        .with_file_name("sendmail");
    let t_report = run_workload(
        t.port,
        &sendmail_program,
        &t.config_dir().display().to_string(),
        &u.name,
        || t.log(),
        shared.path(),
        "tern",
    );

    // What the workload makes: 4 messages by SMTP and 3 by sendmail received; one
    // deferred, one bounced, one forwarded, one SMTP reject.
    for (label, want) in [
        ("received", 7),
        ("deferred", 1),
        ("bounced", 1),
        ("forwarded", 1),
        ("rejected", 1),
    ] {
        assert_eq!(total(&t_report, label), want, "{label}:\n{t_report}");
    }
    for label in LABELS {
        assert_eq!(
            total(&t_report, label),
            total(&pf_report, label),
            "{label}: Tern\n{t_report}\nPostfix\n{pf_report}"
        );
    }
}
