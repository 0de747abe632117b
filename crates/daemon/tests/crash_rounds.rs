//! Crash consistency in rounds (issue 10): each round loads the daemon over SMTP (session
//! threads that record the tag and queue id of every 250, beside Postfix's smtp-source
//! for volume), SIGKILLs every process of the instance at once (master, the delivery
//! supervisor and its workers) at a random moment, once or twice, restarts it with
//! `postfix start` on the same configuration and queue, waits until the queue is empty,
//! and checks the promises of smtpd(8), cleanup(8), qmgr(8), local(8) and bounce(8):
//!
//! - every message that got a 250 has its outcome in the user's Maildir: a delivered copy
//!   for the user's recipient, a bounce notice (which returns the original's headers) for
//!   the unknown user's; lost must be 0;
//! - a message is there twice only if its delivery was in flight at a kill: its queue
//!   file was in active/ with a recipient that had no final status record (the snapshot
//!   is read after the kill, when nothing runs), and at most once per kill;
//! - no queue file is lost or unexplained: after the drain incoming/, active/ and
//!   deferred/ are empty, and every queue id seen (a 250, a queue snapshot, qmgr's
//!   `from=` and bounce's notification lines) was delivered, bounced or moved to corrupt/
//!   with a log line saying so.
//!
//! The kill moment is aimed in turn at a client sending DATA, a client waiting for the
//! reply to the final dot (the queue file's fsync and commit: large messages widen it), a
//! Maildir write in progress (a file in tmp/), a bounce being made (just after a
//! `status=bounced` line), any moment, and at once after a restart (qmgr taking over
//! what the last kill left in active/); each kill records which phases were in progress
//! (read while the instance is stopped by SIGSTOP, just before the SIGKILL). `CRASH_ROUNDS` rounds (10 by default, the CI run; 100 for the long run),
//! `CRASH_SEED` repeats a run's random choices. A summary is printed at the end (run with
//! `--nocapture` to see it).
//!
//! Needs root (a throw-away user `tern-t-crashr`), Debian's smtp-source, and
//! `cargo build -p tern-commands --bins`.

#![allow(clippy::unwrap_used)] // test code: a failure is the test's failure

mod crash_util;
mod deliver_util;
mod delivery_util;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crash_util::load::{self, Load, Rcpts};
use crash_util::{Copy, LogFacts, Rng, Seen};
use deliver_util::{TestUser, configure};
use tern_queue::QueueName;
use tern_testkit::tern::Tern;

/// SMTP sessions of the tracked load.
const SESSIONS: usize = 3;
/// Acknowledged messages per session and round, at most.
const PER_SESSION: usize = 80;
/// How long a round's load may run, in all.
const LOAD_LIMIT: Duration = Duration::from_secs(40);
/// How long the wait for a kill's target phase may take before it kills anyway.
const TARGET_WAIT: Duration = Duration::from_secs(4);
/// How long the queue may take to empty after the last restart.
const DRAIN_LIMIT: Duration = Duration::from_secs(90);

/// What a kill is aimed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Data,
    Fsync,
    Delivery,
    Bounce,
    /// Any moment of the load.
    Anytime,
    /// At once after the (re)start: qmgr takes what recovery left in active/.
    Startup,
}

const TARGETS: [Target; 6] = [
    Target::Data,
    Target::Fsync,
    Target::Delivery,
    Target::Bounce,
    Target::Anytime,
    Target::Startup,
];

/// One kill and what was in progress at it.
#[derive(Debug)]
struct Kill {
    target: Target,
    /// Whether the target phase was seen before the kill (else it fell at the deadline).
    met: bool,
    at: String,
    pids: usize,
    /// Clients writing content / waiting for the end-of-data reply (large ones).
    in_data: usize,
    awaiting: usize,
    awaiting_large: usize,
    /// Messages being received or committed: temporary files in incoming/.
    receiving: usize,
    /// Maildir writes cut: tmp/ files the kill left.
    maildir_cut: usize,
    /// Queue files in active/ with the user's / an unknown user's recipient pending.
    delivering: usize,
    bouncing: usize,
    /// Bounce notices in the queue.
    notices: usize,
    files: usize,
    snapshot: Vec<Seen>,
}

