//! Local submission through `sendmail` -> `postdrop` -> maildrop/ -> pickup -> cleanup ->
//! qmgr -> local(8), side by side with Debian's Postfix doing the same with its own
//! sendmail: the delivered messages (apart from queue ids, dates and host names), the
//! pickup log line, `mail -s` (s-nail) through Tern's sendmail, a message submitted
//! while the daemon is down (it waits in maildrop/, sendmail exits 0, and it is
//! delivered once the daemon starts), and sendmail's exit codes and messages for bad
//! usage, equal to Debian's.
//!
//! Needs root, Debian's postfix and s-nail, and `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

mod deliver_util;
mod delivery_util;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use deliver_util::{TestUser, configure, master_cf, run_with_input, spool, tern_program, wait_for};
use delivery_util::{diff, maildir_files, wait_until};
use tern_testkit::postfix::PostfixInstance;

const HOST: &str = "sm.example.test";

fn settings(spool: &Path) -> String {
    format!(
        "myhostname = {HOST}\nmydomain = example.test\nmydestination = $myhostname, localhost\n\
         mail_spool_directory = {}/\n",
        spool.display()
    )
}

/// A delivered message with what differs between two MTAs' runs made constant: the
/// queue id, dates, the Message-Id's time and id.
fn normalize(msg: &[u8]) -> String {
    let text = String::from_utf8_lossy(msg);
    let mut out = String::new();
    let mut in_received = false;
    for line in text.lines() {
        if line.is_empty() {
            in_received = false;
        }
        if in_received && line.starts_with('\t') {
            out.push_str("\tid QID; DATE\n");
            continue;
        }
        in_received = line.starts_with("Received:");
        let line = if line.starts_with("Date:") {
            "Date: DATE".to_owned()
        } else if line.starts_with("Message-Id:") {
            "Message-Id: <ID>".to_owned()
        } else {
            line.to_owned()
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A Tern instance (not started) with pickup, delivering into Maildirs in a spool of a
/// temporary directory, and a user made for the test: (the directory, the user, the
/// spool, the instance).
fn pickup_instance(
    user: &str,
) -> (
    tempfile::TempDir,
    TestUser,
    PathBuf,
    tern_testkit::tern::Tern,
) {
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let u = TestUser::new(user, None);
    let tern_spool = spool(shared.path(), "tern");
    let t = configure(&settings(&tern_spool));
    t.write_master_cf(&format!(
        "{}pickup unix n - n 60 1 pickup\n",
        master_cf(t.port)
    ))
    .unwrap();
    (shared, u, tern_spool, t)
}

/// A running instance whose relayhost is a dead port (and whose backoff and queue runs
/// are an hour away), with one message from `sendmail` deferred there: (instance, its
/// configuration directory).
fn deferred_message(subject: &str) -> (tern_testkit::tern::Tern, String) {
    let mut t = configure(
        "relayhost = [127.0.0.1]:1\nminimal_backoff_time = 1h\nmaximal_backoff_time = 2h\n\
         queue_run_delay = 1h\n",
    );
    t.write_master_cf(&format!(
        "{}pickup unix n - n 60 1 pickup\nsmtp unix - - n - - smtp\nrelay unix - - n - - smtp\n",
        master_cf(t.port)
    ))
    .unwrap();
    t.launch().unwrap();
    let conf = t.config_dir().display().to_string();
    let (code, err) = run_with_input(
        &tern_program("sendmail"),
        &["-C", &conf, "someone@example.com"],
        format!("Subject: {subject}\n\nx\n").as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    wait_for(|| t.log(), "status=deferred", 1);
    // The line is logged before the file moves from active/ to deferred/.
    assert!(
        wait_until(Duration::from_secs(10), || !deferred_files(&t).is_empty()),
        "{}",
        t.log()
    );
    (t, conf)
}

/// The files in deferred/'s hash directories.
fn deferred_files(t: &tern_testkit::tern::Tern) -> Vec<PathBuf> {
    let Ok(dirs) = std::fs::read_dir(t.queue_dir().join("deferred")) else {
        return Vec::new();
    };
    dirs.flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|d| {
            std::fs::read_dir(d.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
        })
        .collect()
}

/// Submits the same messages with each MTA's sendmail and compares what arrives.
#[test]
fn sendmail_delivers_as_postfix_does() {
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let u1 = TestUser::new("tern-t-sm1", None);
    let u2 = TestUser::new("tern-t-sm2", None);
    // (arguments, message)
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["-t".into()],
            format!(
                "To: {a}\nCc: Two <{b}>\nBcc: {b}\nSubject: dash t\n\nline one\n.\nafter the dot\n",
                a = u1.name,
                b = u2.name
            ),
        ),
        (
            vec![
                "-i".into(),
                "-F".into(),
                "Cron Daemon".into(),
                u1.name.clone(),
            ],
            "Subject: with -i\r\n\r\ncarriage returns\r\n.\r\nkept after the dot\r\n".into(),
        ),
        (
            vec!["-f".into(), "other@example.org".into(), u2.name.clone()],
            "From x  Mon Jan  1 00:00:00 2024\nSubject: from line\n\nbody\n".into(),
        ),
    ];
    let submit = |sendmail: &Path, conf: &str| {
        for (args, msg) in &cases {
            let mut a: Vec<&str> = vec!["-C", conf];
            a.extend(args.iter().map(String::as_str));
            let (code, err) = run_with_input(sendmail, &a, msg.as_bytes());
            assert_eq!(code, 0, "{} {a:?}: {err}", sendmail.display());
        }
    };
    let collect = |spool: &Path| -> Vec<String> {
        let mut all = Vec::new();
        for u in [&u1, &u2] {
            for (_, m) in maildir_files(&spool.join(&u.name)) {
                all.push(normalize(&m));
            }
        }
        all.sort();
        all
    };
    // Four deliveries: case 1 to both users (Bcc is one of them), 2 and 3 to one each.
    let want = 4;

    let pf_spool = spool(shared.path(), "postfix");
    let pf = PostfixInstance::start(&settings(&pf_spool)).expect("postfix");
    submit(
        Path::new("/usr/sbin/sendmail"),
        &pf.dir().display().to_string(),
    );
    assert!(
        wait_until(Duration::from_secs(30), || collect(&pf_spool).len() >= want),
        "Postfix delivered {:?}\n{}",
        collect(&pf_spool),
        pf.maillog()
    );

    let tern_spool = spool(shared.path(), "tern");
    let mut t = configure(&settings(&tern_spool));
    t.write_master_cf(&format!(
        "{}pickup unix n - n 60 1 pickup\n",
        master_cf(t.port)
    ))
    .unwrap();
    t.launch().unwrap();
    submit(
        &tern_program("sendmail"),
        &t.config_dir().display().to_string(),
    );
    assert!(
        wait_until(Duration::from_secs(30), || collect(&tern_spool).len()
            >= want),
        "Tern delivered {:?}\n{}",
        collect(&tern_spool),
        t.log()
    );
    let (p, n) = (
        collect(&pf_spool).join("----\n"),
        collect(&tern_spool).join("----\n"),
    );
    assert_eq!(p, n, "Postfix -, Tern +:\n{}", diff(&p, &n));
    // pickup's line, as Postfix's: uid and the sender as given.
    for log in [pf.maillog(), t.log()] {
        assert!(
            log.contains(": uid=0 from=<root>") && log.contains(": uid=0 from=<other@example.org>"),
            "{log}"
        );
    }
}

/// `mail -s` (s-nail) with Tern's sendmail as its mta, and a submission while the
/// daemon is down.
#[test]
fn mail_command_and_daemon_down() {
    let (shared, u, tern_spool, mut t) = pickup_instance("tern-t-sm3");
    let conf = t.config_dir().display().to_string();
    let sendmail = tern_program("sendmail");
    // The daemon has never run: postdrop makes the file and says pickup is not there.
    std::fs::create_dir_all(t.queue_dir().join("maildrop")).unwrap();
    let (code, err) = run_with_input(
        &sendmail,
        &["-C", &conf, &u.name],
        b"Subject: while down\n\nwaits in maildrop\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "postdrop: warning: unable to look up public/pickup: No such file or directory"
        ),
        "{err}"
    );
    let waiting = std::fs::read_dir(t.queue_dir().join("maildrop"))
        .unwrap()
        .count();
    assert_eq!(waiting, 1);
    // mailq shows it in the maildrop queue (root reads the queue itself while the
    // daemon is down).
    let out = Command::new(tern_program("postqueue"))
        .args(["-c", &conf, "-j"])
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        json.contains("\"queue_name\": \"maildrop\"") && json.contains(&u.name),
        "{json}"
    );
    t.launch().unwrap();
    let mailbox = tern_spool.join(&u.name);
    assert!(
        wait_until(Duration::from_secs(30), || maildir_files(&mailbox).len()
            == 1),
        "{}",
        t.log()
    );
    let s_nail = Path::new("/usr/bin/s-nail");
    assert!(s_nail.exists(), "s-nail is needed (apt-get install s-nail)");
    let out = Command::new(s_nail)
        .args(["-n", "-S", &format!("mta={}", sendmail.display())])
        .args(["-s", "from s-nail", &u.name])
        .env("MAIL_CONFIG", &conf)
        .env("HOME", shared.path())
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"sent with mail -s\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        wait_until(Duration::from_secs(30), || maildir_files(&mailbox).len()
            == 2),
        "{}",
        t.log()
    );
    let texts: Vec<String> = maildir_files(&mailbox)
        .into_iter()
        .map(|(_, m)| String::from_utf8_lossy(&m).into_owned())
        .collect();
    assert!(
        texts.iter().any(|m| m.contains("Subject: while down")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|m| m.contains("Subject: from s-nail") && m.contains("sent with mail -s")),
        "{texts:?}"
    );
    // Each message's pickup line: `postfix/pickup[PID]: QUEUEID: uid=0 from=<root>`.
    wait_for(|| t.log(), ": uid=0 from=<root>", 2);
}

