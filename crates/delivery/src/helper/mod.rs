//! The delivery helper: the one part of Tern that keeps root (docs/architecture.md), as
//! two single-threaded programs in the `tern-delivery` executable.
//!
//! - `tern-delivery supervisor -c CONFIG_DIR` ([`supervisor`]): started by the daemon
//!   before it drops to mail_owner, with a control socket as its standard input. Each
//!   [`Frame::Spawn`](crate::wire::Frame::Spawn) brings one end of a socket pair the
//!   daemon made (SCM_RIGHTS); the supervisor starts a worker with it as the worker's
//!   standard input and answers with the worker's pid. So the daemon can have workers
//!   started (and replaced after a crash) at any time although it cannot become root
//!   again, and it only ever holds descriptors it made itself.
//! - `tern-delivery worker -c CONFIG_DIR` ([`worker`]): loads main.cf and master.cf, and
//!   serves one [`DeliveryRequest`](crate::request::DeliveryRequest) at a time from its
//!   socket: local(8), virtual(8) or pipe(8), with the recipient's rights.
//! - [`client`]: the daemon's end of the control socket (start the supervisor, have a
//!   worker started on a new socket pair).
//!
//! Started by an ordinary user, the same processes run with that user's ids and no
//! switching happens ([`crate::privs`]).
//!
//! # Security
//! The daemon is less trusted than the helper: a worker checks each request against its
//! own configuration (the transport must be a master.cf service of the agent's kind; the
//! queue file must be a plain file inside queue_directory, reached without symlinks, and
//! owned by mail_owner) and takes no path, command or user from the request otherwise.
//! Frames are decoded by [`crate::wire`], which refuses malformed or oversized input. The
//! supervisor only ever starts its own executable; it reads nothing but `Spawn` frames.
//! Both are single-threaded, because switching ids in a threaded process would switch
//! every thread ([`crate::privs`]).

pub mod client;
pub mod supervisor;
pub mod worker;

use std::ffi::OsString;
use std::path::PathBuf;

/// Why a helper process stops (printed as `tern-delivery: fatal: ...`).
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("usage: tern-delivery supervisor|worker -c config_directory")]
    Usage,
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("unexpected frame on the {0} socket")]
    Unexpected(&'static str),
}

impl HelperError {
    pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> HelperError {
        move |source| HelperError::Io { what, source }
    }
}

/// The `tern-delivery` program: `supervisor` or `worker`, with `-c DIR`. Returns the exit
/// status.
pub fn main(args: &[OsString]) -> i32 {
    let result = parse(args).and_then(|(role, dir)| match role.as_str() {
        "supervisor" => supervisor::run(&dir),
        "worker" => worker::run(&dir),
        _ => Err(HelperError::Usage),
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tern-delivery: fatal: {e}");
            1
        }
    }
}

fn parse(args: &[OsString]) -> Result<(String, PathBuf), HelperError> {
    match args {
        [_, role, c, dir] if c == "-c" => Ok((
            role.to_str().ok_or(HelperError::Usage)?.to_owned(),
            PathBuf::from(dir),
        )),
        _ => Err(HelperError::Usage),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let ok = parse(&["x", "worker", "-c", "/etc/postfix"].map(OsString::from)).unwrap();
        assert_eq!(ok, ("worker".into(), PathBuf::from("/etc/postfix")));
        for bad in [&["x"][..], &["x", "worker"], &["x", "worker", "-x", "/d"]] {
            let args: Vec<OsString> = bad.iter().map(OsString::from).collect();
            assert!(matches!(parse(&args), Err(HelperError::Usage)), "{bad:?}");
        }
    }
}
