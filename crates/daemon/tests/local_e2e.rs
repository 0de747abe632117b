//! local(8)'s acceptance points end to end: mail sent with Python's smtplib to Tern's
//! daemon (qmgr, the root delivery helper, local(8)), with real users (tern-t-*, removed
//! after) and `hash:` aliases built by Tern's postalias: an alias to a user, to a remote
//! address (forwarded as a new message that waits for the smtp client), to a command
//! (its uid and environment), to a file, `:include:`, `~/.forward`, `user+tag`, a
//! forwarding loop that bounces into the sender's mbox, an unknown user refused at RCPT,
//! a temporary failure retried, and the mailboxes read by s-nail and mutt.
//! Needs root, Python 3, s-nail, mutt, script(1) and `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

mod local_e2e_util;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use tern_queue::{DeliveryStatus, QueueName};

use local_e2e_util::{
    DOMAIN, Instance, TestUser, at, content, delivery_lines, id_after, mbox_facts,
    mutt_first_message, queue_file, rcpt_reply, send, snail_has_mail, snail_headers,
};

const SENDER: &str = "sender@example.org";

/// The line local(8) logs for a delivery (pid, id and delays made constant).
fn line(to: &str, orig: Option<&str>, status: &str, dsn: &str, text: &str) -> String {
    let orig = orig.map_or(String::new(), |o| format!("orig_to=<{o}>, "));
    format!(
        "postfix/local[PID]: QID: to=<{to}>, {orig}relay=local, delay=N, delays=N, \
         dsn={dsn}, status={status} ({text})"
    )
}

fn sent(to: &str, orig: Option<&str>, text: &str) -> String {
    line(to, orig, "sent", "2.0.0", text)
}

/// A directory for home directories that every user may search.
fn homes() -> tempfile::TempDir {
    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    base
}

/// Writes `text` to `path` owned by `user`, mode 0644.
fn write_owned(path: &Path, text: &str, user: &TestUser) {
    std::fs::write(path, text).unwrap();
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(user.uid)),
        Some(nix::unistd::Gid::from_raw(user.gid)),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// The user's mbox: owned by the user, mode 0600.
fn check_mbox_rights(path: &Path, user: &TestUser) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (user.uid, 0o600));
}

#[test]
fn alias_to_a_user_and_user_plus_tag_reach_the_mbox() {
    let la = TestUser::new("tern-t-ea", None);
    let mut i = Instance::new(
        &format!("tern-al-user: {}\n", la.name),
        "recipient_delimiter = +",
    );
    i.launch();
    let id1 = send(i.t.port, SENDER, &at("tern-al-user"), "", "via alias");
    let tagged = at(&format!("{}+tag", la.name));
    let id2 = send(i.t.port, SENDER, &tagged, "", "with a tag");
    let log = i.wait(": removed", 2);
    for id in [&id1, &id2] {
        assert!(log.contains(&format!("{id}: removed")), "{log}");
    }
    let (lines, _) = delivery_lines(&log, "postfix/local", &id1);
    assert_eq!(
        lines,
        [sent(
            &at(&la.name),
            Some(&at("tern-al-user")),
            "delivered to mailbox"
        )],
        "{log}"
    );
    let (lines, _) = delivery_lines(&log, "postfix/local", &id2);
    assert_eq!(
        lines,
        [sent(&tagged, None, "delivered to mailbox")],
        "{log}"
    );
    let mbox = i.mbox(&la.name);
    check_mbox_rights(&mbox, &la);
    let facts = mbox_facts(&mbox);
    let msgs: Vec<&str> = facts.split("--\n").filter(|m| !m.is_empty()).collect();
    assert_eq!(msgs.len(), 2, "{facts}");
    let (first, second) = if msgs[0].contains("via alias") {
        (msgs[0], msgs[1])
    } else {
        (msgs[1], msgs[0])
    };
    // local(8) with frozen_delivered_to = yes (the default): Delivered-To: the address
    // of the request, not the alias's result; X-Original-To: the RCPT TO.
    assert!(
        first.contains(&format!("Delivered-To {}\n", at("tern-al-user"))),
        "{facts}"
    );
    assert!(
        first.contains(&format!("X-Original-To {}\n", at("tern-al-user"))),
        "{facts}"
    );
    assert!(
        second.contains(&format!("Delivered-To {tagged}\n")),
        "{facts}"
    );
    assert!(
        second.contains(&format!("X-Original-To {tagged}\n")),
        "{facts}"
    );
    let headers = snail_headers(&mbox);
    assert!(
        headers.contains("via alias") && headers.contains("with a tag"),
        "{headers}"
    );
    assert!(snail_has_mail(&mbox));
}

