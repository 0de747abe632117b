//! Durable commit of new queue files, one at a time or in groups.
//!
//! A new message is written to a file without a name (O_TMPFILE) in its queue directory,
//! or, where the file system cannot make one, under a temporary name
//! (`incoming/<usec>.<pid>.<n>`, a name with dots, so never a queue id: the shape of
//! Postfix's mail_queue_enter temporary names). Its queue id is fixed from the file's
//! inode at once, since cleanup puts the id into the Received: header before the content
//! is complete. The commit then:
//!
//! 1. gives the file mode 0700, Postfix's mark of a complete queue file
//!    (MAIL_QUEUE_STAT_READY; showq and qmgr skip files without it);
//! 2. makes its bytes durable: a record in the commit journal ([`crate::journal`]) for a
//!    file up to 1 MiB, else an fdatasync of the file;
//! 3. links it under its queue id (never replacing an existing file) and removes the
//!    temporary name, if it has one;
//! 4. for a file that the journal does not hold, fsyncs the directory of the new name.
//!
//! Only after that may smtpd answer 250: the message and its name survive a crash. A
//! crash before step 3 leaves nothing (an O_TMPFILE file) or a temporary name, which
//! recovery removes, unless the journal record was synced, in which case replay brings
//! the file back; a crash between link and unlink leaves both names, and recovery removes
//! the temporary one.
//!
//! [`Committer`] shares this work between many writers. A file the journal takes is
//! handed to the commit thread as it is; the thread appends the records of every file
//! waiting, syncs the segment once, links them all and answers each writer. A file too
//! big for the journal is fdatasynced on its writer's own thread (fdatasyncs issued at once
//! by many threads share the file system's journal commits), then handed over; the thread
//! links the batch and fsyncs each directory once for it. Writers that finish while a
//! batch is being synced form the next batch (docs/queue-format.md has measurements).
//!
//! A failed directory fsync fails every file of its batch: the files have their names but
//! may not keep them, so the caller answers 4xx and the client sends again; a crash may
//! then leave the message twice, never not at all.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::Error;
use crate::file::Timestamp;
use crate::id::{IdForm, QueueId};
use crate::journal::{self, Journal};
use crate::layout::{QueueLayout, QueueName, make_hash_dirs};

mod pool;

/// The most files one batch takes; the rest wait for the next.
const MAX_BATCH: usize = 512;
/// Writes of a file too big to journal go out in pieces of this size.
const WRITE_BUFFER: usize = 64 * 1024;

/// A queue file being written: open under a temporary name, its id already chosen.
pub struct PendingFile {
    file: File,
    /// Bytes not yet written to `file`; while `whole`, every byte of the file from its
    /// start (`flushed` of them written), so that the commit can journal the file.
    buf: Vec<u8>,
    flushed: usize,
    whole: bool,
    queue: QueueName,
    /// The file's name until it is linked under its id: a temporary name, or, for a file
    /// made with O_TMPFILE (no name at all until the link), the directory it will be in.
    temp: PathBuf,
    anonymous: bool,
    /// The file already has the mode that marks it complete (an O_TMPFILE file, made
    /// 0700: nobody can see it before its link, which comes only once it is complete).
    complete_mode: bool,
    target: PathBuf,
    id: QueueId,
    done: bool,
}

impl PendingFile {
    /// Creates a new file in queue `queue` (incoming for cleanup, maildrop for postdrop)
    /// and chooses its id in the form `form` from the time and the file's inode.
    pub fn create(layout: &QueueLayout, queue: QueueName, form: IdForm) -> Result<Self, Error> {
        let dir = layout.dir(queue);
        let (file, temp, anonymous) = if let Some(file) = pool::take(&dir) {
            (file, dir, true)
        } else if let Some(file) = create_anonymous(&dir) {
            pool::made_one(&dir);
            (file, dir, true)
        } else {
            let (file, temp) = create_named(&dir)?;
            (file, temp, false)
        };
        let meta = file.metadata().map_err(|e| Error::io("fstat", &temp, e))?;
        let inode = meta.ino();
        // Under an odd umask the mode is not 0700: then mark_complete sets it.
        let complete_mode = anonymous && meta.mode() & 0o7777 == 0o700;
        // The time is taken again after the file exists, as Postfix does, so that the
        // id's time part is no older than its inode.
        let now = Timestamp::now();
        let id = QueueId::new(form, now.sec, now.usec, inode);
        let target = layout.path(queue, &id);
        Ok(Self {
            file,
            buf: Vec::with_capacity(8 * 1024),
            flushed: 0,
            whole: true,
            queue,
            temp,
            anonymous,
            complete_mode,
            target,
            id,
            done: false,
        })
    }

