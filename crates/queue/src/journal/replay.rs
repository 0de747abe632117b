//! Replay of live journal segments at start-up, before anything else touches the queue.
//!
//! A live segment means the daemon stopped (crashed, was killed, lost power) before the
//! files its records cover were known to be on disk. Each record is a queue file that a
//! client was told was accepted, or one of a batch whose sync never returned (that client
//! was told nothing and will send again: replaying it gives at most a duplicate). For
//! each record, the queue file must exist in some message queue and begin with the
//! recorded bytes (status records may have been appended after them); a file that is
//! missing is written back where cleanup put it, and one that is shorter or different
//! (its data never reached the disk) is rewritten in place, except for the messages
//! noted as removed (super::removed: delivered before the crash). Then one syncfs puts
//! every file on disk, and the segments and notes are deleted.
//!
//! Security: segment contents are checked record by record (magic, length, CRC, the
//! segment's sequence, a valid queue id) before any byte is used; a record's id becomes
//! a path only through the queue layout, so it cannot name a file outside the queue.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{SEGMENT_SIZE, journal_dir, parse_records, syncfs};
use crate::Error;
use crate::commit::sync_dir;
use crate::id::QueueId;
use crate::layout::{QueueLayout, QueueName, make_hash_dirs};

/// What replay did, for the caller to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayEvent {
    /// The queue file was missing and was written from the journal.
    Restored { id: String, path: PathBuf },
    /// The queue file did not hold the recorded bytes and was rewritten.
    Repaired { id: String, path: PathBuf },
    /// A segment whose header does not check out (cut while it was being made, before
    /// it could hold a record) was removed.
    BadSegment { path: PathBuf },
    /// The segments replayed, and their records.
    Replayed { segments: usize, records: usize },
}

/// Replays and removes every live segment of `layout`'s journal.
pub fn replay(layout: &QueueLayout) -> Result<Vec<ReplayEvent>, Error> {
    let dir = journal_dir(layout);
    let mut names: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.len() == 16 && n.bytes().all(|b| b.is_ascii_hexdigit())
            })
            .map(|e| e.path())
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("open directory", &dir, e)),
    };
    if names.is_empty() {
        // Notes outlive their segments only by a crash between the two deletions.
        super::removed::delete_before(&dir, u64::MAX);
        return Ok(Vec::new());
    }
    names.sort();
    // Messages removed after their records were written (module removed): not brought
    // back.
    let (removed, notes) = super::removed::read_all(&dir);
    let mut events = Vec::new();
    let mut records = 0;
    let mut seq_no = 0u64;
    for path in &names {
        let mut data = Vec::new();
        File::open(path)
            .and_then(|f| f.take(SEGMENT_SIZE).read_to_end(&mut data))
            .map_err(|e| Error::io("read", path, e))?;
        let Some((_, recs)) = parse_records(&data) else {
            events.push(ReplayEvent::BadSegment { path: path.clone() });
            continue;
        };
        for r in recs {
            records += 1;
            let Ok(id) = QueueId::parse(r.id) else {
                continue;
            };
            if removed.contains(r.id) {
                continue;
            }
            if let Some(ev) = restore(layout, r.queue, &id, r.content, &mut seq_no)? {
                events.push(ev);
            }
        }
    }
    // Files that read back whole may still be only in the page cache (the process died,
    // the machine did not): put everything on disk before the segments go.
    let root = File::open(layout.root()).map_err(|e| Error::io("open", layout.root(), e))?;
    syncfs(&root).map_err(|e| Error::io("syncfs", layout.root(), e))?;
    for path in &names {
        fs::remove_file(path).map_err(|e| Error::io("remove", path, e))?;
    }
    sync_dir(&dir)?;
    for path in &notes {
        let _ = fs::remove_file(path);
    }
    events.push(ReplayEvent::Replayed {
        segments: names.len(),
        records,
    });
    Ok(events)
}