/// Bad usage: the same exit status and message as Debian's sendmail.
#[test]
fn usage_errors_equal_postfix() {
    let t = configure("");
    let conf = t.config_dir().display().to_string();
    let tern = tern_program("sendmail");
    let cases: &[&[&str]] = &[
        &[],
        &["-y"],
        &["-B", "bogus", "root"],
        &["-qX"],
        &["-bp", "root"],
        &["-t", "-bp"],
        &["-n", "root"],
        &["-bz"],
        &["-t"],
    ];
    for args in cases {
        let input = b"Subject: no recipients\n\nx\n";
        let pf_conf = "/etc/postfix";
        let mut pa = vec!["-C", pf_conf];
        pa.extend_from_slice(args);
        let mut ta = vec!["-C", conf.as_str()];
        ta.extend_from_slice(args);
        let (pc, pe) = run_with_input(Path::new("/usr/sbin/sendmail"), &pa, input);
        let (tc, te) = run_with_input(&tern, &ta, input);
        assert_eq!((tc, te.trim()), (pc, pe.trim()), "{args:?}");
    }
}

/// `sendmail -q` (postqueue -f through public/qmgr): a deferred message is tried again
/// at once, not after minimal_backoff_time.
#[test]
fn sendmail_q_flushes_the_deferred_queue() {
    let (t, conf) = deferred_message("to a dead relay");
    assert_eq!(t.log().matches("status=deferred").count(), 1, "{}", t.log());
    let sendmail = tern_program("sendmail");
    let (code, err) = run_with_input(&sendmail, &["-C", &conf, "-q"], b"");
    assert_eq!(code, 0, "{err}");
    // The second try comes now; the backoff alone would wait an hour.
    let log = wait_for(|| t.log(), "status=deferred", 2);
    assert_eq!(log.matches("status=deferred").count(), 2, "{log}");
    // `postfix flush` (postfix-script's `postqueue -f`) does the same.
    let postfix = tern_program("postfix");
    let (code, err) = run_with_input(&postfix, &["-c", &conf, "flush"], b"");
    assert_eq!(code, 0, "{err}");
    let log = wait_for(|| t.log(), "status=deferred", 3);
    assert_eq!(log.matches("status=deferred").count(), 3, "{log}");
}

