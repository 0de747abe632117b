//! The daemon's side of the helper: start the supervisor (before dropping root), and have
//! it start workers.
//!
//! For each worker the daemon makes a socket pair, keeps one end and sends the other to
//! the supervisor with its `Spawn` frame (SCM_RIGHTS); the supervisor starts the worker
//! with that end as its standard input and answers `Spawned(pid)`. The daemon thus only
//! ever holds descriptors it made itself. The calls here block (they are rare: one per
//! worker started); the daemon makes them on a blocking thread.
//!
//! # Security
//! Replies from the supervisor are decoded by [`crate::wire`]; anything but the expected
//! frame is an error.

use std::io::{self, IoSlice, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, sendmsg, socketpair,
};

use crate::wire::{self, Frame};

/// How long the supervisor may take to answer a `Spawn`.
const SPAWN_WAIT: Duration = Duration::from_secs(30);

/// The helper executable: `tern-delivery` next to the running program (Tern's programs
/// find each other next to their own executable; daemon_directory holds Postfix's).
pub fn helper_path() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| io::Error::other("executable without a directory"))?;
    Ok(dir.join("tern-delivery"))
}

/// The control socket to a running supervisor.
#[derive(Debug)]
pub struct Control {
    stream: Mutex<UnixStream>,
    child: Mutex<Child>,
    pid: u32,
}

impl Control {
    /// Starts `exe supervisor -c CONFIG_DIR` with a control socket as its standard input
    /// and `stderr` as its standard error.
    pub fn start(exe: &Path, config_dir: &Path, stderr: Stdio) -> io::Result<Control> {
        let (ours, theirs) = pair()?;
        let child = Command::new(exe)
            .arg("supervisor")
            // postfix(1) exports MAIL_CONFIG to every daemon (import_environment).
            .env("MAIL_CONFIG", config_dir)
            .arg("-c")
            .arg(config_dir)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", exe.display())))?;
        ours.set_read_timeout(Some(SPAWN_WAIT))?;
        ours.set_write_timeout(Some(SPAWN_WAIT))?;
        Ok(Control {
            pid: child.id(),
            stream: Mutex::new(ours),
            child: Mutex::new(child),
        })
    }

    /// The supervisor's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the supervisor is still running (collects it when not).
    pub fn running(&self) -> bool {
        let mut c = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        matches!(c.try_wait(), Ok(None))
    }

    /// Has a worker started; returns its pid and the daemon's end of its socket (blocking,
    /// close-on-exec). Waits at most [`SPAWN_WAIT`] for each read and write.
    pub fn spawn_worker(&self) -> io::Result<(u32, UnixStream)> {
        let (ours, theirs) = pair()?;
        let s = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes = wire::encode(&Frame::Spawn);
        let fds = [theirs.as_raw_fd()];
        let sent = sendmsg::<()>(
            s.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        if sent < bytes.len() {
            (&*s).write_all(&bytes[sent..])?;
        }
        // The worker's end now lives in the supervisor (and soon the worker) only.
        drop(theirs);
        match wire::read_frame(&mut &*s)? {
            Some(Frame::Spawned(pid)) => Ok((pid, ours)),
            Some(Frame::SpawnFailed(text)) => Err(io::Error::other(text)),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the delivery supervisor has gone",
            )),
            Some(_) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unexpected frame from the delivery supervisor",
            )),
        }
    }
}

/// A connected pair of stream sockets, close-on-exec.
fn pair() -> io::Result<(UnixStream, UnixStream)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((UnixStream::from(a), UnixStream::from(b)))
}
