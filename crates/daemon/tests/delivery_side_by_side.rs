//! local(8) side by side with Debian's Postfix: the same 32 messages (plain, 8-bit, with
//! and without Message-ID/Date/From, long headers, `From ` lines in the body, several
//! recipients, an alias to two users, user+ext, ...) through a private Postfix instance
//! and through Tern with the same main.cf settings: into an mbox spool
//! (mail_spool_directory), into Maildirs in a mail_spool_directory ending in `/`, and
//! into Maildirs in the users' homes (home_mailbox = Maildir/).
//!
//! Compared: the SMTP outcome of each message; each mailbox's messages, apart from the
//! queue ids, the dates (Date:, Received:'s, Message-ID's time part, the `From ` line's)
//! that differ between two runs of any MTA; and the log lines of qmgr, local and bounce
//! about each message, apart from pids, queue ids, delays and sizes. A difference prints
//! as a line diff, Postfix `-`, Tern `+`.
//!
//! Postfix's local(8) delivers only to real users: the test makes `tern-t-*` users.
//! Needs root, Debian's Postfix, and `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used, clippy::format_collect)] // test code: a failure is the test's failure; clarity over allocations

mod deliver_util;
mod delivery_util;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use deliver_util::{TestUser, configure};
use delivery_util::{Client, diff, header, maildir_files, mbox_messages, wait_until};
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::support::{constant_fields, program_and_text};

/// The Date: the messages that have one carry.
const FIXED_DATE: &str = "Mon, 01 Jan 2024 00:00:00 +0000";

/// One message of the workload.
struct Case {
    name: &'static str,
    from: String,
    /// MAIL FROM parameters (` BODY=8BITMIME`).
    params: &'static str,
    rcpts: Vec<String>,
    content: Vec<u8>,
}

/// The users of one run: three real ones and an alias to the first two.
struct Names {
    users: [String; 3],
    pair: String,
}

fn addr(local: &str) -> String {
    format!("{local}@mx.example.test")
}

