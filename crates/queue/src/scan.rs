//! Listing a queue, and recovery at start-up.
//!
//! [`scan`] walks a queue directory and its hashed subdirectories (at any depth, so that
//! files left by a different `hash_queue_depth` are still found) and sorts what it finds
//! into queue files, temporary files and names that are neither.
//!
//! [`recover`] runs before any writer starts (the daemon's start-up, `postsuper` without
//! arguments): it removes temporary files (messages never committed, whose clients got no
//! 250), moves files that do not read as complete queue files to `corrupt/`, and cuts off
//! torn status tails. Each action is returned as a [`RecoveryEvent`] for the caller to
//! log; nothing is dropped without one, and names it does not know are left in place and
//! reported.
//!
//! Security: directory entries are untrusted names; only names that parse as queue ids
//! are turned into queue paths, and symbolic links are not followed into subdirectories.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::file::{QueueFile, StatusLog, TornTail};
use crate::id::QueueId;
use crate::layout::{QueueLayout, QueueName, make_hash_dirs};
use crate::record::ReadError;

/// How deep [`scan`] looks for hashed subdirectories (Postfix allows hash_queue_depth
/// 1 to 16).
const MAX_DEPTH: usize = 16;

/// One queue file found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: QueueId,
    pub path: PathBuf,
}

/// What a queue holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QueueListing {
    /// Files named by a queue id, in name order.
    pub entries: Vec<QueueEntry>,
    /// Temporary files of writers (`<usec>.<pid>.<n>`).
    pub temporary: Vec<PathBuf>,
    /// Anything else: names that are neither, symbolic links, devices.
    pub unknown: Vec<PathBuf>,
}

/// Lists the files of queue `q`.
pub fn scan(layout: &QueueLayout, q: QueueName) -> Result<QueueListing, Error> {
    let mut out = QueueListing::default();
    walk(&layout.dir(q), 0, &mut out)?;
    out.entries.sort_by(|a, b| a.id.cmp(&b.id));
    out.temporary.sort();
    out.unknown.sort();
    Ok(out)
}

fn walk(dir: &Path, depth: usize, out: &mut QueueListing) -> Result<(), Error> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && depth == 0 => return Ok(()),
        Err(e) => return Err(Error::io("read directory", dir, e)),
    };
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let path = entry.path();
        let ft = entry.file_type().map_err(|e| Error::io("stat", &path, e))?;
        let name = entry.file_name();
        let name = name.to_str();
        if ft.is_dir() && depth < MAX_DEPTH {
            walk(&path, depth + 1, out)?;
        } else if !ft.is_file() {
            out.unknown.push(path);
        } else if let Some(id) = name.and_then(|n| QueueId::parse(n).ok()) {
            out.entries.push(QueueEntry { id, path });
        } else if name.is_some_and(is_temporary_name) {
            out.temporary.push(path);
        } else {
            out.unknown.push(path);
        }
    }
    Ok(())
}

/// `<digits>.<digits>` or `<digits>.<digits>.<digits>`: the temporary names of Tern's
/// writers (and of Postfix's, `<usec>.<pid>`).
pub fn is_temporary_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Something [`recover`] did or found.
#[derive(Debug)]
pub enum RecoveryEvent {
    /// A temporary file was removed: a message whose writer died before the commit.
    RemovedTemporary { path: PathBuf },
    /// A queue file that is not complete or not readable was moved to `corrupt/`.
    MovedToCorrupt {
        queue: QueueName,
        id: QueueId,
        to: PathBuf,
        reason: ReadError,
    },
    /// A torn status append was cut off; the recipients it named will be tried again.
    CutTornTail {
        queue: QueueName,
        id: QueueId,
        tail: TornTail,
    },
    /// A name that is neither a queue id nor a temporary file; left in place.
    Unknown { path: PathBuf },
}

