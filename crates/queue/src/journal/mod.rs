//! The commit journal: many new queue files made durable by one fdatasync.
//!
//! A queue file that cleanup has just written is small (most mail is a few KiB). Making it
//! durable on its own costs an fdatasync of a new file, which on ext4 and most journaling
//! file systems forces a journal commit (the file's blocks and size are new metadata),
//! plus an fsync of the directory that names it. The journal replaces both for small
//! files: the whole queue file is appended, with its queue id, to a *segment*, a file of
//! fixed size whose blocks were written (zeros) and synced when it was made. Overwriting
//! blocks that exist changes no metadata that fdatasync must write, so a sync of a
//! segment is a data flush only; and one sync covers every record of a batch, however
//! many sessions committed at once (docs/queue-format.md, "The commit journal", has the
//! measurements).
//!
//! The queue file itself is still written and linked under its id, without a sync: the
//! kernel writes it back in its own time. A segment therefore stays *live* until every
//! file it covers is known to be on disk: the checkpoint thread then calls `syncfs` on the
//! queue file system (one call for all of them), deletes the segment and fsyncs the
//! journal directory. A segment is retired when it is full, when it has held records for
//! [`CHECKPOINT_AFTER`], or on [`crate::Committer::checkpoint`] (at shutdown). Files may be
//! moved to other queues while their segment is live (replay finds them there); a
//! message removed meanwhile is named in a removal note first (module `removed`), so
//! that replay does not bring it back.
//!
//! After a crash, [`replay`] runs before anything else touches the queue: for each record
//! of each live segment it makes sure the queue file exists and starts with the recorded
//! bytes (status records may have been appended since), rewriting it from the record when
//! it is missing or damaged; then the segments are retired as above.
//!
//! Files larger than [`MAX_RECORD`] are not journaled: they are synced on their own
//! (fdatasync, link, directory fsync), and so is everything while the journal cannot make
//! a segment (a full disk): the journal is a fast path, never the only path.
//!
//! Segment format (all integers little-endian):
//!
//! ```text
//! header  "TERNJRN\n" | u32 version (1) | u32 reserved | u64 segment sequence | u64 salt
//! record  "TJR1" | u32 payload length | u32 CRC-32 of salt and payload | payload
//! payload u64 segment sequence | u8 queue (0 incoming, 1 maildrop) | u8 id length | id
//!         | the queue file's bytes
//! ```
//!
//! The rest of a segment is zeros, or old records of the segment's previous use (a retired
//! segment is recycled: a new header makes its records stale). Reading stops at the first
//! record whose magic, length, checksum or sequence is wrong (a batch cut by a crash: none
//! of its writers was told the message was accepted; or the stale rest). The salt is
//! random for each use of a segment and seeds every record's checksum, so that message
//! content, which a client chooses and which lies in the stale rest, can never pass for a
//! record.
//!
//! Security: segments live in `$queue_directory/journal`, mode 0700, owned by mail_owner,
//! like the queues. Replay trusts their contents no more than a queue file's: lengths are
//! bounded by the segment size, ids must parse as queue ids, and a record that does not
//! check out ends the segment.

mod removed;
mod replay;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use removed::RemovalNotes;
pub use replay::{ReplayEvent, replay};

use crate::Error;
use crate::layout::{QueueLayout, QueueName};
use crate::record::crc32_update;

/// The size of a segment file.
pub const SEGMENT_SIZE: u64 = 8 << 20;
/// The largest queue file that is journaled; larger ones are synced on their own.
pub const MAX_RECORD: usize = 1 << 20;
/// How long a segment with records may stay live before it is retired.
pub const CHECKPOINT_AFTER: Duration = Duration::from_secs(1);

/// How long the journal waits after failing to make a segment before it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

const HEADER_MAGIC: &[u8; 8] = b"TERNJRN\n";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 32;
const RECORD_MAGIC: &[u8; 4] = b"TJR1";
const RECORD_HEAD: usize = 12;

/// The journal directory under `queue_directory`.
pub fn journal_dir(layout: &QueueLayout) -> PathBuf {
    layout.dir(QueueName::Journal)
}

/// The file name of segment `seq`: 16 hex digits, so that name order is sequence order.
fn segment_name(seq: u64) -> String {
    format!("{seq:016x}")
}

