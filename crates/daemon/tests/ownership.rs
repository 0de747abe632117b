//! Who the daemon runs as, and who owns what it writes. Started by root: the queue is
//! laid out as Debian's Postfix lays out /var/spool/postfix (owners, groups, modes),
//! `postfix check` finds nothing to say about it, and every thread of the daemon runs as
//! mail_owner. Started by an ordinary user: the daemon runs, queues mail as that user
//! and stops at that user's `postfix stop`. Needs root, setpriv(1) and Debian's postfix
//! package (it fails without them).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::unistd::{Group, User};
use tern_queue::{QueueLayout, QueueName};
use tern_testkit::support::KillOnDrop;
use tern_testkit::tern::Tern;

const QUEUES: [&str; 15] = [
    "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "maildrop",
    "pid", "private", "public", "saved", "trace", ".",
];

fn start() -> Tern {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test starts the daemon as root"
    );
    // The testkit points daemon_directory at the temp directory, which would make the
    // check walk the whole instance as a root-owned program tree; use Debian's.
    Tern::start("daemon_directory = /usr/lib/postfix/sbin").expect("start")
}

#[test]
fn queue_is_laid_out_as_debians() {
    let t = start();
    let debian = Path::new("/var/spool/postfix");
    for name in QUEUES {
        let stat = |p: &Path| {
            let m = std::fs::metadata(p.join(name)).expect("stat");
            (m.uid(), m.gid(), format!("{:o}", m.mode() & 0o7777))
        };
        assert_eq!(stat(&t.queue_dir()), stat(debian), "{name}");
    }
}

#[test]
fn postfix_check_finds_the_queue_in_order() {
    let t = start();
    let (code, stderr) = t.postfix(&["check"]).expect("postfix check");
    let queue = t.queue_dir().display().to_string();
    let bad: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(&queue) || l.contains("not owned"))
        .collect();
    assert!(bad.is_empty(), "exit {code}:\n{stderr}");
    assert_eq!(code, 0, "{stderr}");
}

/// Started by root: after start-up every thread of the daemon has mail_owner's real,
/// effective, saved and file-system uid and gid (master.rs drops them all).
#[test]
fn root_started_daemon_runs_as_mail_owner() {
    let t = start();
    let owner = User::from_name("postfix")
        .expect("getpwnam")
        .expect("user postfix");
    let pid = pid(&t.queue_dir());
    let ids = thread_ids(pid);
    assert!(!ids.is_empty());
    for (tid, uid, gid) in ids {
        let (u, g) = (owner.uid.as_raw(), owner.gid.as_raw());
        assert_eq!(uid, [u; 4], "thread {tid}");
        assert_eq!(gid, [g; 4], "thread {tid}");
    }
}

/// Started by an ordinary user (`nobody`, through `postfix start`, the way an admin
/// without root would): it listens, queues mail owned by that user, runs as that user in
/// every thread, and that user's `postfix stop` ends it.
#[test]
fn ordinary_user_starts_queues_and_stops() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test switches to nobody"
    );
    let nobody = User::from_name("nobody")
        .expect("getpwnam")
        .expect("nobody");
    let nogroup = Group::from_name("nogroup")
        .expect("getgrnam")
        .expect("nogroup");
    // The port is free when Tern::configure picks it, but a test running beside may bind
    // it first ("Address already in use"): a new instance with another port then.
    let mut started = None;
    for _ in 0..5 {
        let t = Tern::configure("").expect("configure");
        let chown = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(t.dir.path())
            .status()
            .expect("chown");
        assert!(chown.success());
        let (code, err) = as_nobody(&t, "start");
        if code != 0 && err.contains("Address already in use") {
            continue;
        }
        started = Some((t, code, err));
        break;
    }
    let (t, code, err) = started.expect("a free port in five tries");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("postfix/postfix-script: starting the Postfix mail system"),
        "{err}"
    );
    let pid = pid(&t.queue_dir());
    let guard = KillOnDrop(pid);

    let queued = send(t.port);
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    // A journaled file gets its name just after its 250 (docs/queue-format.md).
    let scan = || {
        tern_queue::scan(&QueueLayout::new(t.queue_dir()), QueueName::Incoming)
            .expect("scan")
            .entries
    };
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while scan().is_empty() && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let entries = scan();
    assert_eq!(entries.len(), 1);
    let meta = std::fs::metadata(&entries[0].path).expect("queue file");
    assert_eq!(meta.uid(), nobody.uid.as_raw());
    assert_eq!(meta.gid(), nogroup.gid.as_raw());
    for (tid, uid, gid) in thread_ids(pid) {
        assert_eq!(uid, [nobody.uid.as_raw(); 4], "thread {tid}");
        assert_eq!(gid, [nogroup.gid.as_raw(); 4], "thread {tid}");
    }

    let (code, err) = as_nobody(&t, "stop");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("postfix/postfix-script: stopping the Postfix mail system"),
        "{err}"
    );
    let start = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "still running"
    );
    std::mem::forget(guard);
    let (code, err) = as_nobody(&t, "status");
    assert_eq!(code, 1, "{err}");
    assert!(t.log().contains("terminating on signal 15"), "{}", t.log());
}

/// `postfix -c CONF command` as nobody:nogroup with no supplementary groups, from the
/// instance's directory; the exit code and standard error.
fn as_nobody(t: &Tern, command: &str) -> (i32, String) {
    t.postfix_as("nobody", "nogroup", command).expect("setpriv")
}

/// One message over a raw socket; the reply to the end of data.
fn send(port: u16) -> String {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let mut reply = || {
        let mut all = String::new();
        for _ in 0..100 {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        all
    };
    assert!(reply().starts_with("220 "));
    let mut queued = String::new();
    for line in [
        "EHLO client.example",
        "MAIL FROM:<a@example.org>",
        "RCPT TO:<root@localhost>",
        "DATA",
        "Subject: as nobody\r\n\r\nbody\r\n.",
        "QUIT",
    ] {
        w.write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        let r = reply();
        if line.ends_with('.') {
            queued = r;
        }
    }
    queued
}

/// The daemon's pid, from its pid file.
fn pid(queue: &Path) -> u32 {
    std::fs::read_to_string(queue.join("pid/master.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}

/// Each thread of `pid`: its id and the Uid and Gid lines of /proc/PID/task/TID/status
/// (real, effective, saved, file system).
fn thread_ids(pid: u32) -> Vec<(String, [u32; 4], [u32; 4])> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let task = task.expect("task");
        let tid = task.file_name().to_string_lossy().into_owned();
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        let ids = |key: &str| -> [u32; 4] {
            let line = status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .expect("Uid/Gid line");
            let v: Vec<u32> = line
                .split_whitespace()
                .map(|n| n.parse().expect("id"))
                .collect();
            [v[0], v[1], v[2], v[3]]
        };
        out.push((tid, ids("Uid:"), ids("Gid:")));
    }
    out
}