/// A user other than root submits (a cron job's `echo body | sendmail -t`): after
/// `postfix set-permissions` postdrop is set-gid postdrop, writes into the 1730
/// maildrop/, and pickup logs the user's uid and login name.
#[test]
fn an_ordinary_user_submits() {
    let (shared, u, tern_spool, mut t) = pickup_instance("tern-t-sm5");
    t.launch().unwrap();
    let (code, out) = t.postfix(&["set-permissions"]).unwrap();
    assert_eq!(code, 0, "{out}");
    let postdrop = tern_program("postdrop");
    let meta = std::fs::metadata(&postdrop).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o2755);
    let conf = t.config_dir().display().to_string();
    let out = Command::new(tern_program("sendmail"))
        .args(["-C", &conf, "-t"])
        .uid(u.uid)
        .gid(u.gid)
        .env("HOME", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("To: {}\nSubject: cron\n\nbody\n", u.name).as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mailbox = tern_spool.join(&u.name);
    assert!(
        wait_until(Duration::from_secs(30), || maildir_files(&mailbox).len()
            == 1),
        "{}",
        t.log()
    );
    let log = wait_for(|| t.log(), &format!("uid={} from=<{}>", u.uid, u.name), 1);
    let msg = String::from_utf8(maildir_files(&mailbox).remove(0).1).unwrap();
    assert!(
        msg.contains(&format!("from userid {})", u.uid))
            && msg.contains(&format!("Return-Path: <{}@{HOST}>", u.name)),
        "{msg}\n{log}"
    );
    // A configuration directory the user could write is refused by the set-gid postdrop.
    let own = shared.path().join("userconf");
    std::fs::create_dir(&own).unwrap();
    std::fs::copy(t.config_dir().join("main.cf"), own.join("main.cf")).unwrap();
    nix::unistd::chown(&own, Some(nix::unistd::Uid::from_raw(u.uid)), None).unwrap();
    let out = Command::new(&postdrop)
        .args(["-c", &own.display().to_string()])
        .uid(u.uid)
        .gid(u.gid)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unauthorized configuration directory name"),
        "{err}"
    );
}

