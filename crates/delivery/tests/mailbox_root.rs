//! Mailbox delivery as root, with real users and Debian's spool rights: ownership and modes,
//! refusals, rollback, locking between processes, mail readers (s-nail, mutt) and the bytes
//! Debian's Postfix local(8) writes for the same message.
//!
//! `harness = false`: uid switching needs a single-threaded process (crate::privs).

mod mailbox_util;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mailbox_util::{TestUser, chmod, debian_spool, need_program, need_root, open_tempdir, output};
use tern_delivery::mailbox::lock::LockKind;
use tern_delivery::mailbox::mbox::{self, MboxOptions, MboxParams, Rights};
use tern_delivery::mailbox::{CopyInfo, MailboxError, maildir};

fn main() {
    // A child of `concurrent_deliveries_do_not_interleave`.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child-deliver") {
        child_deliver(&args[2..]);
        return;
    }
    mailbox_util::run(&[
        (
            "spool_mbox_with_debian_rights",
            spool_mbox_with_debian_rights,
        ),
        (
            "planted_symlink_and_hard_link_are_refused",
            planted_links_are_refused,
        ),
        (
            "rollback_when_the_disk_is_full",
            rollback_when_the_disk_is_full,
        ),
        (
            "rollback_past_mailbox_size_limit",
            rollback_past_mailbox_size_limit,
        ),
        (
            "concurrent_deliveries_do_not_interleave",
            concurrent_deliveries_do_not_interleave,
        ),
        (
            "home_maildir_as_the_user_read_by_mutt",
            home_maildir_as_the_user_read_by_mutt,
        ),
        ("same_bytes_as_postfix_local", same_bytes_as_postfix_local),
    ]);
}

const MESSAGE: &str = "Received: by host.example.test (Postfix, from userid 0)\n\
\tid 4ABCDEF; Fri, 27 Nov 2026 00:11:38 +0000 (UTC)\n\
Subject: hello tern\n\
From: Sender <s@example.test>\n\
To: u@example.test\n\
Message-Id: <1@example.test>\n\
\n\
first line\n\
From the start of a line\n\
>From already quoted\n\
last line\n";

fn info<'a>(sender: &'a str, rcpt: &'a str) -> CopyInfo<'a> {
    CopyInfo {
        sender,
        arrival: 0,
        delivered_to: Some(rcpt),
        original_to: Some(rcpt),
        return_path: true,
    }
}

fn locks() -> MboxOptions {
    MboxOptions::mbox(vec![LockKind::Fcntl, LockKind::Dotlock])
}

/// `message` from s@x to u@x appended to the mbox `path` as `user`, with [`locks`].
fn deliver_as(path: &Path, user: &TestUser, message: &str) -> Result<(), MailboxError> {
    mbox::deliver(
        path,
        Some(user.owner()),
        &locks(),
        &info("s@x", "u@x"),
        &mut message.as_bytes(),
    )
}

/// `message` from s@x to u@x appended to the mbox `path` with `params` and [`locks`].
fn deliver_params(path: &Path, params: &MboxParams, message: &str) -> Result<(), MailboxError> {
    mbox::deliver_with(
        path,
        params,
        &locks(),
        &info("s@x", "u@x"),
        &mut message.as_bytes(),
    )
}

