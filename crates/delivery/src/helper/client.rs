//! The daemon's side of the helper: start the supervisor (before dropping root), ask it
//! for workers, receive their sockets.
//!
//! The calls here block (they are rare: one per worker started); the daemon makes them on
//! a blocking thread. The worker's socket comes back as a [`WorkerFd`], which closes the
//! descriptor when dropped; the daemon drives it with its own asynchronous I/O.
//!
//! # Security
//! Replies from the supervisor are decoded by [`crate::wire`]; a reply without exactly
//! the expected frame, or without a descriptor, is an error. Any extra descriptor that
//! arrives is closed at once.

use std::io::{self, IoSliceMut, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, socketpair,
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

/// A worker's socket, received from the supervisor: closed on drop.
#[derive(Debug)]
pub struct WorkerFd(RawFd);

impl AsRawFd for WorkerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Drop for WorkerFd {
    fn drop(&mut self) {
        // The descriptor came to this process by SCM_RIGHTS and nothing else owns it.
        let _ = nix::unistd::close(self.0);
    }
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
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        let child = Command::new(exe)
            .arg("supervisor")
            .arg("-c")
            .arg(config_dir)
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", exe.display())))?;
        let stream = UnixStream::from(ours);
        stream.set_read_timeout(Some(SPAWN_WAIT))?;
        stream.set_write_timeout(Some(SPAWN_WAIT))?;
        Ok(Control {
            pid: child.id(),
            stream: Mutex::new(stream),
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

    /// Has a worker started; returns its pid and socket. Blocks (at most [`SPAWN_WAIT`]
    /// for each read).
    pub fn spawn_worker(&self) -> io::Result<(u32, WorkerFd)> {
        let s = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
        wire::write_frame(&mut &*s, &Frame::Spawn)?;
        let mut buf = vec![0u8; 256];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let (n, fd) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<()>(
                s.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )?;
            let mut fd = None;
            for c in msg.cmsgs()? {
                if let ControlMessageOwned::ScmRights(list) = c {
                    for raw in list {
                        let w = WorkerFd(raw);
                        if fd.is_none() {
                            fd = Some(w);
                        }
                    }
                }
            }
            (msg.bytes, fd)
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the delivery supervisor has gone",
            ));
        }
        let mut data = buf[..n].to_vec();
        let frame = loop {
            match wire::decode(&data).map_err(wire::invalid)? {
                Some((frame, used)) if used == data.len() => break frame,
                Some(_) => return Err(wire::invalid(wire::WireError::Trailing(0))),
                None => {
                    let mut chunk = [0u8; 256];
                    let got = (&*s).read(&mut chunk)?;
                    if got == 0 {
                        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                    }
                    data.extend_from_slice(&chunk[..got]);
                }
            }
        };
        match frame {
            Frame::Spawned(pid) => fd
                .map(|f| (pid, f))
                .ok_or_else(|| io::Error::other("no socket came with the worker")),
            Frame::SpawnFailed(text) => Err(io::Error::other(text)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unexpected frame from the delivery supervisor",
            )),
        }
    }
}
