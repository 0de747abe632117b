//! virtual(8) through the delivery helper, and the whole chain started by an ordinary
//! user (no switching anywhere): Tern's daemon with qmgr and Debian's local and virtual
//! lines in master.cf, mail sent with Python's smtplib.
//! Needs root (to make the users), Python 3, and `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

mod deliver_util;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use deliver_util::{
    TestUser, configure, daemon_pid, delivery_lines, send, uid_of, wait_for, workers,
};
use tern_testkit::support::KillOnDrop;

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn virtual_mailbox_domain_maildir_and_mbox() {
    let user = TestUser::new("tern-t-virt", None);
    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let vmail = base.path().join("vmail");
    std::fs::create_dir(&vmail).unwrap();
    nix::unistd::chown(
        &vmail,
        Some(nix::unistd::Uid::from_raw(user.uid)),
        Some(nix::unistd::Gid::from_raw(user.gid)),
    )
    .unwrap();
    let mut t = configure(&format!(
        "virtual_mailbox_domains = virt.test\n\
         virtual_mailbox_base = {}\n\
         virtual_mailbox_maps = inline:{{ v@virt.test=vdir/, m@virt.test=vmbox }}\n\
         virtual_uid_maps = static:{}\n\
         virtual_gid_maps = static:{}",
        vmail.display(),
        user.uid,
        user.gid
    ));
    t.launch().expect("launch");
    let id1 = send(t.port, "v@virt.test", "virtual maildir");
    let id2 = send(t.port, "m@virt.test", "virtual mbox");
    let log = wait_for(|| t.log(), ": removed", 2);
    for (id, to, text) in [
        (&id1, "v@virt.test", "delivered to maildir"),
        (&id2, "m@virt.test", "delivered to mailbox"),
    ] {
        let (lines, _) = delivery_lines(&log, "postfix/virtual", id);
        assert_eq!(
            lines,
            [format!(
                "postfix/virtual[PID]: QID: to=<{to}>, relay=virtual, delay=N, delays=N, \
                 dsn=2.0.0, status=sent ({text})"
            )],
            "{log}"
        );
    }
    let new = files_in(&vmail.join("vdir/new"));
    assert_eq!(new.len(), 1);
    let mbox = vmail.join("vmbox");
    for f in [&new[0], &mbox] {
        let meta = std::fs::metadata(f).unwrap();
        assert_eq!(
            (meta.uid(), meta.mode() & 0o777),
            (user.uid, 0o600),
            "{f:?}"
        );
    }
    let text = std::fs::read_to_string(&mbox).unwrap();
    assert!(text.starts_with("From sender@example.org "), "{text}");
    assert!(text.contains("Delivered-To: m@virt.test\n"), "{text}");
}

#[test]
fn started_by_an_ordinary_user_delivers_to_that_user() {
    let user = TestUser::new("tern-t-unpriv", None);
    let t = configure("");
    let spool = t.dir.path().join("maildirs");
    std::fs::create_dir(&spool).unwrap();
    let main = t.config_dir().join("main.cf");
    std::fs::write(
        &main,
        std::fs::read_to_string(&main).unwrap()
            + &format!("mail_spool_directory = {}/\n", spool.display()),
    )
    .unwrap();
    let chown = Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", user.name, user.name))
        .arg(t.dir.path())
        .status()
        .expect("chown");
    assert!(chown.success());
    let as_user = |command: &str| {
        let (uid, gid) = (user.uid.to_string(), user.gid.to_string());
        let (code, err) = t.postfix_as(&uid, &gid, command).expect("setpriv");
        assert_eq!(code, 0, "postfix {command}: {err}");
    };
    as_user("start");
    let daemon = daemon_pid(&t);
    let guard = KillOnDrop(daemon);
    let to = format!("{}@mx.example.test", user.name);
    let id = send(t.port, &to, "unprivileged");
    let log = wait_for(|| t.log(), &format!("{id}: removed"), 1);
    let (lines, _) = delivery_lines(&log, "postfix/local", &id);
    assert_eq!(
        lines,
        [format!(
            "postfix/local[PID]: QID: to=<{to}>, relay=local, delay=N, delays=N, dsn=2.0.0, \
             status=sent (delivered to maildir)"
        )],
        "{log}"
    );
    let w = workers(daemon);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(uid_of(w[0]), user.uid);
    let new = files_in(&spool.join(&user.name).join("new"));
    assert_eq!(new.len(), 1);
    let meta = std::fs::metadata(&new[0]).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (user.uid, 0o600));
    as_user("stop");
    let start = Instant::now();
    while Path::new(&format!("/proc/{daemon}")).exists()
        && start.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The helper ends with the daemon (its control socket closes).
    let start = Instant::now();
    while Path::new(&format!("/proc/{}", w[0])).exists() && start.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !Path::new(&format!("/proc/{}", w[0])).exists(),
        "worker left running"
    );
    std::mem::forget(guard);
}
