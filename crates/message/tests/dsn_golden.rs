//! Golden comparison of tern_message::dsn with the notices Debian's Postfix 3.7.11 queues.
//!
//! A private Postfix instance (as in /work/shared/POSTFIX-REFERENCE.md) gets four messages,
//! each held by a header_checks HOLD rule so that its queued content can be read with
//! `postcat -bh`; then they are released. local(8) bounces the unknown users
//! (local_recipient_maps is empty), expands an alias for a NOTIFY=SUCCESS recipient, and the
//! notices land in mailbox files (aliases to files). Each notice is then composed by
//! `dsn::compose` from the same inputs (the queued content, the envelope, the agents' reasons
//! from the mail log) and compared line by line, masking only queue ids, dates, message ids
//! and boundaries.
//!
//! The instance is its own (its main.cf, aliases and mailbox files differ from
//! tern_testkit::postfix's); it takes that module's master.cf and its SMTP reply reader. It
//! needs root and Debian's Postfix, and fails, never skips, without them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tern_message::dsn::{self, Action, BodyEncoding, Kind, NotifyClasses, RecipientReport, Ret};
use tern_message::trace::Timestamp;
use tern_testkit::postfix::private_master_cf;
use tern_testkit::smtp::read_reply;

const HOST: &str = "mx.example.test";

struct Instance {
    dir: PathBuf,
    port: u16,
}

impl Instance {
    fn start() -> Self {
        assert!(
            run_ok("id", &["-u"]).trim() == "0",
            "a private Debian Postfix needs root"
        );
        for need in [
            "/usr/sbin/postfix",
            "/usr/sbin/postcat",
            "/etc/postfix/master.cf",
        ] {
            assert!(
                Path::new(need).exists(),
                "{need} missing: install Debian's postfix"
            );
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = PathBuf::from(format!("/tmp/pfref.dsn.{}.{nanos}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        set_mode(&dir, 0o755);
        for sub in ["queue", "data", "spool"] {
            std::fs::create_dir(dir.join(sub)).unwrap();
        }
        run_ok("chown", &["postfix", dir.join("data").to_str().unwrap()]);
        set_mode(&dir.join("data"), 0o700);
        set_mode(&dir.join("spool"), 0o1777);
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display();
        let main_cf = format!(
            "compatibility_level = 3.6\nqueue_directory = {d}/queue\ndata_directory = {d}/data\n\
             mail_spool_directory = {d}/spool\nmaillog_file = {d}/maillog\n\
             maillog_file_prefixes = {d}\ndaemon_directory = /usr/lib/postfix/sbin\n\
             shlib_directory = /usr/lib/postfix\nmeta_directory = /etc/postfix\n\
             inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmyhostname = {HOST}\n\
             mydomain = example.test\nmydestination = $myhostname, localhost\n\
             mynetworks = 127.0.0.1/32\nalias_maps = hash:{d}/aliases\n\
             alias_database = hash:{d}/aliases\nlocal_recipient_maps =\n\
             notify_classes = bounce, 2bounce, resource, software\n\
             bounce_size_limit = 1000\nheader_checks = regexp:{d}/hc\n"
        );
        std::fs::write(dir.join("main.cf"), main_cf).unwrap();
        let debian = std::fs::read_to_string("/etc/postfix/master.cf").unwrap();
        std::fs::write(dir.join("master.cf"), private_master_cf(&debian, port)).unwrap();
        std::fs::write(dir.join("hc"), "/^Subject: held/ HOLD\n").unwrap();
        // Mailboxes are files, written by local(8) as default_privs: world-writable, and no
        // dot-lock needed in a directory nobody may write.
        for mbox in ["sender", "pm", "ok"] {
            let p = dir.join(format!("{mbox}.mbox"));
            std::fs::write(&p, "").unwrap();
            set_mode(&p, 0o666);
        }
        std::fs::write(
            dir.join("aliases"),
            format!(
                "postmaster: {d}/pm.mbox\nsender: {d}/sender.mbox\nok: {d}/ok.mbox\n\
                 lost: nobody-here\n"
            ),
        )
        .unwrap();
        let inst = Self { dir, port };
        let dir_arg = inst.dir.display().to_string();
        run_ok(
            "/usr/sbin/postalias",
            &["-c", &dir_arg, &format!("hash:{dir_arg}/aliases")],
        );
        run_ok("/usr/sbin/postfix", &["-c", &dir_arg, "start"]);
        inst.wait_greeting();
        inst
    }

    fn dir_arg(&self) -> String {
        self.dir.display().to_string()
    }

    fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.join("maillog")).unwrap_or_default()
    }

    fn wait_greeting(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(s) = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)) {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut line = String::new();
                if BufReader::new(&s).read_line(&mut line).is_ok() && line.starts_with("220 ") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("Postfix did not greet; maillog:\n{}", self.maillog());
    }