#[test]
fn alias_to_a_remote_address_is_forwarded_and_waits_for_the_smtp_client() {
    // The smtp client's relay host is a loopback port nobody listens on: the forwarded
    // message waits in deferred/ (and the test never leaves the machine).
    let closed = tern_testkit::tern::free_port().expect("port");
    let mut i = Instance::new(
        "tern-al-remote: someone@remote.example\n",
        &format!("relayhost = [127.0.0.1]:{closed}\n"),
    );
    i.launch();
    let id = send(i.t.port, SENDER, &at("tern-al-remote"), "", "to remote");
    let log = i.wait(&format!("{id}: removed"), 1);
    let new = id_after(
        &log[log.find(&format!("{id}: to=<someone")).unwrap()..],
        "forwarded as ",
    );
    let (lines, _) = delivery_lines(&log, "postfix/local", &id);
    assert_eq!(
        lines,
        [sent(
            "someone@remote.example",
            Some(&at("tern-al-remote")),
            &format!("forwarded as {new}")
        )],
        "{log}"
    );
    let log = i.wait(&format!("{new}: to=<someone@remote.example>"), 1);
    assert!(
        log.contains(&format!(
            "status=deferred (connect to 127.0.0.1[127.0.0.1]:{closed}: Connection refused)"
        )),
        "{log}"
    );
    let (q, path, qf) = queue_file(&i.t, &new, &[QueueName::Deferred]);
    assert_eq!(q, QueueName::Deferred);
    assert_eq!(qf.envelope.sender, SENDER);
    let rcpts: Vec<&str> = qf
        .envelope
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(rcpts, ["someone@remote.example"]);
    let text = content(&path, &qf);
    // forward.c: a Received: line with the new queue id, then Delivered-To:.
    let head = format!("Received: by {DOMAIN} (Postfix)\n\tid {new}; ");
    assert!(text.starts_with(&head), "{text}");
    let second = text.split_once('\n').unwrap().1.split_once('\n').unwrap().1;
    assert!(
        second.starts_with(&format!("Delivered-To: {}\n", at("tern-al-remote"))),
        "{text}"
    );
    assert!(text.contains("Subject: to remote\n"), "{text}");
}

use tern_testkit::support::DEBIAN_LOCAL_COMMAND_ENV as DEBIAN_ENV_NAMES;