    pub fn id(&self) -> &QueueId {
        &self.id
    }

    /// The queue the file goes into when committed.
    pub fn queue(&self) -> QueueName {
        self.queue
    }

    /// Sends the file to `queue` instead of the one it was made in (cleanup_api.c: a
    /// message on HOLD is renamed into hold/ before it is finished, so that the queue
    /// manager never sees it). The file keeps its id; it is linked there on commit, by
    /// the per-file path (the journal takes incoming/ and maildrop/ files only).
    pub fn set_queue(&mut self, layout: &QueueLayout, queue: QueueName) {
        self.queue = queue;
        self.target = layout.path(queue, &self.id);
    }

    /// Where the file will be once committed.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The temporary name the file has now; `None` for a file without a name (made with
    /// O_TMPFILE: it vanishes by itself if it is never linked).
    pub fn temp_path(&self) -> Option<&Path> {
        (!self.anonymous).then_some(self.temp.as_path())
    }

    /// Commits this file on the calling thread: syncs it, names it, syncs its directory.
    pub fn commit(mut self) -> Result<QueueId, Error> {
        self.flush()?;
        self.mark_complete()?;
        self.sync()?;
        self.link()?;
        sync_dir(self.target.parent().unwrap_or(Path::new(".")))?;
        Ok(self.id.clone())
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.write_out()
            .map_err(|e| Error::io("write", &self.temp, e))
    }

    /// Writes what the file does not have yet.
    fn write_out(&mut self) -> io::Result<()> {
        if self.flushed < self.buf.len() {
            (&self.file).write_all(&self.buf[self.flushed..])?;
            self.flushed = self.buf.len();
        }
        if !self.whole {
            self.buf.clear();
            self.flushed = 0;
        }
        Ok(())
    }

    /// Gives the file mode 0700, Postfix's mark of a complete queue file.
    fn mark_complete(&self) -> Result<(), Error> {
        if self.complete_mode {
            return Ok(());
        }
        self.file
            .set_permissions(fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("set mode of", &self.temp, e))
    }

    fn sync(&self) -> Result<(), Error> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fsync", &self.temp, e))
    }

    /// The whole file, when it is small enough to be journaled.
    fn journal_bytes(&self) -> Option<&[u8]> {
        (self.whole && self.buf.len() <= journal::MAX_RECORD && self.queue_journaled())
            .then_some(self.buf.as_slice())
    }

    fn queue_journaled(&self) -> bool {
        matches!(self.queue, QueueName::Incoming | QueueName::Maildrop)
    }

    /// Gives the file its queue id name without replacing another file.
    fn link(&mut self) -> Result<(), Error> {
        let mut linked = self.link_once();
        // A hashed queue's subdirectory is made on first need (not looked for first:
        // that would cost a stat per message).
        if linked
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
            && let Some(parent) = self.target.parent().filter(|p| !p.is_dir())
        {
            make_hash_dirs(parent)?;
            linked = self.link_once();
        }
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists {
                    path: self.target.clone(),
                });
            }
            Err(e) => return Err(Error::io("link", &self.target, e)),
        }
        self.done = true;
        if self.anonymous {
            return Ok(());
        }
        // The file is safe under its id; the temporary name is only cleanup, and
        // recovery removes it if this is lost.
        fs::remove_file(&self.temp).map_err(|e| Error::io("remove", &self.temp, e))
    }
}

