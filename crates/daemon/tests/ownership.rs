//! The queue a root-started daemon makes: laid out as Debian's Postfix lays out
//! /var/spool/postfix (owners, groups, modes), and `postfix check` finds nothing to say
//! about it. Needs root and Debian's postfix package (it fails without them).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

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