#[test]
fn alias_command_and_file_run_as_default_privs() {
    let base = homes();
    let scratch = base.path().join("out");
    std::fs::create_dir(&scratch).unwrap();
    std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let cmd = format!(
        "env > {o}/env; id -u >> {o}/env; id -g >> {o}/env",
        o = scratch.display()
    );
    let file = scratch.join("file.out");
    let mut i = Instance::new(
        &format!(
            "tern-al-cmd: \"|{cmd}\"\ntern-al-file: {}\n",
            file.display()
        ),
        "import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ XAUTHORITY DISPLAY \
         LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME",
    );
    i.launch();
    let id1 = send(i.t.port, SENDER, &at("tern-al-cmd"), "", "to a command");
    let id2 = send(i.t.port, SENDER, &at("tern-al-file"), "", "to a file");
    let id3 = send(i.t.port, SENDER, &at("tern-al-file"), "", "to a file again");
    let log = i.wait(": removed", 3);
    let (lines, _) = delivery_lines(&log, "postfix/local", &id1);
    assert_eq!(
        lines,
        [sent(
            &at("tern-al-cmd"),
            None,
            &format!("delivered to command: {cmd}")
        )],
        "{log}"
    );
    for id in [&id2, &id3] {
        let (lines, _) = delivery_lines(&log, "postfix/local", id);
        assert_eq!(
            lines,
            [sent(
                &at("tern-al-file"),
                None,
                &format!("delivered to file: {}", file.display())
            )],
            "{log}"
        );
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let text = std::fs::read_to_string(scratch.join("env")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    assert_eq!(lines[n - 2], nobody.uid.to_string(), "uid: default_privs");
    assert_eq!(lines[n - 1], nobody.gid.to_string(), "gid: default_privs");
    let mut env: Vec<(String, String)> = lines[..n - 2]
        .iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    env.sort();
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, DEBIAN_ENV_NAMES, "{text}");
    let get = |k: &str| env.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(get("USER"), "tern-al-cmd");
    assert_eq!(get("LOGNAME"), "tern-al-cmd");
    assert_eq!(get("LOCAL"), "tern-al-cmd");
    assert_eq!(get("DOMAIN"), DOMAIN);
    assert_eq!(get("RECIPIENT"), at("tern-al-cmd"));
    assert_eq!(get("ORIGINAL_RECIPIENT"), at("tern-al-cmd"));
    assert_eq!(get("SENDER"), SENDER);
    assert_eq!(get("PATH"), "/usr/bin:/bin");
    assert_eq!(get("LANG"), "C");
    assert_eq!(get("CLIENT_ADDRESS"), "127.0.0.1");
    assert_eq!(get("CLIENT_HELO"), "client.example");
    assert_eq!(get("CLIENT_PROTOCOL"), "ESMTP");
    assert_eq!(get("MAIL_CONFIG"), i.t.config_dir().display().to_string());
    // The file: appended to twice, as default_privs, in mbox form.
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.uid(), nobody.uid.as_raw());
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.matches("\nFrom ").count() + 1, 2, "{text}");
    assert!(text.starts_with(&format!("From {SENDER} ")), "{text}");
    assert!(
        text.contains(&format!("Delivered-To: {}\n", at("tern-al-file"))),
        "{text}"
    );
    let headers = snail_headers(&file);
    assert!(
        headers.contains("to a file") && headers.contains("to a file again"),
        "{headers}"
    );
}

#[test]
fn include_and_dot_forward() {
    let base = homes();
    let la = TestUser::new("tern-t-fa", None);
    let lb = TestUser::new("tern-t-fb", Some(&base.path().join("fb")));
    let out = base.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let uidfile = out.join("fwd.uid");
    write_owned(
        &base.path().join("fb/.forward"),
        &format!("{}, \"|/usr/bin/id -u > {}\"\n", la.name, uidfile.display()),
        &lb,
    );
    let include = out.join("list.inc");
    write_owned(&include, &format!("# members\n{}\n", la.name), &lb);
    let mut i = Instance::new(
        &format!("tern-al-inc: :include:{}\n", include.display()),
        "",
    );
    i.launch();
    let id1 = send(i.t.port, SENDER, &at(&lb.name), "", "to fb");
    let log = i.wait(&format!("{id1}: removed"), 1);
    let (lines, _) = delivery_lines(&log, "postfix/local", &id1);
    assert_eq!(lines.len(), 2, "{log}");
    let fwd = id_after(
        &log[log.find(&format!("{id1}: to=<{}>", at(&la.name))).unwrap()..],
        "forwarded as ",
    );
    assert!(
        lines.contains(&sent(
            &at(&la.name),
            Some(&at(&lb.name)),
            &format!("forwarded as {fwd}")
        )),
        "{log}"
    );
    assert!(
        lines.contains(&sent(
            &at(&lb.name),
            None,
            &format!(
                "delivered to command: /usr/bin/id -u > {}",
                uidfile.display()
            )
        )),
        "{log}"
    );
    // The command ran as the .forward's user.
    let uid = std::fs::read_to_string(&uidfile).unwrap();
    assert_eq!(uid.trim(), lb.uid.to_string());
    let log = i.wait(&format!("{fwd}: removed"), 1);
    let (lines, _) = delivery_lines(&log, "postfix/local", &fwd);
    assert_eq!(
        lines,
        [sent(&at(&la.name), None, "delivered to mailbox")],
        "{log}"
    );

    let id2 = send(i.t.port, SENDER, &at("tern-al-inc"), "", "to the list");
    let log = i.wait(&format!("{id2}: removed"), 1);
    let (lines, _) = delivery_lines(&log, "postfix/local", &id2);
    assert_eq!(lines.len(), 1, "{log}");
    let inc = id_after(
        &log[log.find(&format!("{id2}: to=<{}>", at(&la.name))).unwrap()..],
        "forwarded as ",
    );
    assert_eq!(
        lines,
        [sent(
            &at(&la.name),
            Some(&at("tern-al-inc")),
            &format!("forwarded as {inc}")
        )],
        "{log}"
    );
    i.wait(&format!("{inc}: removed"), 1);
    let mbox = i.mbox(&la.name);
    check_mbox_rights(&mbox, &la);
    let facts = mbox_facts(&mbox);
    assert!(facts.contains("Subject to fb\n"), "{facts}");
    assert!(facts.contains("Subject to the list\n"), "{facts}");
    assert!(
        facts.contains(&format!("Delivered-To {}\n", at(&lb.name))),
        "{facts}"
    );
    assert!(
        facts.contains(&format!("Delivered-To {}\n", at("tern-al-inc"))),
        "{facts}"
    );
}