impl Kill {
    /// The phases that were in progress.
    fn phases(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.in_data > 0 || self.receiving > 0 {
            // A client writing content, or a message file not yet committed.
            out.push("data");
        }
        if self.awaiting > 0 {
            // The client sent the final dot: the server reads what the socket buffers
            // hold, writes and commits (the fsync).
            out.push("end-of-data");
        }
        if self.maildir_cut > 0 || self.delivering > 0 {
            out.push("delivery");
        }
        if self.bouncing > 0 || self.notices > 0 {
            out.push("bounce");
        }
        out
    }
}

/// The running instance, started with `postfix start`; killed on drop.
struct Instance {
    t: Tern,
    maildir: PathBuf,
}

impl Instance {
    fn start(&self) {
        // The killed daemon's lock on its pid file goes with its last thread (see
        // crash_util::gone); `postfix start` refuses to start while it is held.
        let queue = self.t.queue_dir();
        let unlocked = delivery_util::wait_until(Duration::from_secs(10), || {
            tern_daemon::control::running(&queue).is_none()
        });
        assert!(unlocked, "the pid file is still locked 10 s after the kill");
        let (code, err) = self.t.postfix(&["start"]).unwrap();
        assert_eq!(code, 0, "postfix start: {err}\n{}", self.t.log());
    }

    fn master(&self) -> u32 {
        crash_util::master_pid(&self.t.queue_dir()).expect("master.pid")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(pid) = crash_util::master_pid(&self.t.queue_dir())
            && !crash_util::gone(pid)
        {
            let _ = self.t.postfix(&["stop"]);
        }
    }
}

/// The new text of a growing file.
struct Tail {
    path: PathBuf,
    offset: u64,
}

impl Tail {
    fn new(path: &Path) -> Tail {
        let offset = std::fs::metadata(path).map_or(0, |m| m.len());
        Tail {
            path: path.to_owned(),
            offset,
        }
    }

    fn read(&mut self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.path)
            && f.seek(SeekFrom::Start(self.offset)).is_ok()
        {
            let _ = f.read_to_string(&mut s);
        }
        self.offset += s.len() as u64;
        s
    }
}

/// Sums over the rounds.
#[derive(Default)]
struct Totals {
    rounds: usize,
    kills: usize,
    targets_met: BTreeMap<String, (usize, usize)>,
    phases: BTreeMap<&'static str, usize>,
    acked: usize,
    broken: usize,
    copies: usize,
    notices: usize,
    untracked: usize,
    files: usize,
    duplicates: usize,
    dups_explained: usize,
    lost: usize,
    corrupt: usize,
    maildir_cut: usize,
    drain: Duration,
}