/// Cleans the message queues `queues` (usually [`QueueName::MESSAGE_QUEUES`]) before
/// writers start. See the module documentation.
pub fn recover(layout: &QueueLayout, queues: &[QueueName]) -> Result<Vec<RecoveryEvent>, Error> {
    let mut events = Vec::new();
    for &q in queues {
        let listing = scan(layout, q)?;
        for path in listing.temporary {
            fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
            events.push(RecoveryEvent::RemovedTemporary { path });
        }
        for path in listing.unknown {
            events.push(RecoveryEvent::Unknown { path });
        }
        for e in listing.entries {
            match StatusLog::open(&e.path) {
                Ok((_, _, None)) => {}
                Ok((_, _, Some(tail))) => {
                    events.push(RecoveryEvent::CutTornTail {
                        queue: q,
                        id: e.id,
                        tail,
                    });
                }
                Err(Error::Read { source, .. }) => {
                    let to = move_to_corrupt(layout, &e)?;
                    events.push(RecoveryEvent::MovedToCorrupt {
                        queue: q,
                        id: e.id,
                        to,
                        reason: source,
                    });
                }
                Err(other) => return Err(other),
            }
        }
    }
    Ok(events)
}

/// Moves a queue file to `corrupt/` under its id, or `<id>_<n>` if that name is taken,
/// never replacing a file there.
pub fn move_to_corrupt(layout: &QueueLayout, e: &QueueEntry) -> Result<PathBuf, Error> {
    let dir = layout.dir(QueueName::Corrupt);
    if !dir.is_dir() {
        make_hash_dirs(&dir)?;
    }
    for n in 0..1000 {
        let name = if n == 0 {
            e.id.to_string()
        } else {
            format!("{}_{n}", e.id)
        };
        let to = dir.join(name);
        match fs::hard_link(&e.path, &to) {
            Ok(()) => {
                fs::remove_file(&e.path).map_err(|err| Error::io("remove", &e.path, err))?;
                crate::commit::sync_dir(&dir)?;
                return Ok(to);
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(Error::io("link", &to, err)),
        }
    }
    Err(Error::Exists {
        path: dir.join(e.id.as_str()),
    })
}

/// Moves a queue file from one queue to another under the same id (postsuper -h/-H,
/// recovery), making hashed subdirectories as needed. The rename is atomic; the target
/// directory is fsynced.
pub fn move_file(
    layout: &QueueLayout,
    id: &QueueId,
    from: QueueName,
    to: QueueName,
) -> Result<PathBuf, Error> {
    let dst = move_file_unsynced(layout, id, from, to)?;
    crate::commit::sync_dir(dst.parent().unwrap_or(Path::new(".")))?;
    Ok(dst)
}

/// [`move_file`] without the directory fsync: for the queue manager's moves (incoming
/// to active, active to deferred), as Postfix's qmgr makes them. After a system crash
/// the file is under one of its two names, and the queue manager scans both at start.
pub fn move_file_unsynced(
    layout: &QueueLayout,
    id: &QueueId,
    from: QueueName,
    to: QueueName,
) -> Result<PathBuf, Error> {
    let src = layout.path(from, id);
    let dst = layout.path(to, id);
    // The target's hash directory is made only when the rename says it is missing: the
    // queue manager moves every message this way, and a stat per move is wasted work.
    match fs::rename(&src, &dst) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match dst.parent().filter(|p| !p.is_dir()) {
                Some(parent) => {
                    make_hash_dirs(parent)?;
                    fs::rename(&src, &dst).map_err(|e| Error::io("rename", &src, e))?;
                }
                None => return Err(Error::io("rename", &src, e)),
            }
        }
        Err(e) => return Err(Error::io("rename", &src, e)),
        Ok(()) => {}
    }
    Ok(dst)
}

/// Reads the queue file of `entry`.
pub fn read_entry(entry: &QueueEntry) -> Result<QueueFile, Error> {
    QueueFile::open(&entry.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names() {
        let table = [
            ("123.456", true),
            ("824640.4242.7", true),
            ("C954098E5B8", false),
            ("1.2.3.4", false),
            ("12..3", false),
            (".123", false),
            ("a.1", false),
        ];
        for (name, want) in table {
            assert_eq!(is_temporary_name(name), want, "{name}");
        }
    }
}
