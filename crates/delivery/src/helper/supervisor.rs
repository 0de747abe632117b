//! `tern-delivery supervisor`: starts workers on the daemon's request (see the
//! [module doc](super)).
//!
//! The loop: wait up to a second for a frame on the control socket (standard input at
//! start), collect finished workers (so that none stays a zombie for long), and answer
//! each `Spawn`, which carries the worker's end of a socket pair as SCM_RIGHTS ancillary
//! data, by starting `tern-delivery worker` with that socket as its standard input:
//! `Spawned(pid)`, or `SpawnFailed(reason)`. The end of the control socket (the daemon
//! exited) ends the supervisor; each worker ends when its own socket closes.
//!
//! The received descriptor is moved onto descriptor 0 for the start of the worker (the
//! process is single-threaded, and its own control socket lives elsewhere by then), so
//! that the child inherits it without any descriptor juggling in the child.
//!
//! # Security
//! Runs as root when the daemon was started by root. It reads only frames from the
//! control socket, refuses any but `Spawn`, and only ever runs its own executable with
//! the configuration directory it was given. The descriptor it receives is the daemon's
//! own; it is closed here once the worker has it.

use std::fs::File;
use std::io::{self, IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
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
    let null = File::open("/dev/null").map_err(HelperError::io("/dev/null"))?;
    // From now on descriptor 0 is /dev/null between workers.
    nix::unistd::dup2(null.as_raw_fd(), 0).map_err(|e| HelperError::Io {
        what: "dup2",
        source: e.into(),
    })?;
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
        let Some((frame, fd)) = receive(&control)? else {
            return Ok(());
        };
        let answer = match (frame, fd) {
            (Frame::Spawn, Some(fd)) => spawn(&exe, config_dir, &fd, &null),
            (Frame::Spawn, None) => Frame::SpawnFailed("no socket came with the request".into()),
            _ => return Err(HelperError::Unexpected("control")),
        };
        wire::write_frame(&mut &control, &answer).map_err(HelperError::io("control socket"))?;
    }
}

/// A descriptor received with SCM_RIGHTS: closed on drop.
struct Received(RawFd);

impl Drop for Received {
    fn drop(&mut self) {
        // The descriptor came to this process by SCM_RIGHTS and nothing else owns it.
        let _ = nix::unistd::close(self.0);
    }
}

/// Reads one frame and the descriptor that came with it; `None` at the end of the
/// stream.
fn receive(control: &UnixStream) -> Result<Option<(Frame, Option<Received>)>, HelperError> {
    let mut header = [0u8; wire::HEADER];
    let mut fd = None;
    let n = {
        let mut iov = [IoSliceMut::new(&mut header)];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            control.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| HelperError::Io {
            what: "recvmsg",
            source: e.into(),
        })?;
        // A truncated control message (more descriptors than asked for) is refused; the
        // kernel closes what did not fit.
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(list) = c {
                    for raw in list {
                        let r = Received(raw);
                        if fd.is_none() {
                            fd = Some(r);
                        }
                    }
                }
            }
        }
        msg.bytes
    };
    if n == 0 {
        return Ok(None);
    }
    let mut data = header[..n].to_vec();
    loop {
        match wire::decode(&data).map_err(|e| HelperError::Io {
            what: "control socket",
            source: wire::invalid(e),
        })? {
            Some((frame, used)) if used == data.len() => return Ok(Some((frame, fd))),
            Some(_) => return Err(HelperError::Unexpected("control")),
            None => {
                let want = wire::payload_len(&data)
                    .ok()
                    .flatten()
                    .map_or(wire::HEADER, |l| wire::HEADER + l);
                let mut more = vec![0u8; want.saturating_sub(data.len()).max(1)];
                let got = (&*control)
                    .read(&mut more)
                    .map_err(HelperError::io("control socket"))?;
                if got == 0 {
                    return Err(HelperError::Io {
                        what: "control socket",
                        source: io::ErrorKind::UnexpectedEof.into(),
                    });
                }
                data.extend_from_slice(&more[..got]);
            }
        }
    }
}

/// Starts one worker on the socket `fd`.
fn spawn(exe: &Path, config_dir: &Path, fd: &Received, null: &File) -> Frame {
    let started = nix::unistd::dup2(fd.0, 0)
        .map_err(io::Error::from)
        .and_then(|_| {
            Command::new(exe)
                .arg("worker")
                .arg("-c")
                .arg(config_dir)
                .stdin(Stdio::inherit())
                .stdout(Stdio::null())
                .spawn()
        });
    // Descriptor 0 back to /dev/null: the socket is the worker's and the daemon's alone.
    let _ = nix::unistd::dup2(null.as_raw_fd(), 0);
    match started {
        Ok(child) => Frame::Spawned(child.id()),
        Err(e) => Frame::SpawnFailed(format!("cannot start a delivery worker: {e}")),
    }
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