/// `sendmail -bs` driven by Python's smtplib over a socket pair that is the command's
/// standard input and output: the message arrives, and the 250 names it.
#[test]
fn sendmail_bs_with_smtplib() {
    let (_shared, u, tern_spool, mut t) = pickup_instance("tern-t-sm6");
    t.launch().unwrap();
    let script = format!(
        r#"
import smtplib, socket, subprocess
a, b = socket.socketpair()
p = subprocess.Popen(["{sendmail}", "-C", "{conf}", "-bs"], stdin=b, stdout=b)
b.close()
s = smtplib.SMTP()
s.sock = a
code, banner = s.getreply()
assert code == 220, banner
s.ehlo("client.example")
assert not s.has_extn("starttls")
r = s.sendmail("alice@example.org", ["{user}"], b"Subject: via -bs\r\n\r\nhello\r\n")
assert r == {{}}, r
# The DSN parameters go through maildrop: a success notice to root names the ORCPT.
r = s.sendmail("root", ["{user}"], b"Subject: dsn\r\n\r\nx\r\n",
               mail_options=["RET=HDRS", "ENVID=env-bs-1"],
               rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;original@example.com"])
assert r == {{}}, r
code, text = s.docmd("NOOP")
s.quit()
print(p.wait(timeout=30))
"#,
        sendmail = tern_program("sendmail").display(),
        conf = t.config_dir().display(),
        user = u.name,
    );
    let out = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .output()
        .expect("/usr/bin/python3");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    let mailbox = tern_spool.join(&u.name);
    assert!(
        wait_until(Duration::from_secs(30), || maildir_files(&mailbox).len()
            == 2),
        "{}",
        t.log()
    );
    let msgs: Vec<String> = maildir_files(&mailbox)
        .into_iter()
        .map(|(_, m)| String::from_utf8_lossy(&m).into_owned())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("Subject: via -bs")
                && m.contains("Return-Path: <alice@example.org>")),
        "{msgs:?}"
    );
    let root = tern_spool.join("root");
    assert!(
        wait_until(Duration::from_secs(30), || maildir_files(&root).len() == 1),
        "{}",
        t.log()
    );
    let notice = String::from_utf8(maildir_files(&root).remove(0).1).unwrap();
    assert!(
        notice.contains("Original-Recipient: rfc822;original@example.com")
            && notice.contains("Original-Envelope-Id: env-bs-1")
            && notice.contains("Action: delivered"),
        "{notice}"
    );
}