impl PendingFile {
    fn link_once(&self) -> io::Result<()> {
        if self.anonymous {
            // linkat(2) of an O_TMPFILE file through its /proc/self/fd link (following
            // it), which needs no privilege, unlike AT_EMPTY_PATH.
            let fd = format!("/proc/self/fd/{}", self.file.as_raw_fd());
            nix::unistd::linkat(
                None,
                Path::new(&fd),
                None,
                &self.target,
                nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
            )
            .map_err(io::Error::from)
        } else {
            fs::hard_link(&self.temp, &self.target)
        }
    }
}

/// Whether O_TMPFILE files can be made and linked here (checked once per process).
static ANONYMOUS_OK: AtomicU64 = AtomicU64::new(UNKNOWN);
const UNKNOWN: u64 = 0;
const YES: u64 = 1;
const NO: u64 = 2;

/// A file without a name in `dir` (O_TMPFILE): one directory operation per message (the
/// link under its id) instead of three (create, link, unlink), and nothing to clean up
/// after a crash. `None` where the file system or kernel cannot, or /proc is missing.
fn create_anonymous(dir: &Path) -> Option<File> {
    if ANONYMOUS_OK.load(Ordering::Relaxed) == NO {
        return None;
    }
    // Mode 0700, Postfix's "complete" mark, from the start: the file has no name, so no
    // reader can see it, until it is linked, and it is linked only once complete.
    let file = OpenOptions::new()
        .write(true)
        .mode(0o700)
        .custom_flags(nix::fcntl::OFlag::O_TMPFILE.bits())
        .open(dir);
    match file {
        Ok(f) if ANONYMOUS_OK.load(Ordering::Relaxed) == YES => Some(f),
        Ok(f) => {
            let ok = Path::new(&format!("/proc/self/fd/{}", f.as_raw_fd())).exists();
            ANONYMOUS_OK.store(if ok { YES } else { NO }, Ordering::Relaxed);
            ok.then_some(f)
        }
        // Not supported (EOPNOTSUPP, EISDIR, EINVAL on old kernels): use names. Other
        // errors (EACCES, ENOSPC) the named path reports in its own words.
        Err(e) => {
            if matches!(e.raw_os_error(), Some(95 | 21 | 22)) {
                ANONYMOUS_OK.store(NO, Ordering::Relaxed);
            }
            None
        }
    }
}

/// A file under a fresh temporary name in `dir` (`<usec>.<pid>.<n>`, the shape of
/// Postfix's mail_queue_enter names, which is never a queue id).
fn create_named(dir: &Path) -> Result<(File, PathBuf), Error> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    // A fresh name each try; a collision is another writer's file (EEXIST).
    for _ in 0..1000 {
        let now = Timestamp::now();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!("{}.{pid}.{seq}", now.usec));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
        {
            Ok(f) => return Ok((f, temp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("create", &temp, e)),
        }
    }
    Err(Error::io(
        "create",
        dir,
        io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name"),
    ))
}

impl Write for PendingFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(data);
        if self.whole && self.buf.len() > journal::MAX_RECORD {
            // Too big to journal: from now on the buffer is only a write buffer.
            self.whole = false;
            self.write_out()?;
        } else if !self.whole && self.buf.len() >= WRITE_BUFFER {
            self.write_out()?;
        }
        Ok(())
    }
    /// Writes the buffered bytes to the file (not to disk), except while the whole file
    /// is in memory: the commit writes it out then (Committer::submit: on the commit
    /// thread, not the session's).
    fn flush(&mut self) -> io::Result<()> {
        if self.whole {
            return Ok(());
        }
        self.write_out()
    }
}