    /// One SMTP transaction; returns the queue id of the `250 ... queued as` reply.
    fn send(&self, mail: &str, rcpts: &[&str], data: &[u8]) -> String {
        let s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let reply = |r: &mut BufReader<TcpStream>| read_reply(r).unwrap();
        let cmd = |w: &mut TcpStream, r: &mut BufReader<TcpStream>, c: &str, code: &str| {
            w.write_all(format!("{c}\r\n").as_bytes()).unwrap();
            let got = reply(r);
            assert!(got.starts_with(code), "{c}: {got}");
            got
        };
        assert!(reply(&mut r).starts_with("220"));
        cmd(&mut w, &mut r, "EHLO client.example", "250");
        cmd(&mut w, &mut r, &format!("MAIL FROM:{mail}"), "250");
        for rc in rcpts {
            cmd(&mut w, &mut r, &format!("RCPT TO:{rc}"), "250");
        }
        cmd(&mut w, &mut r, "DATA", "354");
        w.write_all(data).unwrap();
        let got = cmd(&mut w, &mut r, ".", "250");
        cmd(&mut w, &mut r, "QUIT", "221");
        got.trim().rsplit(' ').next().unwrap().to_owned()
    }

    /// The queued content of a held message, and its SIZE figure.
    fn postcat(&self, qid: &str) -> (Vec<u8>, u64) {
        let content = Command::new("/usr/sbin/postcat")
            .args(["-c", &self.dir_arg(), "-bh", "-q", qid])
            .output()
            .unwrap()
            .stdout;
        let env = run_ok(
            "/usr/sbin/postcat",
            &["-c", &self.dir_arg(), "-e", "-q", qid],
        );
        let size = env
            .lines()
            .find_map(|l| l.strip_prefix("message_size:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("message_size record");
        (content, size)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let master = std::fs::read_to_string(self.dir.join("queue/pid/master.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let _ = Command::new("/usr/sbin/postfix")
            .args(["-c", &self.dir_arg(), "stop"])
            .output();
        if let Some(pid) = master {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
                std::thread::sleep(Duration::from_millis(50));
            }
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_ok(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The messages of an mbox file, each without the `From ` line, the three headers local(8)
/// prepends (Return-Path:, X-Original-To:, Delivered-To:) and mbox's trailing blank line.
/// Returns (envelope sender, original recipient, message).
fn mbox_messages(mbox: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let text = mbox;
    let mut starts = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        if text[pos..].starts_with(b"From ") && (pos == 0 || text[pos - 1] == b'\n') {
            starts.push(pos);
        }
        pos += text[pos..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(text.len(), |p| p + 1);
    }
    starts.push(text.len());
    let mut out = Vec::new();
    for pair in starts.windows(2) {
        let msg = &text[pair[0]..pair[1]];
        let mut lines: Vec<&[u8]> = msg.split_inclusive(|&c| c == b'\n').collect();
        assert_eq!(lines.pop(), Some(&b"\n"[..]), "mbox separator");
        let rp = String::from_utf8_lossy(lines[1]).trim_end().to_owned();
        let xo = String::from_utf8_lossy(lines[2]).trim_end().to_owned();
        assert!(lines[3].starts_with(b"Delivered-To: "));
        let sender = rp
            .strip_prefix("Return-Path: <")
            .and_then(|s| s.strip_suffix('>'))
            .unwrap()
            .to_owned();
        let rcpt = xo.strip_prefix("X-Original-To: ").unwrap().to_owned();
        out.push((sender, rcpt, lines[4..].concat()));
    }
    out
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no {name}: in\n{msg}"))
}

/// Masks what differs by nature: dates, message ids, boundaries and queue ids.
fn mask(text: &str, boundary: &str, qids: &[&str]) -> Vec<String> {
    text.lines()
        .map(|l| {
            let mut l = l.replace(boundary, "BOUNDARY");
            for (i, q) in qids.iter().enumerate() {
                l = l.replace(q, &format!("QID{i}"));
            }
            for p in ["Date: ", "Arrival-Date: ", "Will-Retry-Until: "] {
                if l.starts_with(p) {
                    l = format!("{p}DATE");
                }
            }
            if let Some(rest) = l.strip_prefix("\tid ") {
                l = format!("\tid {}; DATE", rest.split(';').next().unwrap());
            }
            if l.starts_with("Message-Id: ") {
                l = "Message-Id: MSGID".into();
            }
            l
        })
        .collect()
}

/// A recipient's result as local(8) logged it: (dsn, reason) of `to=<rcpt>`.
fn logged(maillog: &str, qid: &str, rcpt: &str) -> (String, String) {
    let key = format!("{qid}: to=<{rcpt}>,");
    let line = maillog
        .lines()
        .find(|l| l.contains(&key))
        .unwrap_or_else(|| panic!("no {key} in maillog:\n{maillog}"));
    let dsn = line
        .split("dsn=")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let reason = line.split_once(" (").unwrap().1.strip_suffix(')').unwrap();
    (dsn.to_owned(), reason.to_owned())
}

fn report(
    maillog: &str,
    qid: &str,
    rcpt: &str,
    orcpt: &str,
    notify: u8,
    a: Action,
) -> RecipientReport {
    let (status, reason) = logged(maillog, qid, rcpt);
    RecipientReport {
        address: rcpt.to_owned(),
        orig_addr: rcpt.to_owned(),
        dsn_orcpt: orcpt.to_owned(),
        notify,
        status,
        action: a,
        reason,
        diagnostic: None,
        remote_mta: None,
    }
}

struct Case {
    qid: String,
    sender: String,
    envid: Option<&'static str>,
    ret: Option<Ret>,
    content: Vec<u8>,
    size: u64,
    failed: Vec<RecipientReport>,
    succeeded: Vec<RecipientReport>,
}

#[test]
fn notices_match_postfix() {
    let inst = Instance::start();
    let mut body_big = String::new();
    for i in 0..40 {
        let _ = write!(
            body_big,
            "line {i} of a message longer than bounce_size_limit\r\n"
        );
    }
    // (MAIL FROM, RCPT TOs, data)
    let sends: Vec<(&str, Vec<&str>, Vec<u8>)> = vec![
        (
            "<sender@mx.example.test> RET=HDRS ENVID=env-42",
            vec![
                "<nouser@mx.example.test> NOTIFY=FAILURE ORCPT=rfc822;orig-nouser@example.org",
                "<ok@mx.example.test> NOTIFY=SUCCESS,FAILURE",
                "<Other.User@mx.example.test>",
            ],
            b"From: Sender <sender@mx.example.test>\r\nTo: nouser@mx.example.test\r\n\
              Subject: held one\r\nMessage-ID: <one@example.test>\r\n\r\nbody\r\n.\r\n"
                .to_vec(),
        ),
        (
            "<sender@mx.example.test> BODY=8BITMIME",
            vec!["<nouser2@mx.example.test>", "<lost@mx.example.test>"],
            b"From: sender@mx.example.test\r\nSubject: held two \xc3\xa9\r\n\r\n\
              caf\xc3\xa9 body\r\n\tindented\r\n.\r\n"
                .to_vec(),
        ),
        (
            "<>",
            vec!["<nouser3@mx.example.test>"],
            b"From: MAILER-DAEMON@elsewhere.test\r\nSubject: held three\r\n\r\nnotice\r\n.\r\n"
                .to_vec(),
        ),
        (
            "<sender@mx.example.test>",
            vec!["<nouser4@mx.example.test>"],
            format!("Subject: held four\r\nX-Long: a\r\n  b\r\n\r\n{body_big}.\r\n").into_bytes(),
        ),
    ];
    let mut cases = Vec::new();
    for (i, (mail, rcpts, data)) in sends.iter().enumerate() {
        let qid = inst.send(mail, rcpts, data);
        let sender = mail
            .split('>')
            .next()
            .unwrap()
            .trim_start_matches('<')
            .to_owned();
        let (content, size) = inst.postcat(&qid);
        assert!(content.ends_with(b"\n"), "{qid}");
        cases.push(Case {
            qid,
            sender,
            envid: (i == 0).then_some("env-42"),
            ret: (i == 0).then_some(Ret::Hdrs),
            content,
            size,
            failed: Vec::new(),
            succeeded: Vec::new(),
        });
    }
    for c in &cases {
        run_ok(
            "/usr/sbin/postsuper",
            &["-c", &inst.dir_arg(), "-H", &c.qid],
        );
        run_ok(
            "/usr/sbin/postqueue",
            &["-c", &inst.dir_arg(), "-i", &c.qid],
        );
    }
    // 4 sender notices (3 failures, 1 success), 4 postmaster notices.
    let deadline = Instant::now() + Duration::from_secs(30);
    let count = |name: &str| {
        let b = std::fs::read(inst.dir.join(name)).unwrap_or_default();
        mbox_messages(&b).len()
    };
    while Instant::now() < deadline && (count("sender.mbox") < 4 || count("pm.mbox") < 4) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = inst.maillog();
    assert_eq!(count("sender.mbox"), 4, "maillog:\n{log}");
    assert_eq!(count("pm.mbox"), 4, "maillog:\n{log}");

    // The per-recipient results, as local(8) logged them.
    let orcpt = |a: &str| format!("rfc822;{a}");
    cases[0].failed = vec![
        report(
            &log,
            &cases[0].qid,
            "nouser@mx.example.test",
            "rfc822;orig-nouser@example.org",
            4,
            Action::Failed,
        ),
        report(
            &log,
            &cases[0].qid,
            "Other.User@mx.example.test",
            &orcpt("Other.User@mx.example.test"),
            0,
            Action::Failed,
        ),
    ];
    // local(8) logs the file delivery of the expanded alias, but tells the trace service
    // about the expansion itself (local/dotforward, alias.c: "alias expanded").
    let mut ok = report(
        &log,
        &cases[0].qid,
        "ok@mx.example.test",
        &orcpt("ok@mx.example.test"),
        6,
        Action::Expanded,
    );
    ok.reason = "delivery via local: alias expanded".into();
    cases[0].succeeded = vec![ok];
    for (i, rc) in [(1, "nouser2"), (2, "nouser3"), (3, "nouser4")] {
        let a = format!("{rc}@mx.example.test");
        cases[i].failed = vec![report(
            &log,
            &cases[i].qid,
            &a,
            &orcpt(&a),
            0,
            Action::Failed,
        )];
    }
    // An alias expanded to an unknown user: "(expanded from <lost@...>)".
    let lost = "lost@mx.example.test";
    let mut expanded = report(
        &log,
        &cases[1].qid,
        "nobody-here@mx.example.test",
        &orcpt(lost),
        0,
        Action::Failed,
    );
    expanded.orig_addr = lost.into();
    cases[1].failed.push(expanded);
    // bounce(8) lists recipients in the order the agents appended them to its log, which is
    // the order of their mail log lines.
    for c in &mut cases {
        let qid = c.qid.clone();
        c.failed
            .sort_by_key(|r| log.find(&format!("{qid}: to=<{}>,", r.address)));
    }

    let mut reporter = dsn::Reporter::new(HOST);
    reporter.notify_classes = NotifyClasses::parse("bounce, 2bounce, resource, software");
    reporter.bounce_size_limit = 1000;
    let zone = |t: i64| Timestamp::utc(t);
    let mut notices = Vec::new();
    for name in ["sender.mbox", "pm.mbox"] {
        notices.extend(mbox_messages(&std::fs::read(inst.dir.join(name)).unwrap()));
    }
    let mut compared = 0;
    for (env_sender, env_rcpt, real) in &notices {
        let real = String::from_utf8(real.clone()).unwrap();
        let orig_qid = header(&real, "X-Postfix-Queue-ID");
        let subject = header(&real, "Subject");
        let c = cases.iter().find(|c| c.qid == orig_qid).unwrap();
        let boundary_line = real.lines().find(|l| l.starts_with("\tboundary=")).unwrap();
        let boundary = boundary_line
            .trim_start_matches("\tboundary=\"")
            .trim_end_matches('"');
        let now: i64 = boundary
            .split('.')
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let new_qid = real
            .lines()
            .find_map(|l| l.strip_prefix("\tid "))
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        let kind = if subject.starts_with("Successful") {
            Kind::Success
        } else {
            Kind::Failure
        };
        let all = dsn::addressees(kind, &c.sender, c.ret, &reporter).unwrap();
        let addressee = all
            .iter()
            .find(|a| {
                let want = if a.envelope_sender.is_empty() {
                    ""
                } else {
                    env_sender.as_str()
                };
                a.envelope_sender == want && a.recipient == *env_rcpt
            })
            .unwrap_or_else(|| {
                panic!("{orig_qid} {subject}: no addressee for {env_sender} -> {env_rcpt}: {all:?}")
            });
        let original = dsn::Original {
            queue_id: &c.qid,
            sender: &c.sender,
            arrival: now,
            envid: c.envid,
            encoding: BodyEncoding::Unknown,
            smtputf8: false,
            size: c.size,
        };
        let new = dsn::NewMessage {
            queue_id: new_qid,
            now,
            zone: &zone,
        };
        let rcpts = if kind == Kind::Success {
            &c.succeeded
        } else {
            &c.failed
        };
        let mut content: &[u8] = &c.content;
        let (mine, _) = dsn::compose_to_vec(
            addressee,
            &original,
            rcpts,
            Some(&mut content),
            &reporter,
            &new,
        )
        .unwrap()
        .expect("a notice");
        let mine = String::from_utf8(mine).unwrap();
        let qids = [c.qid.as_str(), new_qid];
        let (a, b) = (mask(&real, boundary, &qids), mask(&mine, boundary, &qids));
        for (n, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(
                x,
                y,
                "{orig_qid} {subject} line {}:\nPostfix:\n{real}\nTern:\n{mine}",
                n + 1
            );
        }
        assert_eq!(
            a.len(),
            b.len(),
            "{orig_qid} {subject}:\nPostfix:\n{real}\nTern:\n{mine}"
        );
        compared += 1;
    }
    assert_eq!(compared, 8);
}
