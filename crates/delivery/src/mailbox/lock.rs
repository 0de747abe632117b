//! Mailbox locks, as mbox_open(3) takes them: a `NAME.lock` file (dot_lockfile(3)) before
//! the mailbox is opened, then kernel locks on the open file (deliver_flock(3): `flock`,
//! then `fcntl`), each tried deliver_lock_attempts times with deliver_lock_delay (plus or
//! minus half of it, at random) between tries.
//!
//! The dotlock is created with `O_CREAT|O_EXCL` and mode 0 (it never follows a symlink and
//! nobody needs to read it); a lock older than stale_lock_time (by its ctime) is removed and
//! the creation tried again. Mail readers (s-nail, mutt, procmail) use the same convention,
//! which is why Debian's default mailbox_delivery_lock is `fcntl, dotlock`.
//!
//! Trust: the lock file's directory is the mailbox's; the caller runs with the ids that may
//! create files there.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// A mailbox_delivery_lock / virtual_mailbox_lock method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    Flock,
    Fcntl,
    Dotlock,
}

impl LockKind {
    /// Parses a mailbox_delivery_lock value (`fcntl, dotlock`): names separated by commas
    /// or white space. An unknown name is Postfix's fatal configuration error
    /// `unknown mailbox_delivery_lock value "x" in "..."`.
    pub fn parse_list(param: &str, value: &str) -> Result<Vec<LockKind>, String> {
        let mut out = Vec::new();
        for word in value
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
        {
            let kind = match word.to_ascii_lowercase().as_str() {
                "flock" => LockKind::Flock,
                "fcntl" => LockKind::Fcntl,
                "dotlock" => LockKind::Dotlock,
                _ => return Err(format!("unknown {param} value \"{word}\" in \"{value}\"")),
            };
            if !out.contains(&kind) {
                out.push(kind);
            }
        }
        Ok(out)
    }
}

/// deliver_lock_attempts, deliver_lock_delay, stale_lock_time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockParams {
    pub attempts: u32,
    pub delay: Duration,
    pub stale: Duration,
}

impl Default for LockParams {
    /// Postfix's defaults: 20 attempts, 1s apart, a dotlock is stale after 500s.
    fn default() -> Self {
        LockParams {
            attempts: 20,
            delay: Duration::from_secs(1),
            stale: Duration::from_secs(500),
        }
    }
}

/// A lock failure: errno (for mbox_dsn(3)) and Postfix's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct LockError {
    pub errno: Option<i32>,
    pub text: String,
}

/// A held `NAME.lock`; removed on drop (dot_unlockfile(3)).
#[derive(Debug)]
pub struct DotLock {
    path: PathBuf,
}

impl Drop for DotLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// dot_lockfile(3): creates `PATH.lock`. Fails with `unable to create lock file PATH.lock:
/// %m` (errno `EEXIST` when someone else kept it through all the attempts).
pub fn dotlock(path: &Path, params: &LockParams) -> Result<DotLock, LockError> {
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    let lock = PathBuf::from(lock);
    let attempts = params.attempts.max(1);
    let mut count = 1;
    let err = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(&lock)
        {
            Ok(_) => return Ok(DotLock { path: lock }),
            Err(e) => {
                if count >= attempts || e.kind() != io::ErrorKind::AlreadyExists {
                    break e;
                }
            }
        }
        // Break a lock that is too old; give up when it cannot be removed.
        if let Ok(st) = std::fs::metadata(&lock) {
            let age = super::now_unix() - st.ctime();
            if age > i64::try_from(params.stale.as_secs()).unwrap_or(i64::MAX)
                && let Err(e) = std::fs::remove_file(&lock)
                && e.kind() != io::ErrorKind::NotFound
            {
                break e;
            }
        }
        rand_sleep(params.delay, count);
        count += 1;
    };
    Err(LockError {
        errno: err.raw_os_error(),
        text: format!(
            "unable to create lock file {}: {}",
            lock.display(),
            super::strerror(&err)
        ),
    })
}

/// A kernel lock held on the mailbox (released when the file is closed).
#[derive(Debug)]
pub enum KernelLock<'a> {
    /// flock(2), through a duplicate of the descriptor (released on drop).
    Flock(Flock<File>),
    /// fcntl(2) F_SETLK on the whole file (released when `file` is closed).
    Fcntl(&'a File),
}