fn spool_mbox_with_debian_rights() -> Result<(), String> {
    need_root()?;
    need_program("s-nail", "s-nail")?;
    let tmp = open_tempdir()?;
    let spool = debian_spool(tmp.path())?;
    let user = TestUser::create("mb1", tmp.path())?;
    let path = spool.join(&user.name);
    for sender in ["s@example.test", ""] {
        mbox::deliver(
            &path,
            Some(user.owner()),
            &locks(),
            &info(sender, "u@example.test"),
            &mut MESSAGE.as_bytes(),
        )
        .map_err(|e| format!("deliver: {e:?}"))?;
    }
    let st = std::fs::metadata(&path).map_err(|e| e.to_string())?;
    let mail_gid = std::fs::metadata(&spool).map_err(|e| e.to_string())?.gid();
    if (st.uid(), st.gid(), st.mode() & 0o7777) != (user.uid, mail_gid, 0o600) {
        return Err(format!(
            "mailbox is {}:{} {:o}, want {}:{mail_gid} 600",
            st.uid(),
            st.gid(),
            st.mode() & 0o7777,
            user.uid
        ));
    }
    if spool.join(format!("{}.lock", user.name)).exists() {
        return Err("the dotlock was left behind".into());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    for want in [
        "\nReturn-Path: <s@example.test>\nX-Original-To: u@example.test\nDelivered-To: u@example.test\nReceived:",
        "\n>From the start of a line\n>From already quoted\nlast line\n\nFrom MAILER-DAEMON  ",
        "\nReturn-Path: <>\n",
    ] {
        if !text.contains(want) {
            return Err(format!("mailbox lacks {want:?}:\n{text}"));
        }
    }
    if !text.starts_with("From s@example.test  ") || !text.ends_with("last line\n\n") {
        return Err(format!("bad mbox framing:\n{text}"));
    }
    // s-nail lists two messages and shows the body as written (read-only: -R).
    let list = output(
        Command::new("s-nail")
            .args(["-N", "-R", "-H", "-f"])
            .arg(&path),
    )?;
    let lines: Vec<&str> = list.lines().collect();
    if lines.len() != 2 || !lines.iter().all(|l| l.contains("hello tern")) {
        return Err(format!("s-nail -H:\n{list}"));
    }
    let mut child = Command::new("s-nail")
        .args(["-#", "-N", "-R", "-f"])
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("s-nail: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("stdin")?
        .write_all(b"print 2\nquit\n")
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let shown = String::from_utf8_lossy(&out.stdout);
    if !shown.contains("first line\n>From the start of a line\n")
        || !shown.contains("Subject: hello tern")
    {
        return Err(format!("s-nail print 2:\n{shown}"));
    }
    Ok(())
}

fn planted_links_are_refused() -> Result<(), String> {
    need_root()?;
    let tmp = open_tempdir()?;
    let spool = debian_spool(tmp.path())?;
    let user = TestUser::create("mb2", tmp.path())?;
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "precious\n").map_err(|e| e.to_string())?;
    // A file the user may write, so that only the link checks stand in the way.
    nix::unistd::chown(&victim, Some(nix::unistd::Uid::from_raw(user.uid)), None)
        .map_err(|e| e.to_string())?;
    let path = spool.join(&user.name);
    std::os::unix::fs::symlink(&victim, &path).map_err(|e| e.to_string())?;
    let err = deliver_as(&path, &user, MESSAGE)
        .err()
        .ok_or("a symlink mailbox was written")?;
    if (err.dsn.as_str(), err.text.as_str()) != ("5.2.0", "file is a symbolic link") {
        return Err(format!("symlink: {err:?}"));
    }
    std::fs::remove_file(&path).map_err(|e| e.to_string())?;
    std::fs::hard_link(&victim, &path).map_err(|e| e.to_string())?;
    let err = deliver_as(&path, &user, MESSAGE)
        .err()
        .ok_or("a hard-linked mailbox was written")?;
    if (err.dsn.as_str(), err.text.as_str()) != ("5.2.0", "file has 2 hard links") {
        return Err(format!("hard link: {err:?}"));
    }
    // Someone else's file: 4.2.0 and Postfix's warning.
    std::fs::remove_file(&path).map_err(|e| e.to_string())?;
    std::fs::write(&path, "").map_err(|e| e.to_string())?;
    // Writable by all, so that the ownership check is what refuses it (a 0644 root file
    // gives "cannot open file: Permission denied", 5.2.0, as with Postfix).
    chmod(&path, 0o666)?;
    let err = deliver_as(&path, &user, MESSAGE)
        .err()
        .ok_or("root's mailbox was written for the user")?;
    if err.dsn != "4.2.0"
        || err.text != format!("destination {} is not owned by recipient", path.display())
    {
        return Err(format!("owner: {err:?}"));
    }
    if std::fs::read(&victim).map_err(|e| e.to_string())? != b"precious\n" {
        return Err("the victim file changed".into());
    }
    Ok(())
}

fn rollback_when_the_disk_is_full() -> Result<(), String> {
    need_root()?;
    let tmp = open_tempdir()?;
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).map_err(|e| e.to_string())?;
    output(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs"])
            .arg(&mnt),
    )
    .map_err(|e| format!("a tiny tmpfs is needed for this test: {e}"))?;
    let result = (|| {
        let spool = debian_spool(&mnt)?;
        let user = TestUser::create("mb3", tmp.path())?;
        let path = spool.join(&user.name);
        deliver_as(&path, &user, MESSAGE).map_err(|e| format!("first delivery: {e:?}"))?;
        let before = std::fs::read(&path).map_err(|e| e.to_string())?;
        let big = format!("Subject: big\n\n{}", "0123456789abcdef\n".repeat(40_000));
        let err = deliver_as(&path, &user, &big)
            .err()
            .ok_or("a 680 kB message fit in 256 kB")?;
        if (err.dsn.as_str(), err.text.as_str())
            != ("4.3.0", "error writing message: No space left on device")
        {
            return Err(format!("disk full: {err:?}"));
        }
        let after = std::fs::read(&path).map_err(|e| e.to_string())?;
        if after != before {
            return Err(format!(
                "not rolled back: {} bytes, was {}",
                after.len(),
                before.len()
            ));
        }
        Ok(())
    })();
    let _ = Command::new("umount").arg(&mnt).output();
    result
}