/// A message held and released with postsuper while the daemon runs: the queue manager
/// finds it in deferred/ again (it reads deferred/ at each queue run and flush), and
/// `postqueue -f` tries it at once.
#[test]
fn released_message_is_seen_by_a_flush() {
    let (t, conf) = deferred_message("held and released");
    let postsuper = tern_program("postsuper");
    let postqueue = tern_program("postqueue");
    let (code, err) = run_with_input(&postsuper, &["-c", &conf, "-h", "ALL"], b"");
    assert_eq!(code, 0, "{err}");
    // Held: a flush does not touch it.
    let (code, err) = run_with_input(&postqueue, &["-c", &conf, "-f"], b"");
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(t.log().matches("status=deferred").count(), 1, "{}", t.log());
    let (code, err) = run_with_input(&postsuper, &["-c", &conf, "-H", "ALL"], b"");
    assert_eq!(code, 0, "{err}");
    let (code, err) = run_with_input(&postqueue, &["-c", &conf, "-f"], b"");
    assert_eq!(code, 0, "{err}");
    wait_for(|| t.log(), "status=deferred", 2);
}

/// Input over message_size_limit: refused as Postfix's sendmail refuses it (its last
/// line and exit status), and nothing is left in maildrop/.
#[test]
fn huge_input_is_refused() {
    let t = configure("message_size_limit = 1000\n");
    let conf = t.config_dir().display().to_string();
    let big: Vec<u8> = "a"
        .repeat(69)
        .bytes()
        .chain([b'\n'])
        .cycle()
        .take(5000)
        .collect();
    let (code, err) = run_with_input(&tern_program("sendmail"), &["-C", &conf, "root"], &big);
    assert_eq!(code, 75, "{err}");
    assert_eq!(
        err.lines().last(),
        Some("sendmail: fatal: root(0): message file too big"),
        "{err}"
    );
    let maildrop = t.queue_dir().join("maildrop");
    let left = std::fs::read_dir(&maildrop).map_or(0, Iterator::count);
    assert_eq!(left, 0);
    // Debian's sendmail ends the same way (after its postdrop's "File too large").
    let pf = PostfixInstance::start("message_size_limit = 1000\n").expect("postfix");
    let (code, err) = run_with_input(
        Path::new("/usr/sbin/sendmail"),
        &["-C", &pf.dir().display().to_string(), "root"],
        &big,
    );
    assert_eq!(code, 75, "{err}");
    assert_eq!(
        err.lines().last(),
        Some("sendmail: fatal: root(0): message file too big"),
        "{err}"
    );
}

/// `postsuper -s` puts back a queue file an admin moved by hand (here out of its hash
/// directory), and the queue manager then delivers it on `postqueue -f`.
#[test]
fn postsuper_s_repairs_a_hand_moved_file() {
    let (t, conf) = deferred_message("moved by hand");
    // deferred/H/ID, H the hash directory.
    let deferred = t.queue_dir().join("deferred");
    let placed = deferred_files(&t);
    assert_eq!(placed.len(), 1, "{placed:?}");
    let original = placed[0].clone();
    let moved = deferred.join(original.file_name().unwrap());
    std::fs::rename(&original, &moved).unwrap();
    let (code, err) = run_with_input(&tern_program("postsuper"), &["-c", &conf, "-s"], b"");
    assert_eq!(code, 0, "{err}");
    assert!(original.is_file() && !moved.exists(), "{err}");
    let (code, err) = run_with_input(&tern_program("postqueue"), &["-c", &conf, "-f"], b"");
    assert_eq!(code, 0, "{err}");
    wait_for(|| t.log(), "status=deferred", 2);
}