#[test]
fn forwarding_loop_bounces_into_the_senders_mbox() {
    let base = homes();
    let sender = TestUser::new("tern-t-ls", None);
    let lc = TestUser::new("tern-t-lc", Some(&base.path().join("lc")));
    let ld = TestUser::new("tern-t-ld", Some(&base.path().join("ld")));
    write_owned(
        &base.path().join("lc/.forward"),
        &format!("{}\n", ld.name),
        &lc,
    );
    write_owned(
        &base.path().join("ld/.forward"),
        &format!("{}\n", lc.name),
        &ld,
    );
    let mut i = Instance::new("", "");
    i.launch();
    let from = at(&sender.name);
    let id = send(i.t.port, &from, &at(&lc.name), "", "round and round");
    // lc -> ld (a new message), ld -> lc (another), then lc sees its Delivered-To.
    let log = i.wait("mail forwarding loop for", 1);
    let looped = at(&lc.name);
    assert!(
        log.contains(&format!(
            "dsn=5.4.6, status=bounced (mail forwarding loop for {looped})"
        )),
        "{log}"
    );
    let log = i.wait("sender non-delivery notification: ", 1);
    let ndr = id_after(&log, "sender non-delivery notification: ");
    let log = i.wait(&format!("{ndr}: removed"), 1);
    let (lines, _) = delivery_lines(&log, "postfix/local", &ndr);
    assert_eq!(lines, [sent(&from, None, "delivered to mailbox")], "{log}");
    let mbox = i.mbox(&sender.name);
    check_mbox_rights(&mbox, &sender);
    let facts = mbox_facts(&mbox);
    for want in [
        "type multipart/report delivery-status".to_owned(),
        "parts ['text/plain', 'message/delivery-status', 'message/rfc822']".to_owned(),
        "Action failed".to_owned(),
        "Status 5.4.6".to_owned(),
        format!("Diagnostic-Code X-Postfix; mail forwarding loop for {looped}"),
        format!("To {from}"),
    ] {
        assert!(facts.contains(&want), "{want:?} in\n{facts}\n{log}");
    }
    assert!(snail_headers(&mbox).contains("Undelivered Mail"));
    let _ = id;
}

#[test]
fn unknown_local_user_is_refused_at_rcpt() {
    let mut i = Instance::new("", "");
    i.launch();
    let (code, text) = rcpt_reply(i.t.port, &at("tern-t-nosuchuser"));
    assert_eq!(code, 550, "{text}");
    assert_eq!(
        text,
        format!(
            "5.1.1 <{}>: Recipient address rejected: User unknown in local recipient table",
            at("tern-t-nosuchuser")
        )
    );
}