/// deliver_flock(3): an exclusive non-blocking lock of `kind` (Flock or Fcntl), retried.
/// Fails with `unable to lock for exclusive access: %m` (EAGAIN when it stayed taken).
pub fn kernel_lock<'a>(
    file: &'a File,
    kind: LockKind,
    params: &LockParams,
) -> Result<KernelLock<'a>, LockError> {
    let attempts = params.attempts.max(1);
    let mut count = 1;
    loop {
        let result = match kind {
            LockKind::Flock => {
                let dup = file.try_clone().map_err(|e| lock_error(e.raw_os_error()))?;
                Flock::lock(dup, FlockArg::LockExclusiveNonblock)
                    .map(KernelLock::Flock)
                    .map_err(|(_, e)| e)
            }
            LockKind::Fcntl => fcntl_lock(file).map(|()| KernelLock::Fcntl(file)),
            LockKind::Dotlock => return Ok(KernelLock::Fcntl(file)),
        };
        match result {
            Ok(l) => return Ok(l),
            // myflock.c: "Some systems return EACCES when a lock is taken by someone else".
            Err(Errno::EINTR) => {}
            Err(e) if count >= attempts => {
                let e = if matches!(e, Errno::EWOULDBLOCK | Errno::EACCES) {
                    Errno::EAGAIN
                } else {
                    e
                };
                return Err(lock_error(Some(e as i32)));
            }
            Err(_) => {}
        }
        rand_sleep(params.delay, count);
        count += 1;
    }
}

fn lock_error(errno: Option<i32>) -> LockError {
    let text = errno.map_or_else(String::new, super::errno_text);
    LockError {
        errno,
        text: format!("unable to lock for exclusive access: {text}"),
    }
}

fn fcntl_lock(file: &File) -> Result<(), Errno> {
    use nix::fcntl::{FcntlArg, fcntl};
    let lock = nix::libc::flock {
        l_type: i16::try_from(nix::libc::F_WRLCK).unwrap_or(1),
        l_whence: i16::try_from(nix::libc::SEEK_SET).unwrap_or(0),
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    fcntl(file.as_raw_fd(), FcntlArg::F_SETLK(&lock)).map(|_| ())
}

/// rand_sleep(3): the delay, give or take half of it; the "randomness" comes from the
/// clock and the attempt number, which is enough to keep competing agents out of step.
fn rand_sleep(delay: Duration, attempt: u32) {
    let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX).max(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let seed = nanos
        ^ u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(std::process::id());
    let jitter = seed % (micros / 2 + 1);
    std::thread::sleep(Duration::from_micros(micros - micros / 4 + jitter));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lock_lists() {
        let table: &[(&str, Result<Vec<LockKind>, String>)] = &[
            (
                "fcntl, dotlock",
                Ok(vec![LockKind::Fcntl, LockKind::Dotlock]),
            ),
            ("flock", Ok(vec![LockKind::Flock])),
            ("", Ok(vec![])),
            (
                "FCNTL dotlock,flock",
                Ok(vec![LockKind::Fcntl, LockKind::Dotlock, LockKind::Flock]),
            ),
            (
                "lockf",
                Err("unknown mailbox_delivery_lock value \"lockf\" in \"lockf\"".into()),
            ),
        ];
        for (value, want) in table {
            assert_eq!(&LockKind::parse_list("mailbox_delivery_lock", value), want);
        }
    }

    fn quick() -> LockParams {
        LockParams {
            attempts: 2,
            delay: Duration::from_millis(10),
            stale: Duration::from_secs(500),
        }
    }

    #[test]
    fn dotlock_taken_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("u");
        let held = dotlock(&mbox, &quick()).unwrap();
        let lockfile = dir.path().join("u.lock");
        assert_eq!(std::fs::metadata(&lockfile).unwrap().mode() & 0o777, 0);
        let err = dotlock(&mbox, &quick()).unwrap_err();
        assert_eq!(
            err.text,
            format!(
                "unable to create lock file {}: File exists",
                lockfile.display()
            )
        );
        assert_eq!(err.errno, Some(Errno::EEXIST as i32));
        drop(held);
        assert!(!lockfile.exists());
        drop(dotlock(&mbox, &quick()).unwrap());
    }

    #[test]
    fn stale_dotlock_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("u");
        std::fs::write(dir.path().join("u.lock"), "").unwrap();
        let params = LockParams {
            stale: Duration::ZERO,
            ..quick()
        };
        // ctime is "now"; a stale time of 0 needs the clock to move a second on.
        std::thread::sleep(Duration::from_millis(1100));
        assert!(dotlock(&mbox, &params).is_ok());
    }

    #[test]
    fn flock_conflicts_within_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u");
        let a = File::create(&p).unwrap();
        let b = File::options().append(true).open(&p).unwrap();
        let held = kernel_lock(&a, LockKind::Flock, &quick()).unwrap();
        let err = kernel_lock(&b, LockKind::Flock, &quick()).unwrap_err();
        assert_eq!(
            err.text,
            "unable to lock for exclusive access: Resource temporarily unavailable"
        );
        drop(held);
        assert!(kernel_lock(&b, LockKind::Flock, &quick()).is_ok());
    }
}