impl Drop for PendingFile {
    /// A file that was never committed (the client left during DATA, a write failed) is
    /// removed: nobody was told it was accepted.
    fn drop(&mut self) {
        if !self.done && !self.anonymous {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Fsyncs a directory so that names made in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// Counts of the work a [`Committer`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Batches processed.
    pub batches: u64,
    /// Files committed.
    pub files: u64,
    /// Of those, files made durable by the journal (no fdatasync of their own).
    pub journaled: u64,
    /// Directory fsyncs.
    pub dir_syncs: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    files: AtomicU64,
    journaled: AtomicU64,
    dir_syncs: AtomicU64,
}

/// Where the result of a commit goes: a waiting thread, or a callback (which runs on the
/// commit thread and must not block: an async caller completes a future with it).
enum Reply {
    Thread(mpsc::SyncSender<Result<QueueId, Error>>),
    Callback(Box<dyn FnOnce(Result<QueueId, Error>) + Send>),
}

impl Reply {
    fn send(self, r: Result<QueueId, Error>) {
        match self {
            // A writer that went away no longer needs the answer.
            Reply::Thread(tx) => {
                let _ = tx.send(r);
            }
            Reply::Callback(f) => f(r),
        }
    }
}

/// What the commit thread is asked to do.
enum Job {
    /// A file, written and marked complete; `synced` when its data is on disk already.
    File {
        file: PendingFile,
        synced: bool,
        reply: Reply,
    },
    /// Retire every journal segment, then answer.
    Checkpoint(mpsc::SyncSender<()>),
    /// Answer once every file handed over before has its name.
    Barrier(mpsc::SyncSender<()>),
}

/// A thread that commits files for many writers in batches (group commit).
pub struct Committer {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
    counters: Arc<Counters>,
    journaled: bool,
    /// incoming/'s files made ahead of need (module pool), with a journal only: the
    /// daemon's committer. Held for its Drop (which stops the maker thread).
    #[allow(dead_code)]
    pool: Option<pool::PoolHandle>,
    notes: Option<Arc<journal::RemovalNotes>>,
}

impl Committer {
    /// Starts the commit thread without a journal: each file is fdatasynced on its own.
    pub fn start() -> Result<Self, Error> {
        Self::spawn(None)
    }

    /// Starts the commit thread with the commit journal of `layout` (module
    /// [`crate::journal`]). Call [`crate::journal::replay`] first: a journal left by a
    /// crash must be replayed before new segments are made.
    pub fn start_journaled(layout: &QueueLayout) -> Result<Self, Error> {
        let journal = Journal::open(layout)?;
        let notes = journal.notes();
        let mut c = Self::spawn(Some(journal))?;
        c.pool = pool::start(&layout.dir(QueueName::Incoming));
        c.notes = Some(notes);
        Ok(c)
    }

    fn spawn(journal: Option<Journal>) -> Result<Self, Error> {
        let (tx, rx) = mpsc::channel::<Job>();
        let counters = Arc::new(Counters::default());
        let c = Arc::clone(&counters);
        let journaled = journal.is_some();
        let thread = thread::Builder::new()
            .name("queue-commit".into())
            .spawn(move || run(&rx, &c, journal))
            .map_err(|e| Error::io("start commit thread", Path::new("."), e))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            counters,
            journaled,
            pool: None,
            notes: None,
        })
    }

    /// Commits `file` and returns when it is durable (or failed). Call from any thread;
    /// concurrent calls share fsync rounds.
    pub fn commit(&self, mut file: PendingFile) -> Result<QueueId, Error> {
        // The writer's own thread writes the file out. A file the journal takes needs no
        // sync of its own. Any other is fdatasynced here: fdatasyncs from many threads at
        // once share the file system's journal commits, where one thread syncing them in
        // turn would pay one commit each (docs/queue-format.md). The commit thread
        // batches the rest.
        file.flush()?;
        file.mark_complete()?;
        let synced = !(self.journaled && file.journal_bytes().is_some());
        if synced {
            file.sync()?;
        }
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let tx = self.tx.as_ref().ok_or(Error::CommitterGone)?;
        tx.send(Job::File {
            file,
            synced,
            reply: Reply::Thread(reply_tx),
        })
        .map_err(|_| Error::CommitterGone)?;
        reply_rx.recv().map_err(|_| Error::CommitterGone)?
    }

    /// Whether [`Committer::submit`] takes `file`: it is small enough for the journal, and
    /// this committer has one. Other files go through [`Committer::commit`], on a thread
    /// that may block for an fdatasync.
    pub fn journals(&self, file: &PendingFile) -> bool {
        self.journaled && file.journal_bytes().is_some()
    }