/// A record's queue byte.
fn queue_code(q: QueueName) -> Option<u8> {
    match q {
        QueueName::Incoming => Some(0),
        QueueName::Maildrop => Some(1),
        _ => None,
    }
}

fn queue_of(code: u8) -> Option<QueueName> {
    match code {
        0 => Some(QueueName::Incoming),
        1 => Some(QueueName::Maildrop),
        _ => None,
    }
}

/// Appends one record for queue file `content` named `id` in queue `q` to `out`.
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    seg: SegmentId,
    q: QueueName,
    id: &str,
    content: &[u8],
) {
    let Some(code) = queue_code(q) else {
        return;
    };
    // The payload is written in place after a head whose length and CRC are filled in
    // after it: the message bytes are copied once, into the batch's buffer.
    let id = &id.as_bytes()[..id.len().min(255)];
    out.reserve(RECORD_HEAD + 10 + id.len() + content.len());
    out.extend_from_slice(RECORD_MAGIC);
    let head = out.len();
    out.extend_from_slice(&[0; 8]);
    let start = out.len();
    out.extend_from_slice(&seg.seq.to_le_bytes());
    out.push(code);
    // Queue ids are at most 255 bytes (mail_queue_id_ok): the cut above never cuts.
    out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(id);
    out.extend_from_slice(content);
    // Payloads are bounded by MAX_RECORD plus a few bytes, far below u32::MAX.
    let len = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    let crc = seg.crc(&out[start..]);
    out[head..head + 4].copy_from_slice(&len.to_le_bytes());
    out[head + 4..head + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The size of the record [`encode_record`] makes.
pub(crate) fn record_len(id: &str, content: &[u8]) -> u64 {
    (RECORD_HEAD + 10 + id.len() + content.len()) as u64
}

/// One record read back from a segment.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub queue: QueueName,
    pub id: &'a str,
    pub content: &'a [u8],
}

/// Which use of which segment a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentId {
    pub seq: u64,
    pub salt: u64,
}

impl SegmentId {
    fn new(seq: u64) -> Self {
        use std::hash::{BuildHasher, Hasher};
        // RandomState's keys come from the operating system's random source.
        let salt = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Self { seq, salt }
    }

    /// A record's checksum: CRC-32 of the salt, then the payload.
    fn crc(self, payload: &[u8]) -> u32 {
        crc32_update(crc32_update(!0, &self.salt.to_le_bytes()), payload) ^ !0
    }
}

/// Reads the segment header.
fn parse_header(data: &[u8]) -> Option<SegmentId> {
    let h = data.get(..32)?;
    if &h[..8] != HEADER_MAGIC || u32::from_le_bytes(h[8..12].try_into().ok()?) != VERSION {
        return None;
    }
    Some(SegmentId {
        seq: u64::from_le_bytes(h[16..24].try_into().ok()?),
        salt: u64::from_le_bytes(h[24..32].try_into().ok()?),
    })
}

/// The records of a whole segment, up to the first one that does not check out (public
/// for the fuzz target `journal`: this reads what a crash left on disk).
pub fn parse_records(data: &[u8]) -> Option<(u64, Vec<Record<'_>>)> {
    let seg = parse_header(data)?;
    let mut out = Vec::new();
    let mut at = 32usize;
    while let Some(head) = data.get(at..at + RECORD_HEAD) {
        if &head[..4] != RECORD_MAGIC {
            break;
        }
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let crc = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        let Some(payload) = data.get(at + RECORD_HEAD..at + RECORD_HEAD + len) else {
            break;
        };
        if len < 10 || seg.crc(payload) != crc {
            break;
        }
        let rseq = u64::from_le_bytes(payload[..8].try_into().ok()?);
        let Some(queue) = queue_of(payload[8]) else {
            break;
        };
        let id_len = payload[9] as usize;
        let Some(id) = payload
            .get(10..10 + id_len)
            .and_then(|b| std::str::from_utf8(b).ok())
        else {
            break;
        };
        if rseq != seg.seq || crate::id::QueueId::parse(id).is_err() {
            break;
        }
        out.push(Record {
            queue,
            id,
            content: &payload[10 + id_len..],
        });
        at += RECORD_HEAD + len;
    }
    Some((seg.seq, out))
}