fn rollback_past_mailbox_size_limit() -> Result<(), String> {
    need_root()?;
    let tmp = open_tempdir()?;
    let spool = debian_spool(tmp.path())?;
    let user = TestUser::create("mb4", tmp.path())?;
    let path = spool.join(&user.name);
    let params = MboxParams {
        size_limit: 2000,
        ..MboxParams::local(Rights::for_spool(&spool, user.owner()))
    };
    deliver_params(&path, &params, MESSAGE).map_err(|e| format!("first: {e:?}"))?;
    let size = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    let big = format!("Subject: big\n\n{}", "x\n".repeat(1000));
    let err = deliver_params(&path, &params, &big)
        .err()
        .ok_or("the limit did not hold")?;
    if (err.dsn.as_str(), err.text.as_str()) != ("5.2.2", "error writing message: File too large") {
        return Err(format!("{err:?}"));
    }
    let now = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    if now != size {
        return Err(format!("size {now}, was {size}"));
    }
    Ok(())
}

const CHILDREN: usize = 4;
const PER_CHILD: usize = 8;

/// Each child delivers PER_CHILD messages whose every body line names the child.
fn child_deliver(args: &[String]) {
    let [path, uid, gid, me] = args else {
        std::process::exit(2);
    };
    let owner = tern_delivery::mailbox::Owner {
        uid: uid.parse().unwrap_or(65534),
        gid: gid.parse().unwrap_or(65534),
    };
    let body = format!(
        "Subject: child {me}\n\n{}",
        format!("child-{me}\n").repeat(20_000)
    );
    for _ in 0..PER_CHILD {
        if let Err(e) = mbox::deliver(
            Path::new(path),
            Some(owner),
            &locks(),
            &info("s@x", "u@x"),
            &mut body.as_bytes(),
        ) {
            eprintln!("child {me}: {e:?}");
            std::process::exit(1);
        }
    }
}