/// The workload. Every message has an `X-Case:` header naming it.
fn cases(n: &Names) -> Vec<Case> {
    let [u1, u2, u3] = &n.users;
    let std_headers = |case: &str, extra: &str| {
        format!(
            "X-Case: {case}\nFrom: Sender <sender@example.org>\nTo: {}\nSubject: {case}\n\
             Date: {FIXED_DATE}\nMessage-ID: <{case}@example.org>\n{extra}",
            addr(u1)
        )
    };
    let plain = |case: &'static str, extra: &str, body: &str| Case {
        name: case,
        from: "sender@example.org".into(),
        params: "",
        rcpts: vec![addr(u1)],
        content: format!("{}\n{body}", std_headers(case, extra)).into_bytes(),
    };
    let to = |mut c: Case, rcpts: Vec<String>| {
        c.rcpts = rcpts;
        c
    };
    let raw = |case: &'static str, text: &str| Case {
        name: case,
        from: "sender@example.org".into(),
        params: "",
        rcpts: vec![addr(u1)],
        content: text.as_bytes().to_vec(),
    };
    let mut eight = plain("eightbit-body", "", "");
    eight.params = " BODY=8BITMIME";
    eight
        .content
        .extend_from_slice("Gr\u{fc}\u{df}e aus K\u{f6}ln\n".as_bytes());
    eight.content.extend_from_slice(b"latin1 \xe9t\xe9\n");
    let mut eight_bare = plain("eightbit-no-param", "", "");
    eight_bare
        .content
        .extend_from_slice("caf\u{e9} without BODY=\n".as_bytes());
    let mut utf8_subject = raw(
        "utf8-subject",
        "X-Case: utf8-subject\nFrom: sender@example.org\n",
    );
    utf8_subject.params = " BODY=8BITMIME";
    utf8_subject
        .content
        .extend_from_slice("Subject: \u{e9}t\u{e9} \u{2603}\n\nbody\n".as_bytes());
    let folded: String = (0..20)
        .map(|i| format!(" word{i} of a folded subject\n"))
        .collect();
    let mut null_sender = plain("null-sender", "", "a bounce-like message\n");
    null_sender.from = String::new();
    let mut ext_sender = plain("sender-ext", "", "hi\n");
    ext_sender.from = "sender+tag@example.org".into();
    vec![
        plain("plain", "", "hello\nworld\n"),
        eight,
        eight_bare,
        raw(
            "no-message-id",
            &format!(
                "X-Case: no-message-id\nFrom: sender@example.org\nDate: {FIXED_DATE}\n\
                 Subject: no id\n\nbody\n"
            ),
        ),
        raw(
            "no-date",
            "X-Case: no-date\nFrom: sender@example.org\nMessage-ID: <no-date@example.org>\n\
             Subject: no date\n\nbody\n",
        ),
        raw(
            "no-from",
            &format!(
                "X-Case: no-from\nDate: {FIXED_DATE}\nMessage-ID: <no-from@example.org>\n\
                 Subject: no from\n\nbody\n"
            ),
        ),
        raw("no-headers", "X-Case: no-headers\n\nonly a body\n"),
        raw(
            "long-folded-header",
            &format!("X-Case: long-folded-header\nSubject: start\n{folded}\nbody\n"),
        ),
        plain(
            "long-header-line",
            &format!("X-Long: {}\n", "a".repeat(1500)),
            "body\n",
        ),
        plain(
            "over-long-header-line",
            &format!("X-Longer: {}\n", "b".repeat(3000)),
            "body\n",
        ),
        plain(
            "from-lines",
            "",
            "From the start\nmiddle\nFrom me to you\n>From quoted\n>>From twice\nFrom\n",
        ),
        plain("dot-lines", "", ".\n..\n.hidden\nend.\n"),
        to(
            plain("several-rcpts", "", "to three\n"),
            vec![addr(u1), addr(u2), addr(u3)],
        ),
        to(
            plain("alias-pair", "", "to the pair\n"),
            vec![addr(&n.pair)],
        ),
        to(
            plain("user-ext", "", "with an extension\n"),
            vec![addr(&format!("{u1}+ext"))],
        ),
        to(
            plain("alias-ext", "", "alias with an extension\n"),
            vec![addr(&format!("{}+ext", n.pair))],
        ),
        to(
            plain("upper-case-rcpt", "", "shouting\n"),
            vec![addr(&u2.to_ascii_uppercase())],
        ),
        to(
            plain("duplicate-rcpt", "", "twice\n"),
            vec![addr(u1), addr(u1)],
        ),
        to(
            plain("alias-and-member", "", "overlap\n"),
            vec![addr(&n.pair), addr(u1)],
        ),
        null_sender,
        ext_sender,
        plain("return-path", "Return-Path: <forged@example.net>\n", "hi\n"),
        plain(
            "delivered-to",
            "Delivered-To: someone@example.net\n",
            "already delivered elsewhere\n",
        ),
        plain(
            "x-original-to",
            "X-Original-To: other@example.net\n",
            "hi\n",
        ),
        utf8_subject,
        plain(
            "mime",
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n",
            "preamble\n--b1\nContent-Type: text/plain\n\npart one\n--b1\n\
             Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n\
             AAECAw==\n--b1--\n",
        ),
        raw(
            "empty-body",
            &format!("X-Case: empty-body\nFrom: sender@example.org\nDate: {FIXED_DATE}\n\n"),
        ),
        raw(
            "headers-only",
            &format!("X-Case: headers-only\nFrom: sender@example.org\nDate: {FIXED_DATE}\n"),
        ),
        plain(
            "long-body-line",
            "",
            &format!("{}\nshort\n", "c".repeat(5000)),
        ),
        plain("bcc", "Bcc: hidden@example.net\n", "hi\n"),
        plain(
            "received-before",
            "Received: from a.example by b.example; Mon, 01 Jan 2024 00:00:00 +0000\n\
             Received: from c.example by a.example; Mon, 01 Jan 2024 00:00:00 +0000\n",
            "hops\n",
        ),
        plain(
            "whitespace",
            "X-Tabbed: first\n\tsecond line\n",
            "trailing spaces   \n\ttab first\n\n\nblank lines above\n",
        ),
    ]
}

/// What one instance made of the workload.
struct Run {
    /// Case -> queue id, or the refusal.
    outcome: BTreeMap<&'static str, Result<String, String>>,
    log: String,
}

/// Sends the workload over one session; waits (at most 60 s) until every accepted
/// message is removed from the queue.
fn run(port: u16, cases: &[Case], log: impl Fn() -> String) -> Run {
    let mut c =
        Client::connect(&format!("127.0.0.1:{port}"), Duration::from_secs(30)).expect("connect");
    let mut outcome = BTreeMap::new();
    for case in cases {
        let rcpts: Vec<&str> = case.rcpts.iter().map(String::as_str).collect();
        let r = c
            .send(&case.from, case.params, &rcpts, &case.content)
            .expect("session");
        outcome.insert(case.name, r.map_err(|e| e.0));
    }
    c.quit();
    let ids: Vec<String> = outcome.values().filter_map(|r| r.clone().ok()).collect();
    let all_removed = || {
        let l = log();
        ids.iter().all(|id| l.contains(&format!("{id}: removed")))
    };
    let done = wait_until(Duration::from_mins(1), all_removed);
    let log = log();
    assert!(done, "not every message was delivered:\n{log}");
    Run { outcome, log }
}

