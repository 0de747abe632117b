//! The queue manager's file moves: to `deferred/` with the time of the next attempt in
//! the file's modification time, out of a queue for good, and the time a deferred file
//! is due.
//!
//! Postfix keeps the time of a deferred message's next delivery attempt in its queue
//! file's modification time (qmgr_active.c, qmgr_active_defer: `utime()` to now plus the
//! backoff, then `rename()` into deferred/), and the deferred queue scan skips files
//! whose time lies more than a second in the future (qmgr_active_feed). Tern does the
//! same, so an administrator's `touch` and `postqueue -f` work as they do with Postfix.
//!
//! Trust: the queue directory is the system's own; the ids come from [`QueueId`], never
//! from a file's contents.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Error;
use crate::id::QueueId;
use crate::layout::{QueueLayout, QueueName};

/// Sets the modification (and access) time of `id` in `from` to `wake_at` (seconds since
/// the epoch), then moves it to `to` (usually `deferred/`, hashed as the layout says),
/// without a directory fsync (as Postfix's qmgr). Returns the new path.
pub fn defer_file(
    layout: &QueueLayout,
    id: &QueueId,
    from: QueueName,
    to: QueueName,
    wake_at: u64,
) -> Result<PathBuf, Error> {
    let src = layout.path(from, id);
    set_wake_time(&src, wake_at)?;
    crate::scan::move_file_unsynced(layout, id, from, to)
}

/// Sets the modification time of `path` to `wake_at` (seconds since the epoch).
pub fn set_wake_time(path: &Path, wake_at: u64) -> Result<(), Error> {
    let t = UNIX_EPOCH + Duration::from_secs(wake_at);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .map_err(|e| Error::io("update time stamps of", path, e))
}

/// The time a queue file is due (its modification time, seconds since the epoch; 0 for a
/// time before the epoch).
pub fn wake_time(path: &Path) -> Result<u64, Error> {
    let md = fs::metadata(path).map_err(|e| Error::io("stat", path, e))?;
    let m = md.modified().map_err(|e| Error::io("stat", path, e))?;
    Ok(m.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()))
}

/// Removes `id` from queue `q` (a message whose recipients are all done). As Postfix's
/// mail_queue_remove, without a directory sync: a file that comes back after a crash has
/// only final recipients and is removed again at the next pass. A file already gone is
/// not an error (returns `false`).
pub fn remove_file(layout: &QueueLayout, id: &QueueId, q: QueueName) -> Result<bool, Error> {
    let p = layout.path(q, id);
    match fs::remove_file(&p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("remove", &p, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defer_sets_time_and_hashes() {
        let t = tempfile::tempdir().unwrap();
        let layout = QueueLayout::new(t.path());
        layout.create(None).unwrap();
        let id = QueueId::parse("C954098E5B8").unwrap();
        fs::write(layout.path(QueueName::Active, &id), b"x").unwrap();
        let to = defer_file(
            &layout,
            &id,
            QueueName::Active,
            QueueName::Deferred,
            1_900_000_000,
        )
        .unwrap();
        assert_eq!(to, t.path().join("deferred/C/C954098E5B8"));
        assert_eq!(wake_time(&to).unwrap(), 1_900_000_000);
        assert!(remove_file(&layout, &id, QueueName::Deferred).unwrap());
        assert!(!remove_file(&layout, &id, QueueName::Deferred).unwrap());
    }
}
