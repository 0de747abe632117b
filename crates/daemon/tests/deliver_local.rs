//! local(8) end to end through the delivery helper: Tern's daemon with qmgr and Debian's
//! local line in master.cf, mail sent with Python's smtplib, delivered by a root
//! `tern-delivery worker` with the recipient's rights: an mbox in a spool with /var/mail's
//! rights (s-nail reads it), a Maildir in the home directory, alias commands run as
//! default_privs or as an :include: file's owner, and a worker killed while idle.
//! Needs root, Python 3, s-nail, and `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

mod deliver_util;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use deliver_util::{
    TestUser, configure, daemon_pid, delivery_lines, send, snail_headers, uid_of, wait_for, workers,
};
use tern_testkit::tern::Tern;

/// The line Postfix logs for a plain delivery to `to` (pid, id and delays made constant).
fn sent_line(to: &str, text: &str) -> String {
    format!(
        "postfix/local[PID]: QID: to=<{to}>, relay=local, delay=N, delays=N, dsn=2.0.0, \
         status=sent ({text})"
    )
}

/// A spool directory with Debian's /var/mail rights: root:mail 2775.
fn spool(root: &Path) -> std::path::PathBuf {
    let dir = root.join("mail");
    std::fs::create_dir(&dir).expect("spool");
    let mail = nix::unistd::Group::from_name("mail")
        .expect("getgrnam")
        .expect("group mail");
    nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(0)), Some(mail.gid)).expect("chown");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2775)).expect("chmod");
    dir
}

/// An instance whose mail_spool_directory is a fresh [`spool`] in its directory, started;
/// and that spool.
fn launch_with_spool() -> (Tern, std::path::PathBuf) {
    let mut t = configure("");
    let spool = spool(t.dir.path());
    std::fs::write(
        t.config_dir().join("main.cf"),
        std::fs::read_to_string(t.config_dir().join("main.cf")).unwrap()
            + &format!("mail_spool_directory = {}\n", spool.display()),
    )
    .unwrap();
    t.launch().expect("launch");
    (t, spool)
}

#[test]
fn mbox_in_the_spool_is_the_users_and_s_nail_reads_it() {
    let user = TestUser::new("tern-t-mbox", None);
    let (t, spool) = launch_with_spool();
    let to = format!("{}@mx.example.test", user.name);
    let id = send(t.port, &to, "to the spool");
    let log = wait_for(|| t.log(), &format!("{id}: removed"), 1);
    let (lines, pids) = delivery_lines(&log, "postfix/local", &id);
    assert_eq!(lines, [sent_line(&to, "delivered to mailbox")], "{log}");
    // The worker that delivered runs as root (the daemon as mail_owner).
    let daemon = daemon_pid(&t);
    assert_ne!(uid_of(daemon), 0);
    let w = workers(daemon);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(uid_of(w[0]), 0);
    let _ = pids;

    let mbox = spool.join(&user.name);
    let meta = std::fs::metadata(&mbox).expect("mailbox");
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (user.uid, 0o600));
    let text = std::fs::read_to_string(&mbox).unwrap();
    assert!(text.starts_with("From sender@example.org "), "{text}");
    assert!(text.contains(&format!("Delivered-To: {to}\n")), "{text}");
    assert!(text.contains("\n>From the start\n"), "{text}");
    let headers = snail_headers(&mbox);
    assert!(headers.contains("to the spool"), "{headers}");
    // No lock file left behind.
    assert!(!spool.join(format!("{}.lock", user.name)).exists());
}