fn concurrent_deliveries_do_not_interleave() -> Result<(), String> {
    need_root()?;
    let tmp = open_tempdir()?;
    let spool = debian_spool(tmp.path())?;
    let user = TestUser::create("mb5", tmp.path())?;
    let path = spool.join(&user.name);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    for n in 0..CHILDREN {
        children.push(
            Command::new(&exe)
                .arg("--child-deliver")
                .arg(&path)
                .arg(user.uid.to_string())
                .arg(user.gid.to_string())
                .arg(n.to_string())
                .spawn()
                .map_err(|e| e.to_string())?,
        );
    }
    let deadline = Instant::now() + Duration::from_mins(2);
    for mut c in children {
        loop {
            if let Some(status) = c.try_wait().map_err(|e| e.to_string())? {
                if !status.success() {
                    return Err(format!("a child failed: {status}"));
                }
                break;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return Err("children took over 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Every message is one child's alone, from its From line to the blank line.
    let file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
    let (mut messages, mut current, mut in_body) = (0, None::<String>, false);
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if line.starts_with("From ") {
            messages += 1;
            current = None;
            in_body = false;
        } else if let Some(n) = line.strip_prefix("Subject: child ") {
            current = Some(format!("child-{n}"));
        } else if line.is_empty() {
            in_body = true;
        } else if in_body && Some(&line) != current.as_ref() {
            return Err(format!(
                "message {messages}: line {line:?} in {current:?}'s message"
            ));
        }
    }
    if messages != CHILDREN * PER_CHILD {
        return Err(format!(
            "{messages} messages, want {}",
            CHILDREN * PER_CHILD
        ));
    }
    Ok(())
}

fn home_maildir_as_the_user_read_by_mutt() -> Result<(), String> {
    need_root()?;
    need_program("mutt", "mutt")?;
    let tmp = open_tempdir()?;
    let user = TestUser::create("mb6", tmp.path())?;
    let md = user.home.join("Maildir");
    let new = maildir::deliver(
        &md,
        Some(user.owner()),
        &info("s@example.test", "u@example.test"),
        &mut MESSAGE.as_bytes(),
        "host.example.test",
    )
    .map_err(|e| format!("{e:?}"))?;
    for (p, mode) in [
        (new.clone(), 0o600),
        (md.clone(), 0o700),
        (md.join("new"), 0o700),
        (md.join("cur"), 0o700),
        (md.join("tmp"), 0o700),
    ] {
        let st = std::fs::metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        if (st.uid(), st.gid(), st.mode() & 0o7777) != (user.uid, user.gid, mode) {
            return Err(format!(
                "{} is {}:{} {:o}, want {}:{} {mode:o}",
                p.display(),
                st.uid(),
                st.gid(),
                st.mode() & 0o7777,
                user.uid,
                user.gid
            ));
        }
    }
    let shown = mailbox_util::mutt_first_message(&md, tmp.path())?;
    if !shown.contains("Subject: hello tern") || !shown.contains("From the start of a line") {
        return Err(format!("mutt showed:\n{shown}"));
    }
    // A Maildir the user cannot write: the error and Postfix's warnings.
    let locked = tmp.path().join("root-only");
    std::fs::create_dir(&locked).map_err(|e| e.to_string())?;
    chmod(&locked, 0o755)?;
    let err = maildir::deliver(
        &locked.join("Maildir"),
        Some(user.owner()),
        &info("s@x", "u@x"),
        &mut MESSAGE.as_bytes(),
        "h",
    )
    .err()
    .ok_or("wrote into root's directory")?;
    if err.dsn != "5.2.0" || !err.text.ends_with(": Permission denied") || err.warnings.len() != 2 {
        return Err(format!("{err:?}"));
    }
    Ok(())
}

/// Sends one message over SMTP; bounded by socket timeouts.
fn smtp_send(addr: std::net::SocketAddr, from: &str, to: &str, data: &str) -> Result<(), String> {
    let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut w = stream;
    let expect = |code: &str, reader: &mut BufReader<std::net::TcpStream>| -> Result<(), String> {
        loop {
            let mut line = String::new();
            reader
                .read_line(&mut line)
                .map_err(|e| format!("read: {e}"))?;
            if !line.starts_with(code) {
                return Err(format!("want {code}, got {line:?}"));
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    };
    expect("220", &mut reader)?;
    let data = data.replace('\n', "\r\n");
    for (cmd, code) in [
        ("EHLO client.example.test\r\n".to_string(), "250"),
        (format!("MAIL FROM:<{from}>\r\n"), "250"),
        (format!("RCPT TO:<{to}>\r\n"), "250"),
        ("DATA\r\n".to_string(), "354"),
        (format!("{data}.\r\n"), "250"),
        ("QUIT\r\n".to_string(), "221"),
    ] {
        w.write_all(cmd.as_bytes()).map_err(|e| e.to_string())?;
        expect(code, &mut reader)?;
    }
    Ok(())
}

fn same_bytes_as_postfix_local() -> Result<(), String> {
    need_root()?;
    let tmp = open_tempdir()?;
    let pf_spool = debian_spool(tmp.path())?;
    let user = TestUser::create("sbs", tmp.path())?;
    // local(8) is held (defer_transports) until the queued content has been read.
    let pf = tern_testkit::postfix::PostfixInstance::start(&format!(
        "mail_spool_directory = {}\ndefer_transports = local\n",
        pf_spool.display()
    ))?;
    let rcpt = format!("{}@localhost", user.name);
    let body =
        "Subject: side by side\nFrom: s@example.test\n\nFrom the start\n>From quoted\n\nend\n";
    smtp_send(pf.addr(), "s@example.test", &rcpt, body)?;
    let dir = pf.dir().display().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        let q = output(Command::new("/usr/sbin/postqueue").args(["-c", &dir, "-j"]))?;
        if let Some(id) = q
            .split("\"queue_id\": \"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .filter(|_| q.contains("\"queue_name\": \"deferred\""))
        {
            break id.to_owned();
        }
        if Instant::now() > deadline {
            return Err(format!("no deferred message: {q}\n{}", pf.maillog()));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // The content as the queue keeps it: header and body records, one per line.
    let content = output(Command::new("/usr/sbin/postcat").args(["-c", &dir, "-bh", "-q", &id]))?;
    output(Command::new("/usr/sbin/postconf").args(["-c", &dir, "-e", "defer_transports ="]))?;
    output(Command::new("/usr/sbin/postfix").args(["-c", &dir, "reload"]))?;
    std::thread::sleep(Duration::from_millis(500));
    output(Command::new("/usr/sbin/postqueue").args(["-c", &dir, "-f"]))?;
    let theirs_path = pf_spool.join(&user.name);
    let deadline = Instant::now() + Duration::from_mins(1);
    let theirs = loop {
        if let Ok(t) = std::fs::read_to_string(&theirs_path)
            && t.ends_with("\nend\n\n")
        {
            break t;
        }
        if Instant::now() > deadline {
            return Err(format!("Postfix did not deliver:\n{}", pf.maillog()));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let ours_spool = tmp.path().join("ours");
    std::fs::create_dir(&ours_spool).map_err(|e| e.to_string())?;
    let ours_spool = debian_spool(&ours_spool)?;
    let ours_path = ours_spool.join(&user.name);
    mbox::deliver(
        &ours_path,
        Some(user.owner()),
        &locks(),
        &info("s@example.test", &rcpt),
        &mut content.as_bytes(),
    )
    .map_err(|e| format!("{e:?}"))?;
    let ours = std::fs::read_to_string(&ours_path).map_err(|e| e.to_string())?;
    let undate = |s: &str| -> String {
        let (first, rest) = s.split_once('\n').unwrap_or((s, ""));
        format!("{}\n{rest}", &first[..first.len().saturating_sub(24)])
    };
    if undate(&ours) != undate(&theirs) {
        return Err(format!("ours:\n{ours}\ntheirs:\n{theirs}"));
    }
    let (a, b) = (
        std::fs::metadata(&ours_path).map_err(|e| e.to_string())?,
        std::fs::metadata(&theirs_path).map_err(|e| e.to_string())?,
    );
    if (a.uid(), a.gid(), a.mode()) != (b.uid(), b.gid(), b.mode()) {
        return Err(format!(
            "ours {}:{} {:o}, theirs {}:{} {:o}",
            a.uid(),
            a.gid(),
            a.mode(),
            b.uid(),
            b.gid(),
            b.mode()
        ));
    }
    Ok(())
}
