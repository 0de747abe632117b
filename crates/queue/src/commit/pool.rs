//! Queue files made ahead of need: a thread of its own keeps a few O_TMPFILE files open
//! for a queue directory, so that a session that starts a message takes one instead of
//! asking the file system for a new inode while the client waits.
//!
//! Making the inode is the most expensive part of a new queue file after its link
//! (ext4_tmpfile: a new inode and its orphan-list entry). The daemon runs every session
//! on one runtime thread per core but one; that thread was spending a twelfth of its time
//! there. The pool moves the work to a thread that runs while the sessions wait for their
//! commits.
//!
//! A pooled file has no name and mode 0700 (commit.rs, create_anonymous): if it is never
//! taken, closing it frees it, at a stop or after a crash alike. Its queue id is chosen
//! when it is taken (PendingFile::create: the time is read then), never older than its
//! inode, so ids stay unique as Postfix's are: no two files that exist at once share an
//! inode, and a file deleted before this one was made had its time read before that.
//!
//! Only the daemon has pools (Committer::start_journaled makes the one of incoming/):
//! a command that queues one message makes its one file itself. The files are made by
//! whoever runs the daemon's threads, mail_owner after the daemon drops root (the
//! committer starts after that).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::thread;

/// Files kept ready.
const HIGH: usize = 64;
/// The maker is woken when fewer are left.
const LOW: usize = 32;

/// The pools in use, by directory (one or two entries: a vector is faster than a map).
static POOLS: RwLock<Vec<Arc<Pool>>> = RwLock::new(Vec::new());

struct Pool {
    dir: PathBuf,
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    files: Vec<File>,
    stop: bool,
    /// The maker could not make a file (ENOSPC, EMFILE...): takers make their own, and
    /// meet the error in their own words, until a taker succeeds again.
    failing: bool,
}

/// A running pool; dropping it stops its thread and closes its files.
pub(crate) struct PoolHandle {
    pool: Arc<Pool>,
    thread: Option<thread::JoinHandle<()>>,
}

/// Starts a pool for `dir`. `None` when O_TMPFILE does not work there (the named
/// fallback makes its files with a temporary name, which a pool must not hold: a crash
/// would leave them for recovery) or the thread cannot start.
pub(crate) fn start(dir: &Path) -> Option<PoolHandle> {
    let first = super::create_anonymous(dir)?;
    let pool = Arc::new(Pool {
        dir: dir.to_owned(),
        state: Mutex::new(State {
            files: vec![first],
            stop: false,
            failing: false,
        }),
        wake: Condvar::new(),
    });
    let p = Arc::clone(&pool);
    let thread = thread::Builder::new()
        .name("queue-file-maker".into())
        .spawn(move || make(&p))
        .ok()?;
    POOLS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Arc::clone(&pool));
    Some(PoolHandle {
        pool,
        thread: Some(thread),
    })
}

/// A ready file for `dir`, if a pool holds one.
pub(crate) fn take(dir: &Path) -> Option<File> {
    let pools = POOLS.read().unwrap_or_else(PoisonError::into_inner);
    let pool = pools.iter().find(|p| p.dir == dir)?;
    let mut st = pool.state.lock().unwrap_or_else(PoisonError::into_inner);
    let file = st.files.pop();
    if st.files.len() < LOW && !st.failing {
        pool.wake.notify_one();
    }
    file
}

/// A taker made its own file after the pool ran dry: the maker may try again.
pub(crate) fn made_one(dir: &Path) {
    let pools = POOLS.read().unwrap_or_else(PoisonError::into_inner);
    if let Some(pool) = pools.iter().find(|p| p.dir == dir) {
        let mut st = pool.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.failing {
            st.failing = false;
            pool.wake.notify_one();
        }
    }
}

fn make(pool: &Pool) {
    let mut st = pool.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        while !st.stop && (st.failing || st.files.len() >= LOW) {
            st = pool.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        if st.stop {
            return;
        }
        // Fill up to HIGH without holding the lock while the file system works.
        while !st.stop && st.files.len() < HIGH {
            drop(st);
            let made = super::create_anonymous(&pool.dir);
            st = pool.state.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(f) = made else {
                st.failing = true;
                break;
            };
            st.files.push(f);
        }
    }
}

impl Drop for PoolHandle {
    fn drop(&mut self) {
        POOLS
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|p| !Arc::ptr_eq(p, &self.pool));
        {
            let mut st = self
                .pool
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            st.stop = true;
            st.files.clear();
        }
        self.pool.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, Instant};

    #[test]
    fn takes_distinct_files_and_refills() {
        let dir = tempfile::tempdir().unwrap();
        let Some(handle) = start(dir.path()) else {
            panic!("O_TMPFILE unsupported in {}", dir.path().display());
        };
        let mut inodes = std::collections::BTreeSet::new();
        // Kept open, as sessions keep their files: inodes stay distinct.
        let mut held = Vec::new();
        let end = Instant::now() + Duration::from_secs(10);
        // More than HIGH: the maker refills while files are taken.
        while inodes.len() < 3 * HIGH && Instant::now() < end {
            if let Some(f) = take(dir.path()) {
                assert!(inodes.insert(f.metadata().unwrap().ino()), "inode twice");
                held.push(f);
            } else {
                thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(inodes.len(), 3 * HIGH);
        // Nothing has a name: the directory stays empty.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        drop(handle);
        assert!(
            take(dir.path()).is_none(),
            "a stopped pool hands out nothing"
        );
    }

    #[test]
    fn no_pool_for_other_directories() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let _h = start(a.path()).unwrap();
        assert!(take(b.path()).is_none());
    }
}
