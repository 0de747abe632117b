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
//! [`CHECKPOINT_AFTER`], or on [`crate::Committer::checkpoint`] (at shutdown, and the call
//! a queue manager makes before it moves or removes files from `incoming/`: a file named in
//! a live segment must stay where cleanup put it, or replay would put it back).
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
//! header  "TERNJRN\n" | u32 version (1) | u32 reserved | u64 segment sequence | 8 reserved
//! record  "TJR1" | u32 payload length | u32 CRC-32 of payload | payload
//! payload u64 segment sequence | u8 queue (0 incoming, 1 maildrop) | u8 id length | id
//!         | the queue file's bytes
//! ```
//!
//! The rest of a segment is zeros; reading stops at the first record whose magic, length,
//! checksum or sequence is wrong (a batch cut by a crash: none of its writers was told the
//! message was accepted).
//!
//! Security: segments live in `$queue_directory/journal`, mode 0700, owned by mail_owner,
//! like the queues. Replay trusts their contents no more than a queue file's: lengths are
//! bounded by the segment size, ids must parse as queue ids, and a record that does not
//! check out ends the segment.

mod replay;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use replay::{ReplayEvent, replay};

use crate::Error;
use crate::layout::{QueueLayout, QueueName};
use crate::record::crc32;

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
pub(crate) fn encode_record(out: &mut Vec<u8>, seq: u64, q: QueueName, id: &str, content: &[u8]) {
    let Some(code) = queue_code(q) else {
        return;
    };
    let mut payload = Vec::with_capacity(10 + id.len() + content.len());
    payload.extend_from_slice(&seq.to_le_bytes());
    payload.push(code);
    // Queue ids are at most 255 bytes (mail_queue_id_ok); longer cannot be made here.
    payload.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    payload.extend_from_slice(&id.as_bytes()[..id.len().min(255)]);
    payload.extend_from_slice(content);
    out.extend_from_slice(RECORD_MAGIC);
    // Payloads are bounded by MAX_RECORD plus a few bytes, far below u32::MAX.
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&crc32(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// The size of the record [`encode_record`] makes.
pub(crate) fn record_len(id: &str, content: &[u8]) -> u64 {
    (RECORD_HEAD + 10 + id.len() + content.len()) as u64
}

/// One record read back from a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub queue: QueueName,
    pub id: &'a str,
    pub content: &'a [u8],
}

/// Reads the segment header; returns its sequence.
fn parse_header(data: &[u8]) -> Option<u64> {
    let h = data.get(..32)?;
    if &h[..8] != HEADER_MAGIC || u32::from_le_bytes(h[8..12].try_into().ok()?) != VERSION {
        return None;
    }
    Some(u64::from_le_bytes(h[16..24].try_into().ok()?))
}

/// The records of a whole segment, up to the first one that does not check out.
pub(crate) fn parse_records(data: &[u8]) -> Option<(u64, Vec<Record<'_>>)> {
    let seq = parse_header(data)?;
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
        if len < 10 || crc32(payload) != crc {
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
        if rseq != seq || crate::id::QueueId::parse(id).is_err() {
            break;
        }
        out.push(Record {
            queue,
            id,
            content: &payload[10 + id_len..],
        });
        at += RECORD_HEAD + len;
    }
    Some((seq, out))
}

/// Makes segment `seq`: header, zeros to [`SEGMENT_SIZE`], synced, its name synced.
fn make_segment(dir: &Path, seq: u64) -> Result<(File, PathBuf), Error> {
    let path = dir.join(segment_name(seq));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io("create", &path, e))?;
    let fill = || -> io::Result<()> {
        let mut header = [0u8; 32];
        header[..8].copy_from_slice(HEADER_MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[16..24].copy_from_slice(&seq.to_le_bytes());
        let mut w = io::BufWriter::with_capacity(1 << 20, &file);
        w.write_all(&header)?;
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
    Ok((file, path))
}

/// The segment being appended to.
struct Segment {
    file: File,
    path: PathBuf,
    seq: u64,
    used: u64,
    /// When its first record was written; `None` while it has none.
    first: Option<Instant>,
}

/// Work for the checkpoint thread.
enum Work {
    /// syncfs, then delete these segments.
    Retire(Vec<PathBuf>),
    /// Make a spare segment with this sequence.
    Spare(u64),
    /// Answer when everything sent before is done.
    Barrier(mpsc::SyncSender<()>),
}

/// The writer side, owned by the commit thread.
pub(crate) struct Journal {
    dir: PathBuf,
    current: Option<Segment>,
    /// Segments with synced records, to retire with the next checkpoint.
    full: Vec<PathBuf>,
    next_seq: u64,
    work: mpsc::Sender<Work>,
    spares: mpsc::Receiver<Result<(File, PathBuf, u64), Error>>,
    /// A spare has been asked for and not received yet.
    spare_wanted: bool,
    /// After a segment could not be made (a full disk): no new try before this.
    retry_at: Option<Instant>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Journal {
    /// Opens the journal of `layout` (after [`replay`] has emptied it) and starts its
    /// checkpoint thread.
    pub(crate) fn open(layout: &QueueLayout) -> Result<Self, Error> {
        let dir = journal_dir(layout);
        let root = File::open(layout.root()).map_err(|e| Error::io("open", layout.root(), e))?;
        // Sequences only grow, across restarts too: start from the clock.
        let next_seq = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
        let (work_tx, work_rx) = mpsc::channel::<Work>();
        let (spare_tx, spare_rx) = mpsc::channel();
        let tdir = dir.clone();
        let thread = thread::Builder::new()
            .name("queue-journal".into())
            .spawn(move || checkpoint_thread(&tdir, &root, &work_rx, &spare_tx))
            .map_err(|e| Error::io("start journal thread", &dir, e))?;
        let mut j = Self {
            dir,
            current: None,
            full: Vec::new(),
            next_seq,
            work: work_tx,
            spares: spare_rx,
            spare_wanted: false,
            retry_at: None,
            thread: Some(thread),
        };
        j.ask_spare();
        Ok(j)
    }

    fn ask_spare(&mut self) {
        if !self.spare_wanted {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.spare_wanted = self.work.send(Work::Spare(seq)).is_ok();
        }
    }

    /// A segment to write `need` bytes into: the current one if it has room, else a
    /// spare (waiting for the one being made). `None` when no segment can be had.
    fn segment_for(&mut self, need: u64) -> Option<&mut Segment> {
        let fits = self
            .current
            .as_ref()
            .is_some_and(|s| s.used + need <= SEGMENT_SIZE);
        if !fits {
            if let Some(old) = self.current.take() {
                self.full.push(old.path);
            }
            if self.retry_at.is_some_and(|t| Instant::now() < t) {
                return None;
            }
            if !self.spare_wanted {
                self.ask_spare();
            }
            self.spare_wanted = false;
            if let Ok(Ok((file, path, seq))) = self.spares.recv() {
                self.current = Some(Segment {
                    file,
                    path,
                    seq,
                    used: HEADER_LEN,
                    first: None,
                });
                // The next one is made while this one fills.
                self.ask_spare();
            } else {
                self.retry_at = Some(Instant::now() + RETRY_AFTER);
                return None;
            }
        }
        self.current.as_mut()
    }

    /// Makes `files` (queue, id, bytes) durable: appends their records and syncs, one
    /// write and one fdatasync per segment touched. On error nothing may be assumed
    /// durable.
    pub(crate) fn append(&mut self, files: &[(QueueName, &str, &[u8])]) -> Result<(), Error> {
        let mut i = 0;
        while i < files.len() {
            let first_len = record_len(files[i].1, files[i].2);
            let dir = self.dir.clone();
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
                encode_record(&mut buf, seg.seq, q, id, content);
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
        if !self.full.is_empty() {
            let _ = self.work.send(Work::Retire(std::mem::take(&mut self.full)));
        }
    }

    /// Ends the current segment if it has records.
    fn rotate(&mut self) {
        if self.current.as_ref().is_some_and(|s| s.first.is_some())
            && let Some(s) = self.current.take()
        {
            self.full.push(s.path);
        }
    }

    /// Retires every segment with records and waits until that is done.
    pub(crate) fn checkpoint(&mut self) {
        self.rotate();
        let _ = self.work.send(Work::Retire(std::mem::take(&mut self.full)));
        let (tx, rx) = mpsc::sync_channel(1);
        if self.work.send(Work::Barrier(tx)).is_ok() {
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
    /// A clean stop leaves no live segment (and the empty spares are removed too).
    fn drop(&mut self) {
        self.checkpoint();
        if let Some(s) = self.current.take() {
            let _ = fs::remove_file(&s.path);
        }
        // Closing the work channel ends the thread; a spare it made meanwhile is removed.
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.work, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        while let Ok(Ok((_, path, _))) = self.spares.try_recv() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Flushes everything of the queue's file system to disk.
fn syncfs(root: &File) -> io::Result<()> {
    nix::unistd::syncfs(root.as_raw_fd()).map_err(io::Error::from)
}

fn checkpoint_thread(
    dir: &Path,
    root: &File,
    work: &mpsc::Receiver<Work>,
    spares: &mpsc::Sender<Result<(File, PathBuf, u64), Error>>,
) {
    while let Ok(w) = work.recv() {
        match w {
            Work::Retire(paths) if !paths.is_empty() => {
                // Every file that a record of these segments covers was written (and
                // linked) before its record: one syncfs puts them all on disk. If it
                // fails, the segments stay and are replayed at the next start.
                if syncfs(root).is_ok() {
                    for p in &paths {
                        let _ = fs::remove_file(p);
                    }
                    let _ = crate::commit::sync_dir(dir);
                }
            }
            Work::Retire(_) => {}
            Work::Spare(seq) => {
                let made = make_segment(dir, seq).map(|(f, p)| (f, p, seq));
                if spares.send(made).is_err() {
                    break;
                }
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
        let mut seg = vec![0u8; 32];
        seg[..8].copy_from_slice(HEADER_MAGIC);
        seg[8..12].copy_from_slice(&VERSION.to_le_bytes());
        seg[16..24].copy_from_slice(&7u64.to_le_bytes());
        encode_record(&mut seg, 7, QueueName::Incoming, "4B3C2D1E0F", b"abc");
        encode_record(&mut seg, 7, QueueName::Maildrop, "4B3C2D1E11", b"");
        let good = seg.len();
        encode_record(&mut seg, 7, QueueName::Incoming, "4B3C2D1E12", b"xyz");
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
        // A record of another segment's sequence (stale bytes) ends the segment.
        let mut other = seg[..32].to_vec();
        encode_record(&mut other, 8, QueueName::Incoming, "4B3C2D1E0F", b"abc");
        assert!(parse_records(&other).unwrap().1.is_empty());
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
}
