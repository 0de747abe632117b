//! Removal notes: the queue ids of messages removed while a journal segment may still
//! hold their records, so that replay after a crash does not bring them back.
//!
//! A segment stays live until a syncfs has put the files it covers on disk (about a
//! second under load). The queue manager does not wait for that before it moves or
//! removes a new file: replay finds a moved file in whatever queue it went to, but a
//! file that was delivered and removed would be written back from its record and
//! delivered again. So whoever removes a message file first appends its id to
//! `journal/removed.EPOCH` (one short write, no sync), and replay skips the records of
//! ids it finds there.
//!
//! Epochs: the commit thread starts a new epoch each time a segment with records stops
//! taking records (it is then "full" and waits to retire). A note is written under the
//! epoch read just before; its message's record was written before that, so it lies in
//! a segment that stops no later than the epoch's end. Once the segments that stopped
//! up to epoch E have retired, the notes of epochs below E+1 are of no use and are
//! deleted (after the segments, so a crash in between leaves notes without segments,
//! never segments without their notes). A writer that raced a deletion may make a note
//! file again; such a stale file only names removed messages, and the next retire or
//! the next replay deletes it.
//!
//! What this promises: after a crash of the daemon (the kernel keeps its writes), a
//! message removed before the crash is not restored. After a power loss a note may be
//! lost while the removal it announces reached the disk: a message removed within the
//! last second may then be delivered again, as Postfix may deliver again a message
//! whose queue file's removal was not yet on disk. Never a loss.
//!
//! Security: the files are mail_owner's, in the 0700 journal directory; replay reads at
//! most [`MAX_NOTES_BYTES`] of each and takes only lines that parse as queue ids.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::id::QueueId;

/// The most of one notes file replay reads (a note is one id and a newline; a second of
/// removals at any rate Tern reaches is far below this).
pub const MAX_NOTES_BYTES: u64 = 64 << 20;

const PREFIX: &str = "removed.";

/// The writers' side, shared by the journal (which moves the epoch) and the removers.
#[derive(Debug)]
pub struct RemovalNotes {
    dir: PathBuf,
    epoch: Arc<AtomicU64>,
    /// The note file of the epoch it was opened for.
    open: Mutex<Option<(u64, File)>>,
}

impl RemovalNotes {
    pub(crate) fn new(dir: PathBuf, epoch: Arc<AtomicU64>) -> Self {
        Self {
            dir,
            epoch,
            open: Mutex::new(None),
        }
    }

    /// Notes that the message `id` is being removed: call before removing its file.
    pub fn note(&self, id: &QueueId) -> io::Result<()> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let f = OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(self.dir.join(format!("{PREFIX}{epoch}")))?;
            *open = Some((epoch, f));
        }
        let Some((_, f)) = open.as_mut() else {
            return Ok(());
        };
        let mut line = Vec::with_capacity(id.as_str().len() + 1);
        line.extend_from_slice(id.as_str().as_bytes());
        line.push(b'\n');
        // One write of a short line to an O_APPEND file: notes never interleave.
        f.write_all(&line)
    }
}

/// Deletes the note files of epochs below `below`.
pub(crate) fn delete_before(dir: &Path, below: u64) {
    for (epoch, path) in note_files(dir) {
        if epoch < below {
            let _ = fs::remove_file(path);
        }
    }
}

/// Every note file in `dir`, with its epoch.
fn note_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let epoch = name.to_str()?.strip_prefix(PREFIX)?.parse().ok()?;
            Some((epoch, e.path()))
        })
        .collect()
}

/// The ids noted in `dir` (replay), and the files they came from.
pub(crate) fn read_all(dir: &Path) -> (HashSet<String>, Vec<PathBuf>) {
    let mut ids = HashSet::new();
    let mut paths = Vec::new();
    for (_, path) in note_files(dir) {
        let mut data = Vec::new();
        if File::open(&path)
            .and_then(|f| f.take(MAX_NOTES_BYTES).read_to_end(&mut data))
            .is_ok()
        {
            // Whole lines only: what follows the last newline is a note cut by the
            // crash (its removal had not begun: notes come first).
            let whole = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            for line in data[..whole].split(|&b| b == b'\n') {
                if let Ok(s) = std::str::from_utf8(line)
                    && QueueId::parse(s).is_ok()
                {
                    ids.insert(s.to_owned());
                }
            }
        }
        paths.push(path);
    }
    (ids, paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_by_epoch_read_back_and_delete() {
        let t = tempfile::tempdir().unwrap();
        let epoch = Arc::new(AtomicU64::new(5));
        let notes = RemovalNotes::new(t.path().to_owned(), Arc::clone(&epoch));
        notes.note(&QueueId::parse("4B3C2D1E0F").unwrap()).unwrap();
        epoch.store(6, Ordering::SeqCst);
        notes.note(&QueueId::parse("4B3C2D1E11").unwrap()).unwrap();
        // A torn or foreign line is ignored.
        fs::write(t.path().join("removed.7"), b"4B3C2D1E12\nnot an id\n4B3").unwrap();
        let (ids, paths) = read_all(t.path());
        let mut ids: Vec<_> = ids.into_iter().collect();
        ids.sort();
        assert_eq!(ids, ["4B3C2D1E0F", "4B3C2D1E11", "4B3C2D1E12"]);
        assert_eq!(paths.len(), 3);
        delete_before(t.path(), 7);
        let left: Vec<_> = note_files(t.path()).into_iter().map(|(e, _)| e).collect();
        assert_eq!(left, [7]);
    }
}