#[test]
fn a_temporary_failure_is_deferred_then_delivered() {
    let base = homes();
    let out = base.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let script = out.join("tf.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e {o}/mark ]; then cat > {o}/got; exit 0; fi\n\
             touch {o}/mark; echo try again later; exit 75\n",
            o = out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut i = Instance::new(
        &format!("tern-al-tf: \"|{}\"\n", script.display()),
        "minimal_backoff_time = 2s\nmaximal_backoff_time = 4s\nqueue_run_delay = 2s",
    );
    i.launch();
    let id = send(i.t.port, SENDER, &at("tern-al-tf"), "", "later");
    let log = i.wait(&format!("{id}: to=<"), 1);
    let (lines, _) = delivery_lines(&log, "postfix/local", &id);
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("dsn=4.3.0, status=deferred (temporary failure"),
        "{log}"
    );
    let (q, _, qf) = queue_file(&i.t, &id, &[QueueName::Deferred]);
    assert_eq!(q, QueueName::Deferred);
    let last = qf.envelope.recipients[0]
        .last
        .clone()
        .expect("a status record");
    assert_eq!(last.status, DeliveryStatus::Deferred);
    assert!(last.dsn.starts_with("4."), "{last:?}");
    let log = i.wait(&format!("{id}: removed"), 1);
    let (lines, _) = delivery_lines(&log, "postfix/local", &id);
    assert_eq!(lines.len(), 2, "{log}");
    assert_eq!(
        lines[1],
        sent(
            &at("tern-al-tf"),
            None,
            &format!("delivered to command: {}", script.display())
        ),
        "{log}"
    );
    let got = std::fs::read_to_string(out.join("got")).unwrap();
    assert!(got.contains("Subject: later"), "{got}");
}

#[test]
fn maildir_in_home_is_read_by_mutt() {
    let base = homes();
    let user = TestUser::new("tern-t-md", Some(&base.path().join("md")));
    let mut i = Instance::new("", "home_mailbox = Maildir/");
    i.launch();
    let id = send(i.t.port, SENDER, &at(&user.name), "", "for mutt");
    let log = i.wait(&format!("{id}: removed"), 1);
    let (lines, _) = delivery_lines(&log, "postfix/local", &id);
    assert_eq!(
        lines,
        [sent(&at(&user.name), None, "delivered to maildir")],
        "{log}"
    );
    let dir = base.path().join("md/Maildir");
    let new: Vec<_> = std::fs::read_dir(dir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(new.len(), 1);
    check_mbox_rights(&new[0], &user);
    let seen = mutt_first_message(&dir, &i.scratch);
    assert!(seen.contains("Subject: for mutt"), "{seen}");
    assert!(
        seen.contains(&format!("Delivered-To: {}", at(&user.name))),
        "{seen}"
    );
}

#[test]
fn mailbox_transport_and_fallback_transport_pass_to_a_pipe_service() {
    let base = homes();
    let user = TestUser::new("tern-t-px", None);
    let out = base.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let script = out.join("store.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat > {o}/\"$1\".msg; echo \"$2 $(id -u)\" > {o}/\"$1\".rcpt\n",
            o = out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut i = Instance::with_services(
        "",
        &format!(
            "mailbox_transport_maps = inline:{{ {u}=tern-mbx }}\n\
             fallback_transport = tern-mbx\n\
             local_recipient_maps =",
            u = user.name
        ),
        &format!(
            "tern-mbx unix - n n - - pipe\n  user=nobody argv={} ${{user}} ${{recipient}}\n",
            script.display()
        ),
    );
    i.launch();
    let id1 = send(i.t.port, SENDER, &at(&user.name), "", "mailbox transport");
    let id2 = send(i.t.port, SENDER, &at("tern-t-nouser"), "", "fallback");
    let log = i.wait(": removed", 2);
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    for (id, local) in [(&id1, user.name.as_str()), (&id2, "tern-t-nouser")] {
        assert!(log.contains(&format!("{id}: removed")), "{log}");
        // The pipe agent logs the delivery, local(8) nothing.
        let (lines, _) = delivery_lines(&log, "postfix/local", id);
        assert_eq!(lines, Vec::<String>::new(), "{log}");
        let (lines, _) = delivery_lines(&log, "postfix/pipe", id);
        assert_eq!(
            lines,
            [format!(
                "postfix/pipe[PID]: QID: to=<{}>, relay=tern-mbx, delay=N, delays=N, \
                 dsn=2.0.0, status=sent (delivered via tern-mbx service)",
                at(local)
            )],
            "{log}"
        );
        let rcpt = std::fs::read_to_string(out.join(format!("{local}.rcpt"))).unwrap();
        assert_eq!(rcpt.trim(), format!("{} {}", at(local), nobody.uid));
        let msg = std::fs::read_to_string(out.join(format!("{local}.msg"))).unwrap();
        assert!(msg.contains("Subject: "), "{msg}");
    }
    assert!(!i.mbox(&user.name).exists());
}
