//! Durable commit, group commit, scanning and recovery on a real file system, and the
//! fsync measurements (printed; run with `--nocapture` to see them).

// Test helpers outside #[test] functions: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tern_queue::file::encode_status;
use tern_queue::{
    Committer, DeliveryStatus, Envelope, IdForm, PendingFile, QueueFile, QueueLayout, QueueName,
    QueueWriter, Recipient, RecoveryEvent, StatusUpdate, Timestamp, recover, scan,
};

fn layout() -> (tempfile::TempDir, QueueLayout) {
    let t = tempfile::tempdir().unwrap();
    let l = QueueLayout::new(t.path().join("queue"));
    l.create(None).unwrap();
    (t, l)
}

fn envelope(n: usize) -> Envelope {
    Envelope {
        arrival: Timestamp::now(),
        sender: "a@b.example".into(),
        recipients: vec![Recipient::new(format!("user{n}@remote.example"))],
        ..Envelope::default()
    }
}

fn write_message(l: &QueueLayout, form: IdForm, n: usize) -> PendingFile {
    let p = PendingFile::create(l, QueueName::Incoming, form).unwrap();
    let mut w = QueueWriter::new(p, &envelope(n)).unwrap();
    w.content(format!("Subject: {n}\r\n\r\nbody\r\n").as_bytes())
        .unwrap();
    w.finish().unwrap()
}

#[test]
fn commit_names_the_file_by_its_inode() {
    let (_t, l) = layout();
    for (committed, form) in [IdForm::Short, IdForm::Long].into_iter().enumerate() {
        let p = write_message(&l, form, 1);
        // Made with O_TMPFILE: no name at all until the commit links it.
        assert!(p.temp_path().is_none());
        let names = fs::read_dir(l.dir(QueueName::Incoming)).unwrap().count();
        assert_eq!(names, committed);
        let id = p.commit().unwrap();
        assert_eq!(id.form(), form);
        let path = l.path(QueueName::Incoming, &id);
        let md = fs::metadata(&path).unwrap();
        assert_eq!(id.inode(), Some(md.ino()));
        // Postfix's mark of a complete queue file.
        assert_eq!(md.permissions().mode() & 0o777, 0o700);
        assert_eq!(md.nlink(), 1);
        let qf = QueueFile::open(&path).unwrap();
        assert_eq!(qf.envelope.recipients[0].address, "user1@remote.example");
    }
}

#[test]
fn uncommitted_files_vanish() {
    let (_t, l) = layout();
    let p = write_message(&l, IdForm::Short, 1);
    drop(p);
    let listing = scan(&l, QueueName::Incoming).unwrap();
    assert!(listing.entries.is_empty() && listing.temporary.is_empty());
}

#[test]
fn group_commit_from_many_threads() {
    let (_t, l) = layout();
    let c = Arc::new(Committer::start().unwrap());
    let l = Arc::new(l);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (c, l) = (Arc::clone(&c), Arc::clone(&l));
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| {
                        c.commit(write_message(&l, IdForm::Short, t * 100 + i))
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 80);
    let listing = scan(&l, QueueName::Incoming).unwrap();
    assert_eq!(listing.entries.len(), 80);
    assert!(listing.temporary.is_empty() && listing.unknown.is_empty());
    let s = c.stats();
    assert_eq!(s.files, 80);
    assert!(s.batches <= 80 && s.dir_syncs == s.batches);
}

