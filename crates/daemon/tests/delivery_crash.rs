//! A crash during delivery: 2,000 messages sent over several SMTP sessions to local
//! users' Maildirs (home_mailbox = Maildir/), the daemon SIGKILLed while qmgr delivers,
//! then started again until the queue is empty.
//!
//! The promise is Postfix's (qmgr(8), local(8)): a message whose 250 the client read is
//! delivered at least once; it is delivered twice only when its delivery had started
//! and its `Sent` status record was not yet on disk at the kill. Such deliveries are
//! bounded by the local transport's concurrency: local_destination_concurrency_limit
//! (2) per recipient (local_destination_recipient_limit = 1 makes each recipient its
//! own destination), at most maxproc in all. The helper's processes must not outlive
//! the daemon: the supervisor ends when its control socket closes, each worker when
//! its socket does.
//!
//! Messages are told apart by a unique `X-Tern-Seq:` header per attempt (a message
//! whose 250 was lost in the kill is sent again under a new tag).
//! Needs root, and `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

mod deliver_util;
mod delivery_util;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deliver_util::{TestUser, children, configure, daemon_pid};
use delivery_util::{Client, gone, header, maildir_count, maildir_files, queued, wait_until};
use tern_queue::{QueueFile, QueueLayout, QueueName};

const MESSAGES: usize = 2000;
const SESSIONS: usize = 4;
const USERS: usize = 4;
/// local_destination_concurrency_limit's default.
const LOCAL_CONCURRENCY: usize = 2;
/// default_process_limit (local's maxproc is `-`).
const PROCESS_LIMIT: usize = 100;

/// What the senders learnt: tag -> (queue id, recipient) of every acknowledged message.
type Acked = Mutex<BTreeMap<String, (String, String)>>;

/// One session's share: messages `first..first+count`, each retried (under a new tag)
/// until a 250 arrives, reconnecting when the daemon goes away. Bounded by `deadline`.
fn sender(addr: &str, session: usize, users: &[String], acked: &Acked, deadline: Instant) {
    let count = MESSAGES / SESSIONS;
    let mut client: Option<Client> = None;
    let mut n = 0;
    let mut attempt = 0;
    while n < count && Instant::now() < deadline {
        if client.is_none() {
            let Ok(c) = Client::connect(addr, Duration::from_secs(20)) else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            client = Some(c);
        }
        let Some(c) = client.as_mut() else { continue };
        let to = format!("{}@mx.example.test", users[(session + n) % users.len()]);
        let tag = format!("s{session}-m{n}-a{attempt}");
        let body = format!(
            "From: sender@example.org\nTo: {to}\nSubject: crash {session}/{n}\n\
             X-Tern-Seq: {tag}\n\nmessage {tag}\n{}\n",
            "x".repeat(200)
        );
        match c.send("sender@example.org", "", &[&to], body.as_bytes()) {
            Ok(Ok(id)) => {
                acked.lock().unwrap().insert(tag, (id, to));
                n += 1;
                attempt = 0;
            }
            Ok(Err(refused)) => panic!("{tag}: refused: {refused:?}"),
            Err(_) => {
                // The daemon died under the session: this attempt may or may not be
                // queued; the next one has its own tag.
                client = None;
                attempt += 1;
            }
        }
    }
    if let Some(c) = client {
        c.quit();
    }
}

/// The queue ids in active/ with a recipient that has no final status record.
fn unrecorded_in_active(queue_dir: &std::path::Path) -> HashSet<String> {
    let layout = QueueLayout::new(queue_dir);
    let listing = tern_queue::scan(&layout, QueueName::Active).expect("scan active/");
    listing
        .entries
        .into_iter()
        .filter(|e| QueueFile::open(&e.path).map_or(true, |qf| qf.pending().next().is_some()))
        .map(|e| e.id.as_str().to_owned())
        .collect()
}