/// A message with the run's variable parts made constant: queue ids, the dates that
/// cleanup and local add, the `From ` line's date.
fn normalize(msg: &[u8], ids: &[String]) -> String {
    let mut text = String::from_utf8_lossy(msg).into_owned();
    for id in ids {
        text = text.replace(id.as_str(), "QID");
    }
    // Logical header lines (a header with its continuation lines), then the body.
    let (head, body) = match text.find("\n\n") {
        Some(i) => (text[..=i].to_owned(), text[i + 1..].to_owned()),
        None => (text.clone(), String::new()),
    };
    let mut headers: Vec<String> = Vec::new();
    for line in head.split_inclusive('\n') {
        match headers.last_mut() {
            Some(h) if line.starts_with([' ', '\t']) => h.push_str(line),
            _ => headers.push(line.to_owned()),
        }
    }
    let mut out = String::new();
    for h in headers {
        let lower = h.to_ascii_lowercase();
        if h.starts_with("From ") {
            let (sender, date) = h.split_once("  ").unwrap_or((&h, ""));
            let _ = write!(out, "{sender}  {}", date_shape(date));
        } else if lower.starts_with("received:") && h.contains("QID") {
            let cut = h.rfind(';').unwrap_or(h.len());
            let _ = write!(out, "{}{}", &h[..cut], date_shape(&h[cut..]));
        } else if lower.starts_with("date:") && !h.contains(FIXED_DATE) {
            let _ = write!(out, "{}{}", &h[..5], date_shape(&h[5..]));
        } else if lower.starts_with("message-id:") && h.contains(".QID@") {
            let start = h.find('<').map_or(0, |i| i + 1);
            let end = h.find(".QID@").unwrap_or(start);
            let _ = write!(
                out,
                "{}{}{}",
                &h[..start],
                date_shape(&h[start..end]),
                &h[end..]
            );
        } else {
            out.push_str(&h);
        }
    }
    out.push_str(&body);
    out
}

