//! The `postfix` command's side of a running daemon: is it running (the pid file's lock,
//! as `master -t` tests it), and the signals of `stop`, `abort` and `reload`.
//!
//! Signals are sent with kill(1), as postfix-script sends them (nix's signal module is
//! not among the workspace's features).
//!
//! Trust: the pid file is the daemon's own, under queue_directory; its text is parsed as
//! a number and nothing else.

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::master::PID_FILE;

/// The signals the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `postfix reload`.
    Reload,
    /// `postfix stop`: graceful.
    Stop,
    /// `postfix abort`.
    Abort,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Self::Reload => "HUP",
            Self::Stop => "TERM",
            Self::Abort => "QUIT",
        }
    }
}

/// The pid of the running daemon of `queue_directory`, or `None` when none runs.
pub fn running(queue_directory: &Path) -> Option<u32> {
    let path = queue_directory.join(PID_FILE);
    let file = File::open(&path).ok()?;
    // Getting the lock means that nobody holds it: no daemon runs.
    if Flock::lock(file, FlockArg::LockSharedNonblock).is_ok() {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    text.trim().parse().ok()
}

/// Sends `sig` to `pid`.
pub fn send(pid: u32, sig: Signal) -> std::io::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{}", sig.name()))
        .arg(pid.to_string())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "kill -{} {pid} failed",
            sig.name()
        )))
    }
}

/// Waits until no daemon runs, for at most `limit`.
pub fn wait_stopped(queue_directory: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if running(queue_directory).is_none() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    running(queue_directory).is_none()
}
