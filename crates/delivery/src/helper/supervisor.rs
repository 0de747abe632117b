//! `tern-delivery supervisor`: starts workers on the daemon's request and hands their
//! sockets over (see the [module doc](super)).
//!
//! The loop: wait up to a second for a frame on the control socket (standard input),
//! collect finished workers (so that none stays a zombie for long), and answer each
//! `Spawn` with `Spawned(pid)` and the daemon's end of a fresh socket pair as SCM_RIGHTS
//! ancillary data, or `SpawnFailed(reason)`. The end of the control socket (the daemon
//! exited) ends the supervisor; each worker ends when its own socket closes.
//!
//! # Security
//! Runs as root when the daemon was started by root. It reads only frames from the
//! control socket, refuses any but `Spawn`, and only ever runs its own executable with
//! the configuration directory it was given.

use std::io::{self, IoSlice, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, sendmsg, socketpair,
};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::HelperError;
use crate::wire::{self, Frame};

/// Runs the supervisor until the control socket closes.
pub fn run(config_dir: &Path) -> Result<(), HelperError> {
    let control = UnixStream::from(
        io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(HelperError::io("control socket"))?,
    );
    let exe = std::env::current_exe().map_err(HelperError::io("current_exe"))?;
    loop {
        reap();
        let mut fds = [PollFd::new(control.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, 1000u16) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => {
                return Err(HelperError::Io {
                    what: "poll",
                    source: e.into(),
                });
            }
        }
        match wire::read_frame(&mut &control).map_err(HelperError::io("control socket"))? {
            None => return Ok(()),
            Some(Frame::Spawn) => spawn(&control, &exe, config_dir)?,
            Some(_) => return Err(HelperError::Unexpected("control")),
        }
    }
}

/// Starts one worker and sends its socket to the daemon.
fn spawn(control: &UnixStream, exe: &Path, config_dir: &Path) -> Result<(), HelperError> {
    let started = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)
    .and_then(|(daemon_end, worker_end)| {
        let child = Command::new(exe)
            .arg("worker")
            .arg("-c")
            .arg(config_dir)
            .stdin(Stdio::from(worker_end))
            .stdout(Stdio::null())
            .spawn()?;
        Ok((child.id(), daemon_end))
    });
    let (pid, daemon_end) = match started {
        Ok(x) => x,
        Err(e) => {
            let frame = Frame::SpawnFailed(format!("cannot start a delivery worker: {e}"));
            return wire::write_frame(&mut &*control, &frame)
                .map_err(HelperError::io("control socket"));
        }
    };
    let bytes = wire::encode(&Frame::Spawned(pid));
    let fds = [daemon_end.as_raw_fd()];
    let sent = sendmsg::<()>(
        control.as_raw_fd(),
        &[IoSlice::new(&bytes)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| HelperError::Io {
        what: "sendmsg",
        source: e.into(),
    })?;
    // A short send leaves the rest of the frame (the descriptor went with the first byte).
    if sent < bytes.len() {
        (&*control)
            .write_all(&bytes[sent..])
            .map_err(HelperError::io("control socket"))?;
    }
    // Our copy of the daemon's end closes here: the worker's socket is then shared by the
    // daemon and the worker alone.
    drop(daemon_end);
    Ok(())
}

/// Collects every finished child without waiting.
fn reap() {
    for _ in 0..1024 {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