/// The journaled path from many threads, both ways of asking (blocking `commit` and the
/// callback `submit`), a file too big for the journal among them: every file is whole
/// under its id, small ones went through the journal with no fsync of their own, and a
/// stop leaves the journal directory empty.
#[test]
fn journaled_commits_from_many_threads() {
    let (_t, l) = layout();
    let c = Arc::new(Committer::start_journaled(&l).unwrap());
    let l = Arc::new(l);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (c, l) = (Arc::clone(&c), Arc::clone(&l));
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| {
                        let p = write_message(&l, IdForm::Short, t * 100 + i);
                        assert!(c.journals(&p));
                        if i % 2 == 0 {
                            c.commit(p).unwrap()
                        } else {
                            let (tx, rx) = std::sync::mpsc::channel();
                            c.submit(
                                p,
                                Box::new(move |r| {
                                    tx.send(r).unwrap();
                                }),
                            );
                            rx.recv().unwrap().unwrap()
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    // One file over the journal's 1 MiB: synced on its own.
    let big = PendingFile::create(&l, QueueName::Incoming, IdForm::Short).unwrap();
    let mut w = QueueWriter::new(big, &envelope(999)).unwrap();
    w.content(&vec![b'x'; 1_200_000]).unwrap();
    let big = w.finish().unwrap();
    assert!(!c.journals(&big));
    let big_id = c.commit(big).unwrap();
    let mut ids: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    ids.push(big_id);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 81);
    for id in &ids {
        QueueFile::open(&l.path(QueueName::Incoming, id)).unwrap();
    }
    let s = c.stats();
    assert_eq!((s.files, s.journaled), (81, 80));
    drop(c);
    let journal = l.root().join("journal");
    assert_eq!(fs::read_dir(&journal).unwrap().count(), 0);
}

#[test]
fn hashed_queues_and_moves() {
    let t = tempfile::tempdir().unwrap();
    let l = QueueLayout::new(t.path().join("q")).with_hashing("incoming deferred", 2);
    l.create(None).unwrap();
    let id = write_message(&l, IdForm::Long, 1).commit().unwrap();
    let p = l.path(QueueName::Incoming, &id);
    assert!(p.exists(), "{}", p.display());
    assert_eq!(
        p.parent().unwrap().parent().unwrap(),
        l.dir(QueueName::Incoming).join(&id.hash_key()[..1])
    );
    let d = tern_queue::scan::move_file(&l, &id, QueueName::Incoming, QueueName::Deferred).unwrap();
    assert_eq!(d, l.path(QueueName::Deferred, &id));
    let listing = scan(&l, QueueName::Deferred).unwrap();
    assert_eq!(listing.entries.len(), 1);
    assert_eq!(listing.entries[0].id, id);
}

#[test]
fn recovery_removes_half_written_and_isolates_corrupt() {
    let (_t, l) = layout();
    let good = write_message(&l, IdForm::Short, 1).commit().unwrap();
    let torn = write_message(&l, IdForm::Short, 2).commit().unwrap();
    let broken = write_message(&l, IdForm::Short, 3).commit().unwrap();
    let cut = write_message(&l, IdForm::Short, 4).commit().unwrap();
    // A writer of the named kind (no O_TMPFILE) that died mid-file: its temporary file
    // stays behind.
    let half_path = l.dir(QueueName::Incoming).join("123456.789.1");
    fs::write(&half_path, b"\x89TQF\r\n\x1a\n").unwrap();
    // A torn status append.
    let torn_path = l.path(QueueName::Incoming, &torn);
    let rec = encode_status(&[StatusUpdate {
        recipient: 0,
        status: DeliveryStatus::Sent,
        time: 1,
        dsn: "2.0.0".into(),
        diagnostic: "ok".into(),
    }]);
    fs::OpenOptions::new()
        .append(true)
        .open(&torn_path)
        .unwrap()
        .write_all(&rec[..7])
        .unwrap();
    // A committed file damaged on disk, and one cut short.
    let broken_path = l.path(QueueName::Incoming, &broken);
    let mut b = fs::read(&broken_path).unwrap();
    b[20] ^= 0xff;
    fs::write(&broken_path, b).unwrap();
    let cut_path = l.path(QueueName::Incoming, &cut);
    let len = fs::metadata(&cut_path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&cut_path)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    // A name that is neither.
    let odd = l.dir(QueueName::Incoming).join("notes.txt");
    fs::write(&odd, "x").unwrap();

    let events = recover(&l, &QueueName::MESSAGE_QUEUES).unwrap();
    let mut seen = Vec::new();
    for e in &events {
        match e {
            RecoveryEvent::RemovedTemporary { path } => {
                assert_eq!(path, &half_path);
                seen.push("removed");
            }
            RecoveryEvent::MovedToCorrupt { id, to, .. } => {
                assert!(*id == broken || *id == cut, "{id}");
                assert!(to.starts_with(l.dir(QueueName::Corrupt)));
                assert!(to.exists());
                seen.push("corrupt");
            }
            RecoveryEvent::CutTornTail { id, .. } => {
                assert_eq!(*id, torn);
                seen.push("torn");
            }
            RecoveryEvent::Unknown { path } => {
                assert_eq!(path, &odd);
                seen.push("unknown");
            }
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, ["corrupt", "corrupt", "removed", "torn", "unknown"]);
    assert!(!half_path.exists());
    assert!(odd.exists(), "unknown names are left in place");
    let ids: Vec<_> = scan(&l, QueueName::Incoming)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.id)
        .collect();
    let mut want = vec![good, torn.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert!(QueueFile::open(&torn_path).unwrap().torn_tail.is_none());
    // A second run finds nothing more to do but the unknown name.
    let again = recover(&l, &QueueName::MESSAGE_QUEUES).unwrap();
    assert!(matches!(&again[..], [RecoveryEvent::Unknown { .. }]));
}

/// Commits as many messages as it can in a bounded time from `writers` threads, with or
/// without the group committer; returns (messages/s, fsyncs/s, directory fsyncs).
fn measure(writers: usize, grouped: bool) -> (f64, f64, u64) {
    let (_t, l) = layout();
    let l = Arc::new(l);
    let c = Arc::new(Committer::start().unwrap());
    let limit = Duration::from_millis(1500);
    let start = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|t| {
            let (c, l) = (Arc::clone(&c), Arc::clone(&l));
            std::thread::spawn(move || {
                let mut n = 0usize;
                while start.elapsed() < limit && n < 5000 {
                    let p = write_message(&l, IdForm::Short, t * 10_000 + n);
                    if grouped {
                        c.commit(p).unwrap()
                    } else {
                        p.commit().unwrap()
                    };
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let secs = start.elapsed().as_secs_f64();
    let s = c.stats();
    let (fsyncs, dir_syncs) = if grouped {
        (s.files + s.dir_syncs, s.dir_syncs)
    } else {
        // One file fsync and one directory fsync per message.
        (2 * total as u64, total as u64)
    };
    (total as f64 / secs, fsyncs as f64 / secs, dir_syncs)
}

#[test]
fn fsync_measurements() {
    println!(
        "fsync measurements (not assertions), {}:",
        std::env::temp_dir().display()
    );
    for (writers, grouped) in [(1, false), (1, true), (20, false), (20, true)] {
        let (msgs, fsyncs, dir_syncs) = measure(writers, grouped);
        println!(
            "  {writers:2} writer(s), {:<20} {msgs:8.0} messages/s {fsyncs:8.0} fsyncs/s {dir_syncs:6} directory fsyncs",
            if grouped {
                "group commit:"
            } else {
                "commit each alone:"
            }
        );
    }
}

/// A message put on HOLD while it was written in incoming/ is committed straight into
/// hold/ (cleanup_api.c), by the journaled committer too, under the id it already had.
#[test]
fn a_held_file_is_committed_into_hold() {
    let (_t, l) = layout();
    tern_queue::replay(&l).unwrap();
    let c = Committer::start_journaled(&l).unwrap();
    for journaled in [false, true] {
        let mut p = write_message(&l, IdForm::Short, 1);
        p.set_queue(&l, QueueName::Hold);
        assert_eq!(p.queue(), QueueName::Hold);
        let want = p.id().clone();
        // The journal takes incoming/ and maildrop/ files only.
        assert!(!c.journals(&p));
        let id = if journaled {
            c.commit(p).unwrap()
        } else {
            p.commit().unwrap()
        };
        assert_eq!(id, want);
        let path = l.path(QueueName::Hold, &id);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(!l.path(QueueName::Incoming, &id).exists());
        QueueFile::open(&path).unwrap();
    }
    assert_eq!(fs::read_dir(l.dir(QueueName::Incoming)).unwrap().count(), 0);
}
