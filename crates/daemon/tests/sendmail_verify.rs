//! `sendmail -bv` (address verification, sendmail(1)) side by side with Debian's Postfix:
//! a local user, an alias to two users and an unknown user are verified, nothing is
//! delivered to them, the "Mail Delivery Status Report" that arrives in the sender's
//! (root's) mailbox equals Postfix's (apart from queue ids, dates and the order of the
//! entries, which follows the order the agents answered), and the `status=deliverable` /
//! `status=undeliverable` log lines have Postfix's shape.
//!
//! Needs root, Debian's postfix, and `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

mod deliver_util;
mod delivery_util;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use deliver_util::{TestUser, configure, master_cf, spool, tern_program};
use delivery_util::{diff, maildir_files, wait_until};
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::constant_fields;

const HOST: &str = "sm.example.test";

fn settings(spool: &Path, aliases: &Path) -> String {
    format!(
        "myhostname = {HOST}\nmydomain = example.test\nmydestination = $myhostname, localhost\n\
         mail_spool_directory = {}/\nalias_maps = texthash:{a}\nalias_database = texthash:{a}\n",
        spool.display(),
        a = aliases.display()
    )
}

/// Runs `sendmail -C conf -bv args...` with no input: (status, stdout, stderr).
fn verify(sendmail: &Path, conf: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(sendmail)
        .args(["-C", conf, "-bv"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", sendmail.display()));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value after `prefix` on the first line that starts with it.
fn field<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"))
        .trim()
}

/// The report with what differs between two runs made constant: the probe's and the
/// report's queue ids, dates, Message-Ids, the boundary's time, and the order of the
/// per-address paragraphs (both lists sorted in place).
fn normalize(msg: &[u8]) -> String {
    let text = String::from_utf8_lossy(msg).into_owned();
    let probe_id = field(&text, "X-Postfix-Queue-ID:").to_owned();
    let report_id = field(&text, "\tid ").split(';').next().unwrap().to_owned();
    let boundary = field(&text, "\tboundary=").trim_matches('"').to_owned();
    let text = text
        .replace(&boundary, "BOUNDARY")
        .replace(&probe_id, "PROBEID")
        .replace(&report_id, "REPORTID");
    let mut lines = Vec::new();
    for line in text.lines() {
        let line = if let Some((head, _)) = line.split_once("; ")
            && line.starts_with("\tid ")
        {
            format!("{head}; DATE")
        } else if line.starts_with("Date:") {
            "Date: DATE".to_owned()
        } else if line.starts_with("Arrival-Date:") {
            "Arrival-Date: DATE".to_owned()
        } else if line.starts_with("Message-Id:") {
            "Message-Id: <ID>".to_owned()
        } else {
            line.to_owned()
        };
        lines.push(line);
    }
    let mut blocks: Vec<String> = lines.join("\n").split("\n\n").map(str::to_owned).collect();
    for start in ["<", "Final-Recipient:"] {
        let at: Vec<usize> = (0..blocks.len())
            .filter(|&i| blocks[i].starts_with(start))
            .collect();
        let mut sorted: Vec<String> = at.iter().map(|&i| blocks[i].clone()).collect();
        sorted.sort();
        for (i, b) in at.into_iter().zip(sorted) {
            blocks[i] = b;
        }
    }
    blocks.join("\n\n")
}

/// The verify lines of a mail log, each as `PROGRAM: to=..., ..., status=...` with the
/// pid, queue id and delays made constant; sorted.
fn verify_lines(log: &str) -> Vec<String> {
    let mut out: Vec<String> = log
        .lines()
        .filter(|l| l.contains("status=deliverable") || l.contains("status=undeliverable"))
        .map(|l| {
            let from = l.find("postfix/").unwrap_or(0);
            let l = &l[from..];
            let program = &l[..l.find('[').unwrap_or(0)];
            let rest = l.split_once("]: ").map_or(l, |(_, r)| r);
            let rest = rest.split_once(": ").map_or(rest, |(_, r)| r);
            format!(
                "{program}: {}",
                constant_fields(rest, &["delay=", "delays="])
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn sendmail_bv_reports_as_postfix_does() {
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let u1 = TestUser::new("tern-t-vb1", None);
    let u2 = TestUser::new("tern-t-vb2", None);
    let aliases = shared.path().join("aliases");
    std::fs::write(
        &aliases,
        format!("postmaster root\nvb-both {}, {}\n", u1.name, u2.name),
    )
    .unwrap();
    let args = [u1.name.as_str(), "vb-both", "tern-t-vb-nosuch"];
    // Four entries: u1, the alias's two users, the unknown user.
    let want_lines = 4;

    let run = |sendmail: &Path, conf: &str, spool: &Path, log: &dyn Fn() -> String| {
        let (code, out, err) = verify(sendmail, conf, &args);
        assert_eq!(code, 0, "{}: {err}", sendmail.display());
        assert_eq!(
            out, "Mail Delivery Status Report will be mailed to <root>.\n",
            "{err}"
        );
        let root = spool.join("root");
        assert!(
            wait_until(Duration::from_secs(30), || maildir_files(&root).len() == 1),
            "{}: no report\n{}",
            sendmail.display(),
            log()
        );
        // The probe delivered nothing.
        for u in [&u1, &u2] {
            assert!(maildir_files(&spool.join(&u.name)).is_empty(), "{}", log());
        }
        let (_, report) = maildir_files(&root).pop().unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || verify_lines(&log()).len()
                >= want_lines),
            "{}",
            log()
        );
        (normalize(&report), verify_lines(&log()), log())
    };

    let pf_spool = spool(shared.path(), "postfix");
    let pf = PostfixInstance::start(&settings(&pf_spool, &aliases)).expect("postfix");
    let (pf_report, pf_lines, pf_log) = run(
        Path::new("/usr/sbin/sendmail"),
        &pf.dir().display().to_string(),
        &pf_spool,
        &|| pf.maillog(),
    );

    let tern_spool = spool(shared.path(), "tern");
    let mut t = configure(&settings(&tern_spool, &aliases));
    t.write_master_cf(&format!(
        "{}pickup unix n - n 60 1 pickup\n",
        master_cf(t.port)
    ))
    .unwrap();
    t.launch().unwrap();
    let (tern_report, tern_lines, tern_log) = run(
        &tern_program("sendmail"),
        &t.config_dir().display().to_string(),
        &tern_spool,
        &|| t.log(),
    );

    assert_eq!(
        pf_report,
        tern_report,
        "Postfix -, Tern +:\n{}",
        diff(&pf_report, &tern_report)
    );
    assert_eq!(pf_lines.len(), want_lines, "{pf_log}");
    assert_eq!(
        pf_lines, tern_lines,
        "Postfix:\n{pf_log}\nTern:\n{tern_log}"
    );
    for log in [&pf_log, &tern_log] {
        assert!(
            log.contains(": sender delivery status notification: "),
            "{log}"
        );
    }
}

/// The options Postfix refuses with -bv, refused alike.
#[test]
fn bv_usage_errors_equal_postfix() {
    let t = configure("");
    let conf = t.config_dir().display().to_string();
    let tern = tern_program("sendmail");
    let cases: &[&[&str]] = &[
        &["-bv", "-t"],
        &["-bv", "-N", "success", "root"],
        &["-bv", "-R", "full", "root"],
        &["-bv", "-v", "root"],
    ];
    for args in cases {
        let run = |prog: &Path, conf: &str| {
            let out = Command::new(prog)
                .args(["-C", conf])
                .args(*args)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            )
        };
        assert_eq!(
            run(&tern, &conf),
            run(Path::new("/usr/sbin/sendmail"), "/etc/postfix"),
            "{args:?}"
        );
    }
}

/// `-bv` through smtp(8): Tern asks the next hop (Debian's Postfix) with RCPT TO only,
/// reports its answers, and sends no message: the peer queues nothing.
#[test]
fn sendmail_bv_through_smtp_stops_after_rcpt() {
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let aliases = shared.path().join("aliases");
    std::fs::write(&aliases, "postmaster root\n").unwrap();
    let peer_spool = spool(shared.path(), "peer");
    let peer = PostfixInstance::start(&format!(
        "mydestination = $myhostname, localhost, peer.test\nmail_spool_directory = {}/\n",
        peer_spool.display()
    ))
    .expect("postfix");
    let tern_spool = spool(shared.path(), "tern");
    let mut t = configure(&format!(
        "{}relayhost = [127.0.0.1]:{}\n",
        settings(&tern_spool, &aliases),
        peer.port()
    ));
    t.write_master_cf(&format!(
        "{}pickup unix n - n 60 1 pickup\nsmtp unix - - n - - smtp\nrelay unix - - n - - smtp\n",
        master_cf(t.port)
    ))
    .unwrap();
    t.launch().unwrap();
    let (code, out, err) = verify(
        &tern_program("sendmail"),
        &t.config_dir().display().to_string(),
        &["root@peer.test", "nosuch@peer.test"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "Mail Delivery Status Report will be mailed to <root>.\n"
    );
    let root = tern_spool.join("root");
    assert!(
        wait_until(Duration::from_secs(30), || maildir_files(&root).len() == 1),
        "no report\n{}",
        t.log()
    );
    let (_, report) = maildir_files(&root).pop().unwrap();
    let report = String::from_utf8_lossy(&report).into_owned();
    let relay = format!("127.0.0.1[127.0.0.1]:{}", peer.port());
    assert!(
        report.contains(&format!(
            "<root@peer.test>: delivery via {relay}: 250 2.1.5 Ok"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!("<nosuch@peer.test>: delivery via {relay}: host\n"))
            && report.contains("said: 550 5.1.1 <nosuch@peer.test>: Recipient address"),
        "{report}"
    );
    let log = t.log();
    assert!(
        log.contains(&format!("to=<root@peer.test>, relay={relay}"))
            && log.contains("status=deliverable (250 2.1.5 Ok)")
            && log.contains("status=undeliverable (host 127.0.0.1[127.0.0.1] said: 550 5.1.1"),
        "{log}"
    );
    // The peer answered RCPT TO, saw RSET and QUIT, no DATA, and queued nothing (no
    // cleanup line, no delivery).
    let peer_log = peer.maillog();
    assert!(
        peer_log.contains("reject: RCPT from")
            && peer_log.contains("ehlo=1 mail=1 rcpt=1/2 rset=1 quit=1")
            && !peer_log.contains("data=")
            && !peer_log.contains("message-id="),
        "{peer_log}"
    );
    assert!(maildir_files(&peer_spool.join("root")).is_empty());
}

/// `-bv` to a virtual(8) mailbox and through a pipe(8) service: answered with Postfix's
/// texts, nothing written and no command run.
#[test]
fn sendmail_bv_virtual_and_pipe() {
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let aliases = shared.path().join("aliases");
    std::fs::write(&aliases, "postmaster root\n").unwrap();
    let base = shared.path().join("vmail");
    std::fs::create_dir(&base).unwrap();
    let ran = shared.path().join("ran");
    let tern_spool = spool(shared.path(), "tern");
    let mut t = configure(&format!(
        "{}virtual_mailbox_domains = virt.example\n\
         virtual_mailbox_maps = inline:{{ v@virt.example=v/ }}\n\
         virtual_mailbox_base = {}\nvirtual_uid_maps = static:65534\n\
         virtual_gid_maps = static:65534\nvirtual_minimum_uid = 100\n\
         transport_maps = inline:{{ pipe.example=pipetest }}\n",
        settings(&tern_spool, &aliases),
        base.display()
    ));
    t.write_master_cf(&format!(
        "{}pickup unix n - n 60 1 pickup\n\
         pipetest unix - n n - - pipe user=nobody argv=/usr/bin/touch {}\n",
        master_cf(t.port),
        ran.display()
    ))
    .unwrap();
    t.launch().unwrap();
    let (code, _, err) = verify(
        &tern_program("sendmail"),
        &t.config_dir().display().to_string(),
        &["v@virt.example", "x@pipe.example"],
    );
    assert_eq!(code, 0, "{err}");
    let root = tern_spool.join("root");
    assert!(
        wait_until(Duration::from_secs(30), || maildir_files(&root).len() == 1),
        "no report\n{}",
        t.log()
    );
    let (_, report) = maildir_files(&root).pop().unwrap();
    let report = String::from_utf8_lossy(&report).into_owned();
    assert!(
        report.contains("<v@virt.example>: delivery via virtual: delivers to maildir"),
        "{report}"
    );
    assert!(
        report.contains("<x@pipe.example>: delivery via pipetest: delivers to command:")
            && report.contains("/usr/bin/touch"),
        "{report}"
    );
    assert!(!ran.exists(), "the command ran");
    assert!(!base.join("v").exists(), "the Maildir was made");
}