    /// Queues a file that [`Committer::journals`] takes, without waiting, and calls
    /// `done` on the commit thread once the file is durable or has failed. For async
    /// callers, which must not block a worker thread on a thread hand-off. The file's
    /// bytes (all in memory: a journaled file is small) are written out by the commit
    /// thread, before its journal record, so that the session threads do no file
    /// system work for it but make the file (module pool); a failed write fails the
    /// file, and its writer answers 4xx.
    pub fn submit(&self, file: PendingFile, done: Box<dyn FnOnce(Result<QueueId, Error>) + Send>) {
        if let Err(e) = file.mark_complete() {
            return done(Err(e));
        }
        if !self.journals(&file) {
            return done(Err(Error::io(
                "journal",
                &file.temp,
                io::Error::other("file not journaled: use commit"),
            )));
        }
        let Some(tx) = self.tx.as_ref() else {
            return done(Err(Error::CommitterGone));
        };
        let job = Job::File {
            file,
            synced: false,
            reply: Reply::Callback(done),
        };
        if let Err(mpsc::SendError(Job::File { reply, .. })) = tx.send(job) {
            reply.send(Err(Error::CommitterGone));
        }
    }

    /// Returns once every file committed so far is on disk by itself, no longer through a
    /// journal segment: a queue manager calls this before it moves or removes files that
    /// it found in `incoming/`. Without a journal it returns at once.
    pub fn checkpoint(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if let Some(t) = &self.tx
            && t.send(Job::Checkpoint(tx)).is_ok()
        {
            let _ = rx.recv();
        }
    }

    /// Returns once every file committed so far has its name under its queue id (a
    /// journaled file's writer is answered before its link): a queue manager calls this
    /// before it looks in `incoming/` for files it was told about. Unlike
    /// [`Committer::checkpoint`] it makes nothing durable and costs no sync.
    pub fn barrier(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if let Some(t) = &self.tx
            && t.send(Job::Barrier(tx)).is_ok()
        {
            let _ = rx.recv();
        }
    }

    /// Notes that message `id` is about to be removed from the queue, so that replaying
    /// the journal after a crash does not bring it back (crate::journal's module
    /// `removed`). A queue manager calls it before it removes a delivered message's
    /// file; without a journal it does nothing.
    pub fn note_removal(&self, id: &QueueId) -> io::Result<()> {
        self.notes.as_ref().map_or(Ok(()), |n| n.note(id))
    }