/// authorized_submit_users, authorized_mailq_users and authorized_flush_users refuse a
/// user outside them, with Postfix's texts; root is let through.
#[test]
fn user_access_lists() {
    let (_shared, u, _spool, mut t) = pickup_instance("tern-t-sm7");
    let extra = "authorized_submit_users = root\nauthorized_mailq_users = root\n\
                 authorized_flush_users = root\n";
    let main_cf = t.config_dir().join("main.cf");
    let text = std::fs::read_to_string(&main_cf).unwrap();
    std::fs::write(&main_cf, format!("{text}{extra}")).unwrap();
    t.launch().unwrap();
    let (code, out) = t.postfix(&["set-permissions"]).unwrap();
    assert_eq!(code, 0, "{out}");
    let conf = t.config_dir().display().to_string();
    let as_user = |program: &str, args: &[&str]| {
        let out = Command::new(tern_program(program))
            .args(args)
            .uid(u.uid)
            .gid(u.gid)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let who = format!("User {}({})", u.name, u.uid);
    let (code, err) = as_user("sendmail", &["-C", &conf, "root"]);
    assert_eq!(code, 75, "{err}");
    assert!(
        err.contains(&format!(
            "postdrop: fatal: {who} is not allowed to submit mail"
        )),
        "{err}"
    );
    let (code, err) = as_user("postqueue", &["-c", &conf, "-p"]);
    assert_eq!(code, 69, "{err}");
    assert!(
        err.contains(&format!(
            "postqueue: fatal: {who} is not allowed to view the mail queue"
        )),
        "{err}"
    );
    let (code, err) = as_user("postqueue", &["-c", &conf, "-f"]);
    assert_eq!(code, 69, "{err}");
    assert!(
        err.contains(&format!("{who} is not allowed to flush the mail queue")),
        "{err}"
    );
    // Root is in the lists.
    let (code, err) = run_with_input(&tern_program("postqueue"), &["-c", &conf, "-p"], b"");
    assert_eq!(code, 0, "{err}");
}

/// A sendmail submission to an unknown user bounces; the notice's delivery-status part
/// carries the ORCPT cleanup made (`Original-Recipient: rfc822;ADDRESS`, the address
/// after canonical rewriting), as Postfix's does.
#[test]
fn bounce_of_submitted_mail_names_the_original_recipient() {
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let notice = |spool: &Path| maildir_files(&spool.join("root")).pop().map(|(_, m)| m);
    let field = |msg: &[u8]| {
        String::from_utf8_lossy(msg)
            .lines()
            .filter(|l| l.starts_with("Original-Recipient:") || l.starts_with("Final-Recipient:"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let submit = |sendmail: &Path, conf: &str| {
        let (code, err) = run_with_input(
            sendmail,
            &["-C", conf, "tern-t-nosuch"],
            b"Subject: to nobody\n\nx\n",
        );
        assert_eq!(code, 0, "{err}");
    };

    let pf_spool = spool(shared.path(), "postfix");
    let pf = PostfixInstance::start(&settings(&pf_spool)).expect("postfix");
    submit(
        Path::new("/usr/sbin/sendmail"),
        &pf.dir().display().to_string(),
    );
    assert!(
        wait_until(Duration::from_secs(30), || notice(&pf_spool).is_some()),
        "{}",
        pf.maillog()
    );

    let tern_spool = spool(shared.path(), "tern");
    let mut t = configure(&settings(&tern_spool));
    t.write_master_cf(&format!(
        "{}pickup unix n - n 60 1 pickup\n",
        master_cf(t.port)
    ))
    .unwrap();
    t.launch().unwrap();
    submit(
        &tern_program("sendmail"),
        &t.config_dir().display().to_string(),
    );
    assert!(
        wait_until(Duration::from_secs(30), || notice(&tern_spool).is_some()),
        "{}",
        t.log()
    );
    let (p, n) = (
        field(&notice(&pf_spool).unwrap()),
        field(&notice(&tern_spool).unwrap()),
    );
    assert_eq!(
        p,
        vec![
            format!("Final-Recipient: rfc822; tern-t-nosuch@{HOST}"),
            format!("Original-Recipient: rfc822;tern-t-nosuch@{HOST}"),
        ]
    );
    assert_eq!(n, p);
}