/// A date with its digits as `9` and its day and month names as `Day` and `Mon`: the
/// format is compared, not the moment.
fn date_shape(date: &str) -> String {
    const NAMES: [&str; 19] = [
        "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Jan", "Feb", "Mar", "Apr", "May", "Jun",
        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut out: String = date
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    for (i, name) in NAMES.iter().enumerate() {
        out = out.replace(name, if i < 7 { "Day" } else { "Mon" });
    }
    out
}

/// Each mailbox's messages by (user, case), normalized and sorted.
fn mailboxes(
    mailbox: impl Fn(&str) -> PathBuf,
    maildir: bool,
    users: &[String],
    ids: &[String],
) -> Mailboxes {
    let mut out: Mailboxes = BTreeMap::new();
    for u in users {
        let messages: Vec<Vec<u8>> = if maildir {
            maildir_files(&mailbox(u))
                .into_iter()
                .map(|(_, m)| m)
                .collect()
        } else {
            mbox_messages(&std::fs::read(mailbox(u)).unwrap_or_default())
        };
        for m in messages {
            let case = header(&m, "X-Case").unwrap_or_else(|| "(no X-Case)".into());
            out.entry((u.clone(), case))
                .or_default()
                .push(normalize(&m, ids));
        }
    }
    // Who owns the mailboxes, and their modes.
    for u in users {
        let base = mailbox(u);
        let mut paths = vec![("", base.clone())];
        if maildir {
            for sub in ["tmp", "new", "cur"] {
                paths.push((sub, base.join(sub)));
            }
            if let Some((p, _)) = maildir_files(&base).into_iter().next() {
                paths.push(("new/FILE", p));
            }
        }
        for (what, p) in paths {
            let line = std::fs::metadata(&p).map_or_else(
                |e| format!("{what}: {e}"),
                |m| {
                    format!(
                        "{what}: uid {} gid {} mode {:o}",
                        m.uid(),
                        m.gid(),
                        m.mode() & 0o7777
                    )
                },
            );
            out.entry((u.clone(), "(ownership)".into()))
                .or_default()
                .push(line);
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

type Mailboxes = BTreeMap<(String, String), Vec<String>>;

/// Log lines of `programs` about each case's message: program and text, with queue
/// id, delays and size made constant; sorted (agents run concurrently).
fn log_lines(run: &Run) -> BTreeMap<&'static str, Vec<String>> {
    let programs = ["postfix/qmgr", "postfix/local", "postfix/bounce"];
    let mut out = BTreeMap::new();
    for (case, r) in &run.outcome {
        let Ok(id) = r else { continue };
        let mut lines = Vec::new();
        for line in run.log.lines() {
            let Some((program, text)) = program_and_text(line) else {
                continue;
            };
            if !programs.contains(&program) || !text.starts_with(&format!("{id}: ")) {
                continue;
            }
            let text = text.replacen(id.as_str(), "QID", 1);
            let text = constant_fields(&text, &["delay=", "delays=", "size="]);
            lines.push(format!("{program}: {text}"));
        }
        lines.sort();
        out.insert(*case, lines);
    }
    out
}

/// A spool directory anyone may create a mailbox in (as the testkit's Postfix spool).
fn spool(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir(&p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o1777)).unwrap();
    p
}

/// Replaces (or adds) `settings` lines in a main.cf text.
fn with_settings(main_cf: &str, settings: &str) -> String {
    let names: Vec<&str> = settings
        .lines()
        .filter_map(|l| l.split_once('=').map(|(n, _)| n.trim()))
        .collect();
    let mut out: String = main_cf
        .lines()
        .filter(|l| {
            let name = l.split_once('=').map_or("", |(n, _)| n.trim());
            !names.contains(&name)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(settings);
    out
}

/// Where local(8) delivers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// An mbox per user in mail_spool_directory.
    SpoolMbox,
    /// A Maildir per user in a mail_spool_directory ending in `/`.
    SpoolMaildir,
    /// home_mailbox = Maildir/.
    HomeMaildir,
}

/// The whole comparison for one mailbox form.
fn side_by_side(prefix: &str, form: Form) {
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let homes = shared.path().join("home");
    std::fs::create_dir(&homes).unwrap();
    let users: Vec<TestUser> = (1..=3)
        .map(|i| {
            let name = format!("{prefix}{i}");
            let home = (form == Form::HomeMaildir).then(|| homes.join(&name));
            TestUser::new(&name, home.as_deref())
        })
        .collect();
    let names = Names {
        users: [0, 1, 2].map(|i| users[i].name.clone()),
        pair: format!("{prefix}pair"),
    };
    let maildir = form != Form::SpoolMbox;
    // The same aliases(5) source in each instance's own directory, built by its own
    // postalias (Tern reads its own hash: format, not Berkeley DB).
    let aliases_text = format!(
        "postmaster: root\n{}: {}, {}\n",
        names.pair, names.users[0], names.users[1]
    );
    let aliases = |who: &str, postalias: &Path| {
        let dir = shared.path().join(format!("{who}-etc"));
        std::fs::create_dir(&dir).unwrap();
        let file = dir.join("aliases");
        std::fs::write(&file, &aliases_text).unwrap();
        let built = Command::new(postalias)
            .arg(format!("hash:{}", file.display()))
            .output()
            .expect("postalias");
        assert!(built.status.success(), "{}: {built:?}", postalias.display());
        file
    };
    let tern_postalias = tern_testkit::tern::postfix_binary()
        .unwrap()
        .with_file_name("postalias");
    let (slash, home_mailbox) = match form {
        Form::SpoolMbox => ("", ""),
        Form::SpoolMaildir => ("/", ""),
        Form::HomeMaildir => ("", "home_mailbox = Maildir/\n"),
    };
    let settings = |spool: &Path, aliases: &Path| {
        format!(
            "mydomain = example.test\nmydestination = $myhostname, localhost\n\
             recipient_delimiter = +\nalias_maps = hash:{a}\nalias_database = hash:{a}\n\
             mail_spool_directory = {}{slash}\n{home_mailbox}",
            spool.display(),
            a = aliases.display(),
        )
    };
    let workload = cases(&names);

    let pf_spool = spool(shared.path(), "postfix");
    let pf_aliases = aliases("postfix", Path::new("/usr/sbin/postalias"));
    let pf = PostfixInstance::start(&settings(&pf_spool, &pf_aliases)).expect("postfix");
    let pf_run = run(pf.port(), &workload, || pf.maillog());

    // Tern delivers into the same home directories: Postfix's Maildirs move aside.
    if form == Form::HomeMaildir {
        for u in &names.users {
            let h = homes.join(u);
            std::fs::rename(h.join("Maildir"), h.join("Maildir.postfix")).unwrap();
        }
    }
    let tern_spool = spool(shared.path(), "tern");
    let mut t = configure("");
    let main_cf = t.config_dir().join("main.cf");
    let text = std::fs::read_to_string(&main_cf).unwrap();
    let tern_aliases = aliases("tern", &tern_postalias);
    std::fs::write(
        &main_cf,
        with_settings(&text, &settings(&tern_spool, &tern_aliases)),
    )
    .unwrap();
    t.launch().expect("launch");
    let tern_run = run(t.port, &workload, || t.log());

    let mut report = String::new();
    // The SMTP outcome of each message.
    for case in &workload {
        let (p, r) = (&pf_run.outcome[case.name], &tern_run.outcome[case.name]);
        if p.is_ok() != r.is_ok() || p.as_ref().err() != r.as_ref().err() {
            let _ = write!(report, "== {}: SMTP\n- {p:?}\n+ {r:?}\n", case.name);
        }
    }
    // The mailboxes.
    let ids = |run: &Run| -> Vec<String> {
        run.outcome
            .values()
            .filter_map(|r| r.clone().ok())
            .collect()
    };
    let mailbox = |spool: &Path, home_dir: &'static str| {
        let (spool, homes) = (spool.to_owned(), homes.clone());
        move |u: &str| match form {
            Form::HomeMaildir => homes.join(u).join(home_dir),
            _ => spool.join(u),
        }
    };
    let pf_boxes = mailboxes(
        mailbox(&pf_spool, "Maildir.postfix"),
        maildir,
        &names.users,
        &ids(&pf_run),
    );
    let tern_boxes = mailboxes(
        mailbox(&tern_spool, "Maildir"),
        maildir,
        &names.users,
        &ids(&tern_run),
    );
    // TERN_SIDE_BY_SIDE_DUMP=DIR keeps both sides' normalized mailboxes for a look.
    if let Some(dir) = std::env::var_os("TERN_SIDE_BY_SIDE_DUMP") {
        for (who, boxes) in [("postfix", &pf_boxes), ("tern", &tern_boxes)] {
            let text: String = boxes
                .iter()
                .map(|((u, c), m)| format!("##### {u} {c}\n{}", m.join("~~~~\n")))
                .collect();
            std::fs::write(Path::new(&dir).join(format!("{prefix}-{who}")), text).unwrap();
        }
    }
    let keys: std::collections::BTreeSet<_> = pf_boxes.keys().chain(tern_boxes.keys()).collect();
    for key in keys {
        let (p, r) = (
            pf_boxes.get(key).cloned().unwrap_or_default(),
            tern_boxes.get(key).cloned().unwrap_or_default(),
        );
        if p != r {
            let _ = write!(
                report,
                "== mailbox of {} case {}: {} copies in Postfix's, {} in Tern's\n{}",
                key.0,
                key.1,
                p.len(),
                r.len(),
                diff(&p.join("\n~~~~\n"), &r.join("\n~~~~\n"))
            );
        }
    }
    // The log lines.
    let (pl, tl) = (log_lines(&pf_run), log_lines(&tern_run));
    eprintln!(
        "{prefix}: {} cases, {} accepted by Postfix and {} by Tern; {} messages in \
         Postfix's mailboxes, {} in Tern's; {} log lines and {}",
        workload.len(),
        pf_run.outcome.values().filter(|r| r.is_ok()).count(),
        tern_run.outcome.values().filter(|r| r.is_ok()).count(),
        pf_boxes.values().map(Vec::len).sum::<usize>(),
        tern_boxes.values().map(Vec::len).sum::<usize>(),
        pl.values().map(Vec::len).sum::<usize>(),
        tl.values().map(Vec::len).sum::<usize>(),
    );
    for case in &workload {
        let (p, r) = (
            pl.get(case.name).cloned().unwrap_or_default(),
            tl.get(case.name).cloned().unwrap_or_default(),
        );
        if p != r {
            let _ = write!(
                report,
                "== log of case {}\n{}",
                case.name,
                diff(&p.join("\n"), &r.join("\n"))
            );
        }
    }
    assert!(
        report.is_empty(),
        "Tern differs from Postfix (- Postfix, + Tern):\n{report}"
    );
    // Every case reached a mailbox.
    for case in &workload {
        if pf_run.outcome[case.name].is_ok() {
            assert!(
                pf_boxes.keys().any(|(_, c)| c == case.name),
                "{} delivered nowhere",
                case.name
            );
        }
    }
}

#[test]
fn mbox_spool_as_postfix_delivers_it() {
    side_by_side("tern-t-sbm", Form::SpoolMbox);
}

#[test]
fn maildir_spool_as_postfix_delivers_it() {
    side_by_side("tern-t-sbd", Form::SpoolMaildir);
}

#[test]
fn home_maildir_as_postfix_delivers_it() {
    side_by_side("tern-t-sbh", Form::HomeMaildir);
}