/// The 32-byte header of a segment.
pub(crate) fn header(seg: SegmentId) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(HEADER_MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&seg.seq.to_le_bytes());
    h[24..32].copy_from_slice(&seg.salt.to_le_bytes());
    h
}

/// A segment ready to take records.
struct Spare {
    file: File,
    path: PathBuf,
    id: SegmentId,
}

/// Makes segment `seq`: header, zeros to [`SEGMENT_SIZE`], synced, its name synced.
fn make_segment(dir: &Path, seq: u64) -> Result<Spare, Error> {
    let id = SegmentId::new(seq);
    let path = dir.join(segment_name(seq));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io("create", &path, e))?;
    let fill = || -> io::Result<()> {
        let mut w = io::BufWriter::with_capacity(1 << 20, &file);
        w.write_all(&header(id))?;
        let zeros = vec![0u8; 1 << 20];
        let mut left = SEGMENT_SIZE - HEADER_LEN;
        while left > 0 {
            // left is at most SEGMENT_SIZE, and the slice is cut to it.
            let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
            w.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        w.flush()?;
        drop(w);
        file.sync_all()
    };
    if let Err(e) = fill() {
        let _ = fs::remove_file(&path);
        return Err(Error::io("write", &path, e));
    }
    crate::commit::sync_dir(dir)?;
    Ok(Spare { file, path, id })
}

/// Makes a retired segment new as segment `seq`: a new header, synced before anything
/// else, invalidates every old record (their sequence is no longer the segment's), and
/// the blocks stay allocated, so no zeros need writing. Then the new name.
fn recycle(dir: &Path, path: &Path, seq: u64) -> io::Result<Spare> {
    let id = SegmentId::new(seq);
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    file.write_all_at(&header(id), 0)?;
    file.sync_data()?;
    let new_path = dir.join(segment_name(seq));
    fs::rename(path, &new_path)?;
    Ok(Spare {
        file,
        path: new_path,
        id,
    })
}

/// The segment being appended to.
struct Segment {
    file: File,
    path: PathBuf,
    id: SegmentId,
    used: u64,
    /// When its first record was written; `None` while it has none.
    first: Option<Instant>,
}

/// Work for the checkpoint thread.
enum Work {
    /// syncfs, then recycle (or delete) these segments, then delete the removal notes
    /// of epochs below the number given (module removed).
    Retire(Vec<PathBuf>, u64),
    /// Answer when everything sent before is done.
    Barrier(mpsc::SyncSender<()>),
}

/// State shared by the journal's threads.
struct Shared {
    dir: PathBuf,
    /// The next segment sequence; sequences only grow, across restarts too (they start
    /// from the clock).
    next_seq: AtomicU64,
    /// Spares made and not yet taken.
    pooled: AtomicUsize,
    /// A fresh segment has been asked of the maker thread and not yet sent: set by the
    /// journal when it asks, cleared by the maker just before it sends. (A flag of the
    /// journal's own, cleared only when it received "the" fresh spare, stayed set when
    /// that spare was taken among recycled ones, and the next wait for a spare waited
    /// for a segment nobody had been asked for: the commit thread hung.)
    asked: AtomicBool,
    /// The removal notes' epoch: moved on each time a segment with records stops
    /// taking records (module removed).
    epoch: Arc<AtomicU64>,
}

impl Shared {
    fn seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }
}

/// The writer side, owned by the commit thread.
pub(crate) struct Journal {
    shared: Arc<Shared>,
    current: Option<Segment>,
    /// Segments with synced records, to retire with the next checkpoint.
    full: Vec<PathBuf>,
    work: Option<mpsc::Sender<Work>>,
    /// Asks the maker thread for a fresh segment.
    make: Option<mpsc::Sender<()>>,
    spares: mpsc::Receiver<Result<Spare, Error>>,
    /// A fresh spare has been asked for and not received yet.
    /// After a segment could not be made (a full disk): no new try before this.
    retry_at: Option<Instant>,
    threads: Vec<thread::JoinHandle<()>>,
    notes: Arc<RemovalNotes>,
}

/// Spares kept ready; a retired segment beyond these is deleted, not recycled.
const POOL: usize = 2;