#[test]
fn crash_rounds_lose_nothing_and_repeat_only_what_was_in_flight() {
    let rounds: usize = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let (mut rng, seed) = Rng::from_env_or_clock();
    eprintln!("crash_rounds: {rounds} rounds, seed {seed}");
    let started = Instant::now();

    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = base.path().join("tern-t-crashr");
    let user = TestUser::new("tern-t-crashr", Some(&home));
    // An empty local_recipient_maps lets unknown users in at RCPT; local(8) bounces them
    // (`5.1.1 unknown user`), so every round makes bounce notices. Short backoff: what a
    // kill deferred comes back within the round.
    let t = configure(
        "home_mailbox = Maildir/\nlocal_recipient_maps =\nqueue_run_delay = 1s\n\
         minimal_backoff_time = 1s\nmaximal_backoff_time = 2s",
    );
    let inst = Instance {
        t,
        maildir: home.join("Maildir"),
    };
    inst.start();
    let rcpts = Rcpts {
        user: user.name.clone(),
    };
    let mut totals = Totals::default();
    let mut failures = String::new();
    for r in 0..rounds {
        let report = round(&inst, &rcpts, r, &mut rng, &mut totals);
        if !report.is_empty() {
            let _ = writeln!(failures, "round {r}:\n{report}");
            break;
        }
    }
    let elapsed = started.elapsed();
    let (survived, rounds_run) = (
        totals.rounds - usize::from(!failures.is_empty()),
        totals.rounds,
    );
    let mut summary = format!(
        "crash_rounds summary (seed {seed}): rounds {survived}/{rounds_run} survived, kills {}, \
         messages acknowledged {} (and checked), transactions cut {}, delivered copies {}, \
         bounce notices {}, untracked (smtp-source) copies {}, queue files checked {}, \
         duplicates {} ({} inside a killed delivery), lost {}, files moved to corrupt/ {}, \
         Maildir writes cut {}, drain time {:.1?}, wall time {:.1?}\n",
        totals.kills,
        totals.acked,
        totals.broken,
        totals.copies,
        totals.notices,
        totals.untracked,
        totals.files,
        totals.duplicates,
        totals.dups_explained,
        totals.lost,
        totals.corrupt,
        totals.maildir_cut,
        totals.drain,
        elapsed
    );
    // What the restarts' recovery did (master's `queue recovery:` lines).
    let log = inst.t.log();
    for (what, needle) in [
        (
            "unfinished files removed",
            "queue recovery: removed unfinished file",
        ),
        ("files restored from the journal", "from the commit journal"),
        ("torn status records cut", "cut a torn status record"),
        ("files moved to corrupt/", ": moved to "),
        ("journal replays", "queue recovery: replayed "),
    ] {
        let n = log.lines().filter(|l| l.contains(needle)).count();
        let _ = writeln!(summary, "  recovery: {what}: {n}");
    }
    for (t, (n, met)) in &totals.targets_met {
        let _ = writeln!(summary, "  kills aimed at {t}: {n} ({met} hit the phase)");
    }
    for (p, n) in &totals.phases {
        let _ = writeln!(summary, "  kills with {p} in progress: {n}");
    }
    eprint!("{summary}");
    if !failures.is_empty() {
        let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("crash_rounds-mail.log");
        let _ = std::fs::copy(inst.t.log_path(), &keep);
        let _ = writeln!(summary, "the mail log: {}", keep.display());
    }
    assert!(failures.is_empty(), "{failures}\n{summary}");
    assert_eq!(totals.lost, 0);
    assert!(totals.acked > 0, "nothing was acknowledged");
}

