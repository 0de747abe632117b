//! Shared by crash_rounds.rs: killing every process of a Tern instance at once, what the
//! queue and the mailbox held at that moment, reading delivered copies and bounce
//! notices back to the queue ids they came from, and the mail log's queue-id lines.
//!
//! Trusts the instance's files as the test's own (it made them); a file that does not
//! read is reported, never a panic.

#![allow(dead_code)]

pub mod load;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tern_queue::{QueueFile, QueueId, QueueLayout, QueueName};

/// A small xorshift generator: the seed is printed, so a failing run can be told apart
/// (and `CRASH_SEED` repeats its choices, though not the machine's timing).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn from_env_or_clock() -> (Rng, u64) {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let d = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                u64::from(d.subsec_nanos()) ^ (d.as_secs() << 20)
            });
        (Rng::new(seed), seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        // The remainder is below n, a usize.
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
}

/// The daemon's pid, from the pid file `postfix start` waits for.
pub fn master_pid(queue_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(queue_dir.join("pid/master.pid"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// (pid, parent pid, process group) of every process, from /proc.
fn processes() -> Vec<(u32, u32, u32)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid pgrp ...`: comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(ppid), Some(pgrp)) = (
            f.get(1).and_then(|v| v.parse().ok()),
            f.get(2).and_then(|v| v.parse().ok()),
        ) {
            out.push((pid, ppid, pgrp));
        }
    }
    out
}

/// `root` and every process below it.
pub fn tree(root: u32) -> Vec<u32> {
    let procs = processes();
    let mut out = vec![root];
    let mut i = 0;
    // Bounded by the process count: each pid is added once (a tree has no cycles).
    while i < out.len() && out.len() <= procs.len() {
        let p = out[i];
        out.extend(
            procs
                .iter()
                .filter(|(_, pp, _)| *pp == p)
                .map(|(c, _, _)| *c),
        );
        i += 1;
    }
    out
}

/// Whether process `pid` is gone: no such process, or a zombie with no thread left.
/// The main thread of a multi-threaded process becomes a zombie first, while its other
/// threads finish (one may be inside an fsync); until the last one has exited the
/// process still holds its files, and so the pid file's lock (a restart right then
/// fails with "the Postfix mail system is already running").
pub fn gone(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count);
    stat.is_empty() || (zombie && threads <= 1)
}

fn pid(p: u32) -> Pid {
    Pid::from_raw(i32::try_from(p).expect("a pid fits i32"))
}

/// SIGKILL for the whole instance at one moment: master (`postfix start` made it a
/// process group leader), the delivery supervisor and workers, and anything else below
/// the master. The group is stopped first (one signal, atomic for the group), so that
/// the tree read from /proc cannot change before the kill; `at_stop` runs then, to
/// record what was in progress. Returns the pids killed, once all are gone (bounded).
pub fn kill_all(master: u32, at_stop: impl FnOnce()) -> Vec<u32> {
    let group = pid(master);
    let _ = killpg(group, Signal::SIGSTOP);
    at_stop();
    let pids = tree(master);
    let _ = killpg(group, Signal::SIGKILL);
    for &p in &pids {
        let _ = kill(pid(p), Signal::SIGKILL);
    }
    // Processes in the master's group that are not below it (none expected).
    for (p, _, g) in processes() {
        if g == master && !gone(p) {
            let _ = kill(pid(p), Signal::SIGKILL);
        }
    }
    let start = Instant::now();
    // Bounded by 10 s.
    while !pids.iter().all(|&p| gone(p)) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let left: Vec<u32> = pids.iter().copied().filter(|&p| !gone(p)).collect();
    assert!(left.is_empty(), "processes survived SIGKILL: {left:?}");
    pids
}

/// One queue file at a moment.
#[derive(Debug, Clone)]
pub struct Seen {
    pub id: String,
    pub queue: QueueName,
    /// Null sender: a bounce notice.
    pub notice: bool,
    /// Recipients without a final status record.
    pub pending: Vec<String>,
    /// The file did not read as a complete queue file.
    pub unreadable: bool,
}

/// The queue files of incoming/, active/ and deferred/, read.
pub fn snapshot(queue_dir: &Path) -> Vec<Seen> {
    snapshot_with_temporaries(queue_dir).0
}

/// [`snapshot`], and how many temporary files (messages being received, not yet
/// committed) the queues hold.
pub fn snapshot_with_temporaries(queue_dir: &Path) -> (Vec<Seen>, usize) {
    let layout = QueueLayout::new(queue_dir);
    let mut out = Vec::new();
    let mut temporaries = 0;
    for q in [QueueName::Incoming, QueueName::Active, QueueName::Deferred] {
        let Ok(listing) = tern_queue::scan(&layout, q) else {
            continue;
        };
        temporaries += listing.temporary.len();
        for e in listing.entries {
            let (notice, pending, unreadable) = match QueueFile::open(&e.path) {
                Ok(qf) => (
                    qf.envelope.sender.is_empty(),
                    qf.pending().map(|(_, r)| r.address.clone()).collect(),
                    false,
                ),
                Err(_) => (false, Vec::new(), true),
            };
            out.push(Seen {
                id: e.id.as_str().to_owned(),
                queue: q,
                notice,
                pending,
                unreadable,
            });
        }
    }
    (out, temporaries)
}

/// The files of corrupt/ (names: a queue id, or `<id>_<n>`).
pub fn corrupt_files(queue_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![queue_dir.join("corrupt")];
    // Bounded: hashed subdirectories are at most 16 deep and finite.
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Files in a Maildir's `sub` (new, cur or tmp).
pub fn maildir_names(maildir: &Path, sub: &str) -> Vec<PathBuf> {
    std::fs::read_dir(maildir.join(sub))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// A message in the user's Maildir, traced back to its queue files.
#[derive(Debug, Clone, Default)]
pub struct Copy {
    pub path: PathBuf,
    /// The queue id in the first Received: header (Tern's own: `... id QID`).
    pub own_id: Option<String>,
    /// A bounce notice: the original's queue id (`X-Postfix-Queue-ID:` of the report).
    pub original: Option<String>,
    /// `X-Crash-Tag:` lines: the message's own header, or the returned original's in a
    /// notice.
    pub tags: Vec<String>,
}

impl Copy {
    /// What a duplicate is counted by: (is a notice, the original's queue id) for a
    /// notice, (not a notice, its queue id) for a delivered copy. A message to the user
    /// and to an unknown user has one of each.
    pub fn key(&self) -> Option<(bool, &str)> {
        match &self.original {
            Some(o) => Some((true, o.as_str())),
            None => self.own_id.as_deref().map(|id| (false, id)),
        }
    }
}

/// Reads one delivered file.
pub fn read_copy(path: &Path) -> Copy {
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let mut c = Copy {
        path: path.to_owned(),
        ..Copy::default()
    };
    // The header, unfolded (RFC 5322 2.2.3).
    let mut headers: Vec<String> = Vec::new();
    let mut body_at = text.len();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            body_at = at + line.len();
            break;
        }
        at += line.len();
        if l.starts_with([' ', '\t']) {
            if let Some(h) = headers.last_mut() {
                h.push(' ');
                h.push_str(l.trim());
            }
        } else {
            headers.push(l.to_owned());
        }
    }
    if let Some(rcvd) = headers
        .iter()
        .find(|h| h.to_ascii_lowercase().starts_with("received:"))
    {
        let words: Vec<&str> = rcvd.split_whitespace().collect();
        c.own_id = words
            .windows(2)
            .find(|w| w[0] == "id")
            .map(|w| w[1].trim_end_matches(';').to_owned());
    }
    let notice = headers.iter().any(|h| h == "Return-Path: <>");
    let scan = if notice { &text[..] } else { &text[..body_at] };
    for line in scan.lines() {
        if let Some(t) = line.strip_prefix("X-Crash-Tag: ") {
            c.tags.push(t.trim().to_owned());
        }
        if notice
            && c.original.is_none()
            && let Some((_, id)) = line.split_once("-Queue-ID: ")
        {
            c.original = Some(id.trim().to_owned());
        }
    }
    c
}

/// A line of the mail log that starts with a queue id: (id, the text after `ID: `).
pub fn id_line(line: &str) -> Option<(&str, &str)> {
    let (_, text) = line.split_once("]: ")?;
    let (id, rest) = text.split_once(": ")?;
    QueueId::parse(id).ok()?;
    Some((id, rest))
}

/// What the log says about queue ids: the ids qmgr took (`from=`), the notices bounce
/// made (`sender non-delivery notification: NEWID`), and the ids removed.
#[derive(Debug, Default)]
pub struct LogFacts {
    pub queued: BTreeSet<String>,
    pub removed: BTreeSet<String>,
    /// notice id -> original id.
    pub notices: BTreeMap<String, String>,
    /// Lines per queue id (for reports).
    pub lines: HashMap<String, Vec<String>>,
}

impl LogFacts {
    pub fn read(log: &str) -> LogFacts {
        let mut f = LogFacts::default();
        for line in log.lines() {
            let Some((id, rest)) = id_line(line) else {
                continue;
            };
            f.lines
                .entry(id.to_owned())
                .or_default()
                .push(line.to_owned());
            if rest.starts_with("from=<") {
                f.queued.insert(id.to_owned());
            } else if rest == "removed" {
                f.removed.insert(id.to_owned());
            } else if let Some((_, new)) = rest.split_once(" notification: ") {
                f.notices.insert(new.trim().to_owned(), id.to_owned());
                f.queued.insert(new.trim().to_owned());
                f.lines
                    .entry(new.trim().to_owned())
                    .or_default()
                    .push(line.to_owned());
            }
        }
        f
    }
}

/// Wall-clock time as `HH:MM:SS.mmm` (UTC), to set beside the log's lines.
pub fn clock() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let s = d.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_trace_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            (
                "Return-Path: <u@x>\nReceived: from a (b [127.0.0.1])\n\tby mx (Postfix) \
                 with ESMTP id 4Abc12; Mon\nX-Crash-Tag: t1\n\nX-Crash-Tag: body\n",
                Some("4Abc12"),
                None,
                vec!["t1"],
            ),
            (
                "Return-Path: <>\nReceived: by mx (Postfix)\n\tid 4Def34; Mon\n\n\
                 X-Postfix-Queue-ID: 4Abc12\nX-Crash-Tag: t2\n",
                Some("4Def34"),
                Some("4Abc12"),
                vec!["t2"],
            ),
        ];
        for (i, (text, own, orig, tags)) in cases.into_iter().enumerate() {
            let p = dir.path().join(i.to_string());
            std::fs::write(&p, text).expect("write");
            let c = read_copy(&p);
            assert_eq!(c.own_id.as_deref(), own, "{i}");
            assert_eq!(c.original.as_deref(), orig, "{i}");
            assert_eq!(c.tags, tags, "{i}");
        }
    }
}