impl Journal {
    /// Opens the journal of `layout` (after [`replay`] has emptied it) and starts its
    /// threads: one makes fresh segments, one retires full ones.
    pub(crate) fn open(layout: &QueueLayout) -> Result<Self, Error> {
        let dir = journal_dir(layout);
        let root = File::open(layout.root()).map_err(|e| Error::io("open", layout.root(), e))?;
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            next_seq: AtomicU64::new(start),
            pooled: AtomicUsize::new(0),
            asked: AtomicBool::new(false),
            epoch: Arc::new(AtomicU64::new(0)),
        });
        let notes = Arc::new(RemovalNotes::new(dir.clone(), Arc::clone(&shared.epoch)));
        let (work_tx, work_rx) = mpsc::channel::<Work>();
        let (make_tx, make_rx) = mpsc::channel::<()>();
        let (spare_tx, spare_rx) = mpsc::channel();
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| Error::io("start journal thread", &dir, e))
        };
        let (sh, tx) = (Arc::clone(&shared), spare_tx.clone());
        let maker = spawn(
            "queue-journal-make",
            Box::new(move || {
                while make_rx.recv().is_ok() {
                    let made = make_segment(&sh.dir, sh.seq());
                    if made.is_ok() {
                        sh.pooled.fetch_add(1, Ordering::Relaxed);
                    }
                    sh.asked.store(false, Ordering::SeqCst);
                    if tx.send(made).is_err() {
                        break;
                    }
                }
            }),
        )?;
        let sh = Arc::clone(&shared);
        let checkpointer = spawn(
            "queue-journal-sync",
            Box::new(move || checkpoint_thread(&sh, &root, &work_rx, &spare_tx)),
        )?;
        let mut j = Self {
            shared,
            current: None,
            full: Vec::new(),
            work: Some(work_tx),
            make: Some(make_tx),
            spares: spare_rx,
            retry_at: None,
            threads: vec![maker, checkpointer],
            notes,
        };
        j.ask_spare();
        Ok(j)
    }

    fn ask_spare(&mut self) {
        if !self.shared.asked.swap(true, Ordering::SeqCst)
            && self.make.as_ref().is_none_or(|m| m.send(()).is_err())
        {
            self.shared.asked.store(false, Ordering::SeqCst);
        }
    }

    /// Takes a spare: one waiting, else the fresh one asked for (waiting for it).
    fn take_spare(&mut self) -> Option<Spare> {
        let got = if let Ok(r) = self.spares.try_recv() {
            r
        } else {
            // Asked now unless a fresh one is on its way: the wait always ends.
            self.ask_spare();
            self.spares.recv().ok()?
        };
        if let Ok(s) = got {
            self.shared.pooled.fetch_sub(1, Ordering::Relaxed);
            Some(s)
        } else {
            None
        }
    }

    /// A segment to write `need` bytes into: the current one if it has room, else a
    /// spare. `None` when no segment can be had.
    fn segment_for(&mut self, need: u64) -> Option<&mut Segment> {
        let fits = self
            .current
            .as_ref()
            .is_some_and(|s| s.used + need <= SEGMENT_SIZE);
        if !fits {
            if let Some(old) = self.current.take() {
                if old.first.is_some() {
                    self.stop(old);
                } else {
                    // Never written: it stays a spare.
                    self.current = Some(old);
                }
            }
            if self.current.is_none() {
                if self.retry_at.is_some_and(|t| Instant::now() < t) {
                    return None;
                }
                let Some(sp) = self.take_spare() else {
                    self.retry_at = Some(Instant::now() + RETRY_AFTER);
                    return None;
                };
                self.current = Some(Segment {
                    file: sp.file,
                    path: sp.path,
                    id: sp.id,
                    used: HEADER_LEN,
                    first: None,
                });
                // The next one is made while this one fills, unless one is waiting.
                if self.shared.pooled.load(Ordering::Relaxed) == 0 {
                    self.ask_spare();
                }
            }
        }
        self.current
            .as_mut()
            .filter(|s| s.used + need <= SEGMENT_SIZE)
    }

    /// Makes `files` (queue, id, bytes) durable: appends their records and syncs, one
    /// write and one fdatasync per segment touched. On error nothing may be assumed
    /// durable.
    pub(crate) fn append(&mut self, files: &[(QueueName, &str, &[u8])]) -> Result<(), Error> {
        let mut i = 0;
        while i < files.len() {
            let first_len = record_len(files[i].1, files[i].2);
            let dir = self.shared.dir.clone();
            let Some(seg) = self.segment_for(first_len) else {
                return Err(Error::io(
                    "make segment in",
                    &dir,
                    io::Error::other("no journal segment"),
                ));
            };
            let mut buf = Vec::new();
            let mut end = seg.used;
            while i < files.len() {
                let (q, id, content) = files[i];
                let n = record_len(id, content);
                if end + n > SEGMENT_SIZE {
                    break;
                }
                encode_record(&mut buf, seg.id, q, id, content);
                end += n;
                i += 1;
            }
            seg.file
                .write_all_at(&buf, seg.used)
                .and_then(|()| seg.file.sync_data())
                .map_err(|e| Error::io("write", &seg.path, e))?;
            seg.used = end;
            seg.first.get_or_insert_with(Instant::now);
        }
        Ok(())
    }

    /// Retires the current segment when it has held records for [`CHECKPOINT_AFTER`].
    pub(crate) fn tick(&mut self) {
        if self
            .current
            .as_ref()
            .and_then(|s| s.first)
            .is_some_and(|t| t.elapsed() >= CHECKPOINT_AFTER)
        {
            self.rotate();
        }
        self.retire();
    }

    fn retire(&mut self) {
        if !self.full.is_empty()
            && let Some(w) = &self.work
        {
            let epoch = self.shared.epoch.load(Ordering::SeqCst);
            let _ = w.send(Work::Retire(std::mem::take(&mut self.full), epoch));
        }
    }

    /// Ends the current segment if it has records.
    fn rotate(&mut self) {
        if self.current.as_ref().is_some_and(|s| s.first.is_some())
            && let Some(s) = self.current.take()
        {
            self.stop(s);
        }
    }

    /// A segment with records takes no more: it waits to retire, and a new epoch of
    /// removal notes begins (module removed).
    fn stop(&mut self, seg: Segment) {
        self.full.push(seg.path);
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Where removers note the ids of messages they remove (module removed).
    pub(crate) fn notes(&self) -> Arc<RemovalNotes> {
        Arc::clone(&self.notes)
    }

    /// Retires every segment with records and waits until that is done.
    pub(crate) fn checkpoint(&mut self) {
        self.rotate();
        self.retire();
        let (tx, rx) = mpsc::sync_channel(1);
        if self
            .work
            .as_ref()
            .is_some_and(|w| w.send(Work::Barrier(tx)).is_ok())
        {
            let _ = rx.recv();
        }
    }

    /// How long the commit thread may wait for work before [`Journal::tick`] is due.
    pub(crate) fn wait_hint(&self) -> Duration {
        match self.current.as_ref().and_then(|s| s.first) {
            Some(t) => CHECKPOINT_AFTER.saturating_sub(t.elapsed()),
            None => Duration::from_hours(1),
        }
    }
}