    pub fn stats(&self) -> CommitStats {
        CommitStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            files: self.counters.files.load(Ordering::Relaxed),
            journaled: self.counters.journaled.load(Ordering::Relaxed),
            dir_syncs: self.counters.dir_syncs.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Closing the channel ends the thread after the batch it is on; its journal
        // retires every segment as it goes.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(rx: &mpsc::Receiver<Job>, counters: &Counters, mut journal: Option<Journal>) {
    loop {
        let wait = journal
            .as_ref()
            .map_or(Duration::from_hours(1), Journal::wait_hint);
        let first = match rx.recv_timeout(wait) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(j) = journal.as_mut() {
                    j.tick();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = Vec::new();
        let mut checkpoints = Vec::new();
        let mut barriers = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next {
            match job {
                Job::File {
                    file,
                    synced,
                    reply,
                } => batch.push((file, synced, reply)),
                Job::Checkpoint(tx) => checkpoints.push(tx),
                Job::Barrier(tx) => barriers.push(tx),
            }
            next = if batch.len() < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !batch.is_empty() {
            commit_batch(batch, counters, journal.as_mut());
        }
        if let Some(j) = journal.as_mut() {
            if checkpoints.is_empty() {
                j.tick();
            } else {
                j.checkpoint();
            }
        }
        for tx in checkpoints.into_iter().chain(barriers) {
            let _ = tx.send(());
        }
    }
    // Dropping the journal retires its segments: a clean stop leaves none.
    drop(journal);
}

fn commit_batch(
    batch: Vec<(PendingFile, bool, Reply)>,
    counters: &Counters,
    mut journal: Option<&mut Journal>,
) {
    // The bytes of files handed over by submit() go to the page cache first: a file
    // that cannot be written fails alone, before anything is journaled for it.
    let batch: Vec<(PendingFile, bool, Reply)> = batch
        .into_iter()
        .filter_map(|(mut f, synced, reply)| match f.flush() {
            Ok(()) => Some((f, synced, reply)),
            Err(e) => {
                reply.send(Err(e));
                None
            }
        })
        .collect();
    let batch_len = batch.len();
    // Journal first: once its records are synced the files are safe whatever happens to
    // their names, so the names can be made without a directory fsync. A crash before
    // the link leaves only a temporary name (the record replays it if the sync had
    // returned).
    let mut journaled = false;
    if let Some(j) = journal.as_deref_mut() {
        let records: Vec<(QueueName, &str, &[u8])> = batch
            .iter()
            .filter(|(_, synced, _)| !synced)
            .filter_map(|(f, _, _)| Some((f.queue, f.id.as_str(), f.journal_bytes()?)))
            .collect();
        journaled = records.is_empty() || j.append(&records).is_ok();
    }
    let mut results: Vec<(Result<(), Error>, PendingFile, bool, Reply)> =
        Vec::with_capacity(batch.len());
    // A file whose journal record is synced is durable now: it gets its name and its
    // writer is answered at once (no directory fsync: the record covers the name).
    // Nothing can look for the name in between: the queue manager's barrier, which comes
    // before it takes files from incoming/, is a later job of this same thread.
    // The name comes before the answer: a link that fails (incoming/ made unwritable or
    // renamed away while the daemon runs) is a write error the client retries, not a
    // 250 whose only copy is the journal until the next start. The record of a refused
    // file gets a removal note, so that a replay does not deliver it beside the retry.
    let notes = journal.as_deref().map(Journal::notes);
    let mut rest = Vec::with_capacity(batch.len());
    for (mut f, synced, reply) in batch {
        if journaled && !synced {
            match f.link() {
                Ok(()) => reply.send(Ok(f.id.clone())),
                Err(e) => {
                    if let Some(n) = &notes {
                        let _ = n.note(&f.id);
                    }
                    reply.send(Err(e));
                }
            }
        } else {
            rest.push((f, synced, reply));
        }
    }
    counters
        .journaled
        .fetch_add((batch_len - rest.len()) as u64, Ordering::Relaxed);
    for (mut f, synced, reply) in rest {
        // Without the journal (it failed), a file it was to take is synced here.
        let r = if synced || journaled {
            Ok(())
        } else {
            f.sync()
        };
        let r = r.and_then(|()| f.link());
        let own_sync = synced || !journaled;
        results.push((r, f, own_sync, reply));
    }
    // Directory fsyncs only for names the journal does not cover.
    let dirs: BTreeSet<PathBuf> = results
        .iter()
        .filter(|(r, _, own, _)| r.is_ok() && *own)
        .filter_map(|(_, f, _, _)| f.target.parent().map(Path::to_owned))
        .collect();
    let mut failed_dirs = Vec::new();
    for d in &dirs {
        if let Err(e) = sync_dir(d) {
            failed_dirs.push((d.clone(), e.to_string()));
        }
    }
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters
        .files
        .fetch_add(batch_len as u64, Ordering::Relaxed);
    counters
        .dir_syncs
        .fetch_add(dirs.len() as u64, Ordering::Relaxed);
    for (r, f, own, reply) in results {
        let r = r.and_then(|()| {
            let parent = f.target.parent().unwrap_or(Path::new("."));
            match failed_dirs.iter().find(|(d, _)| own && d == parent) {
                // The name may not be durable: the caller must not answer 250.
                Some((d, msg)) => Err(Error::io(
                    "fsync directory",
                    d,
                    io::Error::other(msg.clone()),
                )),
                None => Ok(f.id.clone()),
            }
        });
        reply.send(r);
    }
}