#[test]
fn kill_during_delivery_loses_nothing_and_repeats_only_what_was_in_flight() {
    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let users: Vec<TestUser> = (0..USERS)
        .map(|i| {
            let name = format!("tern-t-crash{i}");
            let home = base.path().join(&name);
            TestUser::new(&name, Some(&home))
        })
        .collect();
    let names: Vec<String> = users.iter().map(|u| u.name.clone()).collect();
    let maildirs: Vec<_> = users
        .iter()
        .map(|u| u.home.clone().unwrap().join("Maildir"))
        .collect();
    // Short backoff: anything deferred by the kill comes back within the test.
    let mut t = configure(
        "home_mailbox = Maildir/\nqueue_run_delay = 1s\nminimal_backoff_time = 1s\n\
         maximal_backoff_time = 2s",
    );
    t.launch().expect("launch");
    let addr = t.addr();
    let acked: Arc<Acked> = Arc::default();
    let deadline = Instant::now() + Duration::from_mins(5);
    let senders: Vec<_> = (0..SESSIONS)
        .map(|s| {
            let (addr, names, acked) = (addr.clone(), names.clone(), Arc::clone(&acked));
            std::thread::spawn(move || sender(&addr, s, &names, &acked, deadline))
        })
        .collect();

    // Kill once a fifth has been delivered: qmgr is busy then.
    let delivered = || maildirs.iter().map(|d| maildir_count(d)).sum::<usize>();
    assert!(
        wait_until(Duration::from_mins(3), || delivered() >= MESSAGES / 5),
        "no deliveries: {}\n{}",
        delivered(),
        t.log()
    );
    let daemon = daemon_pid(&t);
    let helpers: Vec<u32> = children(daemon)
        .into_iter()
        .flat_map(|c| std::iter::once(c).chain(children(c)))
        .collect();
    t.kill();
    let killed = Instant::now();
    let at_kill = delivered();
    let log_at_kill = t.log();
    // The messages whose delivery may have started and is not recorded: in active/, a
    // recipient without a final status record. (The log cannot tell: the daemon's log
    // writer gathers lines, and those it held died with it.)
    let unrecorded = unrecorded_in_active(&t.queue_dir());
    assert!(!helpers.is_empty(), "no helper processes seen");
    // The helper does not outlive the daemon.
    let orphans_gone = wait_until(Duration::from_secs(30), || helpers.iter().all(|&p| gone(p)));
    let left: Vec<_> = helpers.iter().filter(|&&p| !gone(p)).collect();
    assert!(orphans_gone, "helper processes still running: {left:?}");
    eprintln!(
        "killed the daemon after {at_kill} deliveries; {} helper processes, all gone after \
         {:?}; {} messages in active/ without a final record",
        helpers.len(),
        killed.elapsed(),
        unrecorded.len()
    );

    t.launch().expect("relaunch");
    for s in senders {
        s.join().unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert_eq!(acked.len(), MESSAGES, "not every message was accepted");

    // The queue empties.
    let emptied = wait_until(Duration::from_mins(5), || queued(&t.queue_dir()) == 0);
    let log = t.log();
    assert!(
        emptied,
        "{} files left in the queue\n{log}",
        queued(&t.queue_dir())
    );

    // Every acknowledged message is there; count the copies of each tag.
    let mut copies: HashMap<String, usize> = HashMap::new();
    let mut files = 0;
    for d in &maildirs {
        for (path, text) in maildir_files(d) {
            files += 1;
            let tag = header(&text, "X-Tern-Seq")
                .unwrap_or_else(|| panic!("{}: no X-Tern-Seq", path.display()));
            *copies.entry(tag).or_default() += 1;
        }
    }
    let missing: Vec<_> = acked.keys().filter(|t| !copies.contains_key(*t)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let duplicated: Vec<(&String, usize)> = copies
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(t, &n)| (t, n))
        .collect();
    let duplicates: usize = duplicated.iter().map(|(_, n)| n - 1).sum();
    let bound = (USERS * LOCAL_CONCURRENCY).min(PROCESS_LIMIT);
    eprintln!(
        "messages acknowledged {}, files {files}, duplicates {duplicates} (tags {:?}), \
         in-flight bound {bound}",
        acked.len(),
        duplicated
    );
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates, more than {bound} deliveries can be in flight: {duplicated:?}"
    );
    // Each duplicate was in flight: in active/ at the kill without its Sent record.
    let mut report = String::new();
    for (tag, _) in &duplicated {
        let Some((id, _)) = acked.get(*tag) else {
            continue;
        };
        if !unrecorded.contains(id) {
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(id.as_str())).collect();
            let _ = writeln!(report, "{tag} ({id}):\n{}", lines.join("\n"));
        }
    }
    assert!(
        report.is_empty(),
        "delivered twice although not in flight at the kill:\n{report}"
    );
    // Nothing bounced or deferred, no agent trouble (the journal's recovery warnings
    // are expected: the kill cut SMTP sessions too); each message the restarted daemon saw ends with `removed` (one
    // removed just before the kill may have lost its line with the daemon).
    assert!(!log.contains("status=bounced"), "{log}");
    let after = &log[log_at_kill.len().min(log.len())..];
    let odd: Vec<&str> = after
        .lines()
        .filter(|l| {
            let agent = l.contains("postfix/qmgr[") || l.contains("postfix/local[");
            (agent && l.contains("warning:")) || l.contains("status=deferred")
        })
        .collect();
    assert!(odd.is_empty(), "after the restart:\n{}", odd.join("\n"));
    for (id, _) in acked.values() {
        if after.contains(&format!("{id}: ")) {
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(id.as_str())).collect();
            assert!(
                after.contains(&format!("{id}: removed")),
                "{id} not removed:\n{}",
                lines.join("\n")
            );
        }
    }
}