impl Drop for Journal {
    /// A clean stop leaves no segment behind: the ones with records are retired, then
    /// every spare is removed.
    fn drop(&mut self) {
        self.checkpoint();
        // Closing the channels ends both threads.
        self.work = None;
        self.make = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(s) = self.current.take() {
            let _ = fs::remove_file(&s.path);
        }
        while let Ok(r) = self.spares.try_recv() {
            if let Ok(s) = r {
                let _ = fs::remove_file(s.path);
            }
        }
        let _ = crate::commit::sync_dir(&self.shared.dir);
        // Every segment is gone: no note is of use any more.
        removed::delete_before(&self.shared.dir, u64::MAX);
    }
}

/// Flushes everything of the queue's file system to disk.
fn syncfs(root: &File) -> io::Result<()> {
    nix::unistd::syncfs(root.as_raw_fd()).map_err(io::Error::from)
}

fn checkpoint_thread(
    shared: &Shared,
    root: &File,
    work: &mpsc::Receiver<Work>,
    spares: &mpsc::Sender<Result<Spare, Error>>,
) {
    while let Ok(w) = work.recv() {
        match w {
            Work::Retire(paths, epoch) => {
                // Every file that a record of these segments covers was written (and
                // linked) before its record: one syncfs puts them all on disk. If it
                // fails, the segments stay and are replayed at the next start.
                if paths.is_empty() || syncfs(root).is_err() {
                    continue;
                }
                for p in &paths {
                    let keep = shared.pooled.load(Ordering::Relaxed) < POOL;
                    match keep.then(|| recycle(&shared.dir, p, shared.seq())) {
                        Some(Ok(sp)) => {
                            shared.pooled.fetch_add(1, Ordering::Relaxed);
                            if spares.send(Ok(sp)).is_err() {
                                return;
                            }
                        }
                        _ => {
                            let _ = fs::remove_file(p);
                        }
                    }
                }
                let _ = crate::commit::sync_dir(&shared.dir);
                removed::delete_before(&shared.dir, epoch);
            }
            Work::Barrier(tx) => {
                let _ = tx.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_stop_at_damage() {
        let id = SegmentId { seq: 7, salt: 99 };
        let mut seg = header(id).to_vec();
        encode_record(&mut seg, id, QueueName::Incoming, "4B3C2D1E0F", b"abc");
        encode_record(&mut seg, id, QueueName::Maildrop, "4B3C2D1E11", b"");
        let good = seg.len();
        encode_record(&mut seg, id, QueueName::Incoming, "4B3C2D1E12", b"xyz");
        seg.extend_from_slice(&[0u8; 64]);
        let (seq, recs) = parse_records(&seg).unwrap();
        assert_eq!(seq, 7);
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].id, "4B3C2D1E0F");
        assert_eq!(recs[0].content, b"abc");
        assert_eq!(recs[1].queue, QueueName::Maildrop);
        // Damage in the third record: the first two stand, the third is gone.
        let mut bad = seg.clone();
        bad[good + RECORD_HEAD + 12] ^= 1;
        assert_eq!(parse_records(&bad).unwrap().1.len(), 2);
        // Records of another use of the segment (stale bytes after a recycle) end it,
        // whether the sequence or only the salt differs.
        for other in [
            SegmentId { seq: 8, salt: 99 },
            SegmentId { seq: 7, salt: 98 },
        ] {
            let mut s2 = header(id).to_vec();
            encode_record(&mut s2, other, QueueName::Incoming, "4B3C2D1E0F", b"abc");
            assert!(parse_records(&s2).unwrap().1.is_empty());
        }
        // Every prefix parses without panic to a prefix of the records.
        for n in 0..seg.len() {
            let got = parse_records(&seg[..n]).map_or(0, |(_, r)| r.len());
            assert!(got <= 3);
        }
        assert!(parse_records(b"TERNJRN\n").is_none());
    }

    #[test]
    fn append_syncs_and_checkpoint_retires() {
        let t = tempfile::tempdir().unwrap();
        let l = QueueLayout::new(t.path().join("q"));
        l.create(None).unwrap();
        let mut j = Journal::open(&l).unwrap();
        j.append(&[(QueueName::Incoming, "4B3C2D1E0F", b"abc".as_slice())])
            .unwrap();
        let live: Vec<_> = fs::read_dir(journal_dir(&l)).unwrap().collect();
        assert!(!live.is_empty());
        j.checkpoint();
        drop(j);
        let left: Vec<_> = fs::read_dir(journal_dir(&l)).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// Segment after segment with nothing retired in between (a burst faster than the
    /// checkpoints): every wait for a spare must end. The maker thread's spare, once
    /// taken from the channel without a wait, used to leave the request flag set, and the
    /// third segment waited forever for a spare nobody had been asked to make.
    #[test]
    fn many_segments_without_a_checkpoint_never_wait_forever() {
        let t = tempfile::tempdir().unwrap();
        let l = QueueLayout::new(t.path().join("q"));
        l.create(None).unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let layout = l.clone();
        std::thread::spawn(move || {
            let mut j = Journal::open(&layout).unwrap();
            let content = vec![b'x'; MAX_RECORD - 64];
            for i in 0..40 {
                // Give the maker time to have its spare waiting, as under steady load.
                std::thread::sleep(std::time::Duration::from_millis(20));
                let id = format!("4B3C2D1E{i:02X}");
                j.append(&[(QueueName::Incoming, id.as_str(), content.as_slice())])
                    .unwrap();
            }
            done_tx.send(()).unwrap();
        });
        assert!(
            done_rx
                .recv_timeout(std::time::Duration::from_mins(1))
                .is_ok(),
            "the journal waited for a spare segment that was never asked for"
        );
    }
}