/// Makes sure queue file `id` holds `content`; returns what was done, if anything.
fn restore(
    layout: &QueueLayout,
    queue: QueueName,
    id: &QueueId,
    content: &[u8],
    seq_no: &mut u64,
) -> Result<Option<ReplayEvent>, Error> {
    for q in QueueName::MESSAGE_QUEUES {
        let path = layout.path(q, id);
        match starts_with(&path, content) {
            Ok(true) => return Ok(None),
            Ok(false) => {
                rewrite(&path, content, seq_no)?;
                return Ok(Some(ReplayEvent::Repaired {
                    id: id.as_str().to_owned(),
                    path,
                }));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read", &path, e)),
        }
    }
    let path = layout.path(queue, id);
    rewrite(&path, content, seq_no)?;
    Ok(Some(ReplayEvent::Restored {
        id: id.as_str().to_owned(),
        path,
    }))
}

/// Whether the file at `path` begins with `content`.
fn starts_with(path: &Path, content: &[u8]) -> io::Result<bool> {
    let mut f = File::open(path)?;
    let mut buf = Vec::with_capacity(content.len());
    (&mut f).take(content.len() as u64).read_to_end(&mut buf)?;
    Ok(buf == content)
}

/// Writes `content` to `path` durably: a temporary name, fdatasync, rename, directory
/// fsync (this is the slow path; it runs only after a crash).
fn rewrite(path: &Path, content: &[u8], seq_no: &mut u64) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.is_dir() {
        make_hash_dirs(dir)?;
    }
    *seq_no += 1;
    // A temporary name of the writers' shape, which recovery removes if this is cut.
    let usec = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_micros());
    let temp = dir.join(format!("{usec}.{}.{}", std::process::id(), *seq_no));
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        f.write_all(content)?;
        // Postfix's mark of a complete queue file.
        f.set_permissions(fs::Permissions::from_mode(0o700))?;
        f.sync_data()?;
        fs::rename(&temp, path)
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&temp);
        return Err(Error::io("restore", path, e));
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Journal, SegmentId, encode_record, header};

    fn layout() -> (tempfile::TempDir, QueueLayout) {
        let t = tempfile::tempdir().unwrap();
        let l = QueueLayout::new(t.path().join("q"));
        l.create(None).unwrap();
        (t, l)
    }

    #[test]
    fn restores_missing_repairs_damaged_keeps_intact() {
        let (_t, l) = layout();
        let ids = ["4B3C2D1E0F", "4B3C2D1E11", "4B3C2D1E12", "4B3C2D1E13"];
        let sid = SegmentId { seq: 5, salt: 1 };
        let mut seg = header(sid).to_vec();
        for id in ids {
            encode_record(&mut seg, sid, QueueName::Incoming, id, id.as_bytes());
        }
        let dir = journal_dir(&l);
        fs::write(dir.join("0000000000000005"), &seg).unwrap();
        fs::write(dir.join("0000000000000006"), b"garbage").unwrap();
        let path = |q, id: &str| l.path(q, &QueueId::parse(id).unwrap());
        // ids[0]: missing. ids[1]: cut short. ids[2]: intact with a status appended.
        // ids[3]: moved to hold by postsuper, intact.
        fs::write(path(QueueName::Incoming, ids[1]), &ids[1].as_bytes()[..3]).unwrap();
        fs::write(
            path(QueueName::Incoming, ids[2]),
            format!("{}+status", ids[2]),
        )
        .unwrap();
        fs::write(path(QueueName::Hold, ids[3]), ids[3]).unwrap();
        let ev = replay(&l).unwrap();
        assert_eq!(
            ev,
            vec![
                ReplayEvent::Restored {
                    id: ids[0].into(),
                    path: path(QueueName::Incoming, ids[0])
                },
                ReplayEvent::Repaired {
                    id: ids[1].into(),
                    path: path(QueueName::Incoming, ids[1])
                },
                ReplayEvent::BadSegment {
                    path: dir.join("0000000000000006")
                },
                ReplayEvent::Replayed {
                    segments: 2,
                    records: 4
                },
            ]
        );
        for (q, id, want) in [
            (QueueName::Incoming, ids[0], ids[0].to_string()),
            (QueueName::Incoming, ids[1], ids[1].to_string()),
            (QueueName::Incoming, ids[2], format!("{}+status", ids[2])),
            (QueueName::Hold, ids[3], ids[3].to_string()),
        ] {
            assert_eq!(fs::read_to_string(path(q, id)).unwrap(), want);
        }
        assert!(!path(QueueName::Incoming, ids[3]).exists());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        // Nothing left: a second replay does nothing.
        assert!(replay(&l).unwrap().is_empty());
    }

    #[test]
    fn a_message_noted_as_removed_is_not_brought_back() {
        let (_t, l) = layout();
        let mut j = Journal::open(&l).unwrap();
        j.append(&[
            (QueueName::Incoming, "4B3C2D1E0F", b"delivered".as_slice()),
            (QueueName::Incoming, "4B3C2D1E11", b"waiting".as_slice()),
        ])
        .unwrap();
        // The queue manager delivered the first and removed its file; the second's
        // file never reached the disk.
        j.notes()
            .note(&QueueId::parse("4B3C2D1E0F").unwrap())
            .unwrap();
        std::mem::forget(j);
        let ev = replay(&l).unwrap();
        let restored: Vec<&str> = ev
            .iter()
            .filter_map(|e| match e {
                ReplayEvent::Restored { id, .. } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(restored, ["4B3C2D1E11"]);
        let p = |id| l.path(QueueName::Incoming, &QueueId::parse(id).unwrap());
        assert!(!p("4B3C2D1E0F").exists());
        // Notes go with their segments.
        assert_eq!(fs::read_dir(journal_dir(&l)).unwrap().count(), 0);
    }

    #[test]
    fn notes_are_deleted_once_their_segments_retire() {
        let (_t, l) = layout();
        let mut j = Journal::open(&l).unwrap();
        j.append(&[(QueueName::Incoming, "4B3C2D1E0F", b"x".as_slice())])
            .unwrap();
        j.notes()
            .note(&QueueId::parse("4B3C2D1E0F").unwrap())
            .unwrap();
        let notes = || {
            fs::read_dir(journal_dir(&l))
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("removed."))
                .count()
        };
        assert_eq!(notes(), 1);
        j.checkpoint();
        assert_eq!(notes(), 0, "the segment retired: its note is of no use");
        drop(j);
        assert_eq!(fs::read_dir(journal_dir(&l)).unwrap().count(), 0);
    }

    #[test]
    fn records_of_a_writer_that_died_are_replayed() {
        let (_t, l) = layout();
        let mut j = Journal::open(&l).unwrap();
        j.append(&[(QueueName::Incoming, "4B3C2D1E0F", b"queue file".as_slice())])
            .unwrap();
        // A crash: the journal is never checkpointed.
        std::mem::forget(j);
        let ev = replay(&l).unwrap();
        assert!(matches!(ev[0], ReplayEvent::Restored { .. }), "{ev:?}");
        let p = l.path(QueueName::Incoming, &QueueId::parse("4B3C2D1E0F").unwrap());
        assert_eq!(fs::read(p).unwrap(), b"queue file");
    }
}