/// One round; returns what failed (empty: nothing).
#[allow(clippy::too_many_lines)]
fn round(inst: &Instance, rcpts: &Rcpts, r: usize, rng: &mut Rng, totals: &mut Totals) -> String {
    let t = &inst.t;
    let queue = t.queue_dir();
    let log_start = t.log().len();
    let mut tail = Tail::new(&t.log_path());
    let load = Arc::new(Load::default());
    let deadline = Instant::now() + LOAD_LIMIT;
    let senders: Vec<_> = (0..SESSIONS)
        .map(|s| {
            let (addr, rcpts, load) = (t.addr(), rcpts.clone(), Arc::clone(&load));
            let seed = rng.next();
            std::thread::spawn(move || {
                load::sender(
                    &addr,
                    &format!("r{r}-s{s}"),
                    &rcpts,
                    &load,
                    PER_SESSION,
                    deadline,
                    seed,
                );
            })
        })
        .collect();
    let user = rcpts.user_addr();
    let mut sources = vec![
        load::smtp_source(&t.addr(), &user, &user, 20, 3000),
        load::smtp_source(&t.addr(), &user, &Rcpts::bouncer(0), 6, 2000),
    ];
    let kill_count = 1 + rng.below(2);
    let mut kills = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for k in 0..kill_count {
        let target = TARGETS[rng.below(TARGETS.len())];
        if target != Target::Startup {
            std::thread::sleep(Duration::from_millis(100 + rng.below(700) as u64));
        }
        let tmp_before: HashSet<PathBuf> = crash_util::maildir_names(&inst.maildir, "tmp")
            .into_iter()
            .collect();
        let met = wait_for(target, inst, &load, &mut tail, rng);
        let (mut in_data, mut awaiting, mut awaiting_large) = (0, 0, 0);
        let mut at = String::new();
        let pids = crash_util::kill_all(inst.master(), || {
            in_data = load.in_data.load(Ordering::SeqCst);
            awaiting = load.awaiting.load(Ordering::SeqCst);
            awaiting_large = load.awaiting_large.load(Ordering::SeqCst);
            at = crash_util::clock();
        });
        let (snapshot, receiving) = crash_util::snapshot_with_temporaries(&queue);
        let maildir_cut = crash_util::maildir_names(&inst.maildir, "tmp")
            .into_iter()
            .filter(|p| !tmp_before.contains(p))
            .count();
        let user_rcpt = |s: &Seen| s.pending.iter().any(|p| p == &user);
        let active = |s: &&Seen| s.queue == QueueName::Active;
        let kill = Kill {
            target,
            met,
            at,
            pids: pids.len(),
            in_data,
            awaiting,
            awaiting_large,
            receiving,
            maildir_cut,
            delivering: snapshot
                .iter()
                .filter(active)
                .filter(|s| user_rcpt(s))
                .count(),
            bouncing: snapshot
                .iter()
                .filter(active)
                .filter(|s| s.pending.iter().any(|p| p != &user))
                .count(),
            notices: snapshot.iter().filter(|s| s.notice).count(),
            files: snapshot.len(),
            snapshot,
        };
        seen.extend(kill.snapshot.iter().map(|s| s.id.clone()));
        kills.push(kill);
        inst.start();
        // The journal may bring back files the snapshot did not see.
        seen.extend(crash_util::snapshot(&queue).into_iter().map(|s| s.id));
        if k + 1 < kill_count {
            sources.push(load::smtp_source(&t.addr(), &user, &user, 20, 3000));
        }
        let _ = tail.read();
    }
    // More load on the restarted daemon, then the drain.
    std::thread::sleep(Duration::from_millis(300 + rng.below(1200) as u64));
    load.stop.store(true, Ordering::SeqCst);
    for s in senders {
        s.join().unwrap();
    }
    for s in sources {
        load::finish(s, Duration::from_secs(30));
    }
    let drain_start = Instant::now();
    // Tern's 250 follows the commit journal's sync, and the queue file's name in
    // incoming/ follows the 250 (microseconds later: docs/architecture.md, "Durability
    // through a commit journal"), so an empty queue right after the last 250 may not be
    // the end. Empty twice, 300 ms apart: all that was named before the first look has
    // then been delivered (a 100-round run reported a delivered message lost without
    // this second look).
    let empty = || delivery_util::queued(&queue) == 0;
    let drained = delivery_util::wait_until(DRAIN_LIMIT, empty) && {
        std::thread::sleep(Duration::from_millis(300));
        delivery_util::wait_until(DRAIN_LIMIT, empty)
    };
    let drain = drain_start.elapsed();
    let log = t.log();
    let round_log = &log[log_start.min(log.len())..];
    let mut failures = String::new();
    if !drained {
        let left: Vec<String> = crash_util::snapshot(&queue)
            .iter()
            .map(|s| format!("{} in {:?} pending {:?}", s.id, s.queue, s.pending))
            .collect();
        let _ = writeln!(
            failures,
            "the queue did not empty in {DRAIN_LIMIT:?}: {left:?}"
        );
    }
    let refused = load.refused.lock().unwrap().clone();
    if !refused.is_empty() {
        let _ = writeln!(failures, "refused: {refused:?}");
    }

    let copies: Vec<Copy> = ["new", "cur"]
        .iter()
        .flat_map(|sub| crash_util::maildir_names(&inst.maildir, sub))
        .map(|p| crash_util::read_copy(&p))
        .collect();
    let acked = load.acked.lock().unwrap().clone();
    let facts = LogFacts::read(round_log);
    let corrupt = crash_util::corrupt_files(&queue);
    let check = Check {
        kills: &kills,
        copies: &copies,
        facts: &facts,
        corrupt: &corrupt,
        log: round_log,
    };
    let lost = check.acknowledged(&acked, &mut failures);
    let (dups, explained) = check.duplicates(&mut failures);
    seen.extend(acked.iter().map(|a| a.id.clone()));
    seen.extend(facts.queued.iter().cloned());
    check.files(&seen, &mut failures);

    let notices = copies.iter().filter(|c| c.original.is_some()).count();
    let untracked = copies.iter().filter(|c| c.tags.is_empty()).count();
    let phases: Vec<String> = kills
        .iter()
        .map(|k| {
            format!(
                "{:?}{} at {} [{}] ({} pids, {} queue files, {} large commits)",
                k.target,
                if k.met { "" } else { " (missed)" },
                k.at,
                k.phases().join(","),
                k.pids,
                k.files,
                k.awaiting_large
            )
        })
        .collect();
    eprintln!(
        "round {r}: kills {}; acknowledged {}, cut {}, copies {}, notices {notices}, \
         untracked {untracked}, duplicates {dups}, lost {lost}, corrupt {}, drain {drain:.1?}",
        phases.join("; "),
        acked.len(),
        load.broken.load(Ordering::SeqCst),
        copies.len() - notices,
        corrupt.len()
    );
    totals.rounds += 1;
    totals.kills += kills.len();
    for k in &kills {
        let e = totals
            .targets_met
            .entry(format!("{:?}", k.target))
            .or_default();
        e.0 += 1;
        e.1 += usize::from(k.met);
        for p in k.phases() {
            *totals.phases.entry(p).or_default() += 1;
        }
        totals.maildir_cut += k.maildir_cut;
    }
    totals.acked += acked.len();
    totals.broken += load.broken.load(Ordering::SeqCst);
    totals.copies += copies.len() - notices;
    totals.notices += notices;
    totals.untracked += untracked;
    totals.files += seen.len();
    totals.duplicates += dups;
    totals.dups_explained += explained;
    totals.lost += lost;
    totals.corrupt = corrupt.len();
    totals.drain += drain;

    // The next round starts with an empty Maildir.
    for sub in ["new", "cur", "tmp"] {
        for p in crash_util::maildir_names(&inst.maildir, sub) {
            let _ = std::fs::remove_file(p);
        }
    }
    failures
}