#[test]
fn home_maildir_is_written_as_the_user() {
    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = base.path().join("home");
    let user = TestUser::new("tern-t-mdir", Some(&home));
    let mut t = configure("home_mailbox = Maildir/");
    t.launch().expect("launch");
    let to = format!("{}@mx.example.test", user.name);
    let id = send(t.port, &to, "to the maildir");
    let log = wait_for(|| t.log(), &format!("{id}: removed"), 1);
    let (lines, _) = delivery_lines(&log, "postfix/local", &id);
    assert_eq!(lines, [sent_line(&to, "delivered to maildir")], "{log}");
    let new: Vec<_> = std::fs::read_dir(home.join("Maildir/new"))
        .expect("Maildir/new")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let meta = std::fs::metadata(&new[0]).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (user.uid, 0o600));
    let text = std::fs::read_to_string(&new[0]).unwrap();
    assert!(text.contains("Subject: to the maildir"), "{text}");
    assert!(!text.starts_with("From "), "{text}");
}

#[test]
fn alias_commands_run_as_default_privs_or_the_include_files_owner() {
    let user = TestUser::new("tern-t-inc", None);
    // Postfix's default leaves :include: files out (alias, forward).
    let mut t = configure("allow_mail_to_commands = alias, forward, include");
    let out = t.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let include = t.dir.path().join("include");
    std::fs::write(
        &include,
        format!("\"|/usr/bin/id -u > {}/inc\"\n", out.display()),
    )
    .unwrap();
    nix::unistd::chown(
        &include,
        Some(nix::unistd::Uid::from_raw(user.uid)),
        Some(nix::unistd::Gid::from_raw(user.gid)),
    )
    .unwrap();
    // texthash: (postmap's `key value` form), written by root: root owns the table.
    std::fs::write(
        t.config_dir().join("aliases"),
        format!(
            "postmaster root\n\
             tern-cmd \"|/usr/bin/id -u > {out}/cmd\"\n\
             tern-inc :include:{inc}\n",
            out = out.display(),
            inc = include.display()
        ),
    )
    .unwrap();
    t.launch().expect("launch");
    let id1 = send(t.port, "tern-cmd@mx.example.test", "cmd");
    let id2 = send(t.port, "tern-inc@mx.example.test", "inc");
    let log = wait_for(|| t.log(), ": removed", 2);
    for id in [&id1, &id2] {
        assert!(log.contains(&format!("{id}: removed")), "{log}");
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let read = |name: &str| {
        std::fs::read_to_string(out.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{log}"))
            .trim()
            .to_owned()
    };
    assert_eq!(read("cmd"), nobody.uid.as_raw().to_string());
    assert_eq!(read("inc"), user.uid.to_string());
    let (lines, _) = delivery_lines(&log, "postfix/local", &id1);
    assert_eq!(
        lines,
        [sent_line(
            "tern-cmd@mx.example.test",
            &format!(
                "delivered to command: /usr/bin/id -u > {}/cmd",
                out.display()
            )
        )],
        "{log}"
    );
}

#[test]
fn a_worker_killed_while_idle_is_replaced() {
    let user = TestUser::new("tern-t-kill", None);
    let (t, spool) = launch_with_spool();
    let to = format!("{}@mx.example.test", user.name);
    let id1 = send(t.port, &to, "first");
    wait_for(|| t.log(), &format!("{id1}: removed"), 1);
    let daemon = daemon_pid(&t);
    let before = workers(daemon);
    assert_eq!(before.len(), 1, "{before:?}");
    let killed = Command::new("kill")
        .arg("-KILL")
        .arg(before[0].to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    // Wait until it is gone (or a zombie: its socket is closed either way).
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(10) {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", before[0])).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z ") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let id2 = send(t.port, &to, "second");
    let log = wait_for(|| t.log(), &format!("{id2}: removed"), 1);
    let (lines, _) = delivery_lines(&log, "postfix/local", &id2);
    assert_eq!(lines, [sent_line(&to, "delivered to mailbox")], "{log}");
    assert!(!log.contains("premature disconnect"), "{log}");
    let after = workers(daemon);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before);
    let headers = snail_headers(&spool.join(&user.name));
    assert!(
        headers.contains("first") && headers.contains("second"),
        "{headers}"
    );
}