/// Waits (at most TARGET_WAIT) for the moment a kill is aimed at, then a random moment
/// more; returns whether the phase was seen.
fn wait_for(target: Target, inst: &Instance, load: &Load, tail: &mut Tail, rng: &mut Rng) -> bool {
    let start = Instant::now();
    let tmp = inst.maildir.join("tmp");
    let mut seen = false;
    // Bounded by TARGET_WAIT; each pass sleeps 0.2 ms or more.
    while start.elapsed() < TARGET_WAIT {
        seen = match target {
            Target::Data => load.in_data.load(Ordering::SeqCst) > 0,
            Target::Fsync => load.awaiting_large.load(Ordering::SeqCst) > 0,
            Target::Delivery => std::fs::read_dir(&tmp).is_ok_and(|mut d| d.next().is_some()),
            Target::Bounce => tail.read().contains("status=bounced"),
            Target::Anytime => {
                std::thread::sleep(Duration::from_millis(rng.below(1500) as u64));
                true
            }
            Target::Startup => true,
        };
        if seen {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    // Somewhere inside the phase: DATA of a large message and its commit last
    // milliseconds, a Maildir write and a notice less.
    let within = match target {
        Target::Fsync | Target::Bounce => 2000,
        Target::Data | Target::Delivery => 500,
        Target::Startup => 50_000,
        Target::Anytime => 1,
    };
    std::thread::sleep(Duration::from_micros(rng.below(within) as u64));
    seen
}

/// The checks of one round after the drain.
struct Check<'a> {
    kills: &'a [Kill],
    copies: &'a [Copy],
    facts: &'a LogFacts,
    corrupt: &'a [PathBuf],
    log: &'a str,
}

impl Check<'_> {
    /// Every acknowledged message has its outcome; returns the number lost.
    fn acknowledged(&self, acked: &[load::Acked], failures: &mut String) -> usize {
        let mut lost = 0;
        for a in acked {
            let delivered = self
                .copies
                .iter()
                .filter(|c| c.original.is_none() && c.tags.contains(&a.tag))
                .collect::<Vec<_>>();
            let bounced = self
                .copies
                .iter()
                .any(|c| c.original.is_some() && c.tags.contains(&a.tag));
            for c in &delivered {
                if c.own_id.as_deref() != Some(a.id.as_str()) {
                    let _ = writeln!(
                        failures,
                        "{} acknowledged as {} but delivered as {:?}",
                        a.tag, a.id, c.own_id
                    );
                }
            }
            if (a.to_user && delivered.is_empty()) || (a.to_bouncer && !bounced) {
                lost += 1;
                let _ = writeln!(
                    failures,
                    "LOST: {} ({}, {} bytes, to user {}, to unknown user {}): delivered {}, \
                     bounced {bounced}; in corrupt/: {}; log:\n{}",
                    a.tag,
                    a.id,
                    a.size,
                    a.to_user,
                    a.to_bouncer,
                    delivered.len(),
                    self.in_corrupt(&a.id),
                    self.lines(&a.id)
                );
            }
        }
        lost
    }

    /// Copies of one message (or notices of one original) beyond the first: each must
    /// have been in flight at a kill, at most one per kill. Returns (duplicates, how many
    /// of them were explained).
    fn duplicates(&self, failures: &mut String) -> (usize, usize) {
        let mut groups: BTreeMap<(bool, &str), Vec<&Copy>> = BTreeMap::new();
        for c in self.copies {
            if let Some(k) = c.key() {
                groups.entry(k).or_default().push(c);
            }
        }
        let in_flight: HashSet<&str> = self
            .kills
            .iter()
            .flat_map(|k| &k.snapshot)
            .filter(|s| s.queue == QueueName::Active && !s.pending.is_empty())
            .map(|s| s.id.as_str())
            .collect();
        let (mut dups, mut explained) = (0, 0);
        for (&(notice, key), group) in groups.iter().filter(|(_, g)| g.len() > 1) {
            let extra = group.len() - 1;
            dups += extra;
            let ids: BTreeSet<&str> = std::iter::once(key)
                .chain(group.iter().filter_map(|c| c.own_id.as_deref()))
                .collect();
            let ok = ids.iter().any(|id| in_flight.contains(id)) && extra <= self.kills.len();
            let kind = if notice {
                "bounce notice of"
            } else {
                "copy of"
            };
            let kill_times: Vec<&str> = self.kills.iter().map(|k| k.at.as_str()).collect();
            eprintln!(
                "  duplicate: {} {kind} {key} (ids {ids:?}), kills at {kill_times:?}, {}",
                group.len(),
                if ok {
                    "in flight at a kill"
                } else {
                    "NOT in flight"
                }
            );
            if ok {
                explained += extra;
            } else {
                let lines: String = ids.iter().map(|id| self.lines(id)).collect();
                let _ = writeln!(
                    failures,
                    "unexplained duplicate: {} {kind} {key} ({} kills at {kill_times:?}), \
                     files {:?}; log:\n{lines}",
                    group.len(),
                    self.kills.len(),
                    group.iter().map(|c| &c.path).collect::<Vec<_>>()
                );
            }
        }
        (dups, explained)
    }

    /// Every queue file seen ends delivered, bounced, or in corrupt/ with a log line.
    fn files(&self, seen: &BTreeSet<String>, failures: &mut String) {
        let delivered: HashSet<&str> = self
            .copies
            .iter()
            .filter_map(|c| c.own_id.as_deref())
            .collect();
        let bounced: HashSet<&str> = self
            .copies
            .iter()
            .filter_map(|c| c.original.as_deref())
            .collect();
        for id in seen {
            if delivered.contains(id.as_str()) || bounced.contains(id.as_str()) {
                continue;
            }
            if self.in_corrupt(id) {
                let logged = self
                    .log
                    .lines()
                    .any(|l| l.contains(id.as_str()) && l.contains("corrupt"));
                if !logged {
                    let _ = writeln!(failures, "{id} in corrupt/ without a log line");
                }
                continue;
            }
            let _ = writeln!(
                failures,
                "queue file {id} unexplained: neither delivered, bounced nor in corrupt/; \
                 removed in the log: {}; log:\n{}",
                self.facts.removed.contains(id),
                self.lines(id)
            );
        }
    }

    fn in_corrupt(&self, id: &str) -> bool {
        self.corrupt.iter().any(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == id || n.starts_with(&format!("{id}_")))
        })
    }

    fn lines(&self, id: &str) -> String {
        self.facts
            .lines
            .get(id)
            .map(|l| l.join("\n") + "\n")
            .unwrap_or_default()
    }
}
