//! The sockets in `$queue_directory/public/` that local commands use to reach the
//! daemon, as Postfix's master makes them for master.cf's `unix` services that commands
//! talk to: `public/pickup` (postdrop's wake-up after a submission), `public/qmgr`
//! (`postqueue -f`, `sendmail -q`) and `public/flush` (`postqueue -s`/`-i`: the fast
//! flush service, [`crate::flush`]).
//!
//! A trigger is Postfix's: the client connects, writes a few request bytes and a NUL,
//! and waits for the server to close (mail_trigger(3), unix_trigger.c). For `qmgr` the bytes are qmgr's requests (qmgr(8), mail_flush.c):
//! `F` (forget dead destinations), `A` (scan all, ignoring time stamps), `D` (scan the
//! deferred queue), `I` (scan the incoming queue), `W` (wake up). Tern's queue manager
//! learns of new mail in memory, so `I` and `W` need nothing; `A`, `D` and `F` make
//! every deferred message due now ([`QmgrHandle::flush`]).
//!
//! # Security
//! `public/` is mode 0710, owned by mail_owner with group setgid_group (postdrop): only
//! the set-gid commands and mail_owner reach these sockets. The sockets themselves are
//! 0666 in it, as Postfix's. A connection is read for at most [`TRIGGER_MAX`] bytes and
//! [`TRIGGER_TIMEOUT`]; its bytes only select among the requests above.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::UnixListener;

use tern_maillog::{Ident, Line, Logger};
use tern_queue::QueueLayout;

use crate::qmgr::QmgrHandle;

/// The most bytes read from one trigger connection.
pub const TRIGGER_MAX: usize = 100;
/// How long a trigger connection may take to send its bytes (trigger_timeout).
pub const TRIGGER_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `public/NAME` (a stale socket file from an earlier run is replaced). Call on
/// the runtime that will serve it.
pub fn bind(layout: &QueueLayout, name: &str) -> io::Result<UnixListener> {
    let path = layout.root().join("public").join(name);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// Whether master.cf has a `unix` (or `fifo`) service whose command is `command`.
fn has_service(config: &tern_config::config::Config, command: &str) -> bool {
    config.master.services.iter().any(|s| {
        s.command.rsplit('/').next() == Some(command) && (s.kind == "unix" || s.kind == "fifo")
    })
}

/// Serves `public/qmgr`: each connection's request bytes, then the action.
pub fn serve_qmgr(listener: UnixListener, qmgr: QmgrHandle) {
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let qmgr = qmgr.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; TRIGGER_MAX];
                let mut got = 0;
                let read = tokio::time::timeout(TRIGGER_TIMEOUT, async {
                    // Postfix's client ends its request with a NUL byte and waits for
                    // the server to close (unix_trigger.c); a closed connection ends it
                    // too.
                    while got < buf.len() && !buf[..got].contains(&0) {
                        match conn.read(&mut buf[got..]).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got += n,
                        }
                    }
                })
                .await;
                let _ = read;
                if wants_flush(&buf[..got]) {
                    qmgr.flush();
                }
            });
        }
    });
}

/// Whether qmgr request bytes ask for the deferred queue now (`F`, `A` or `D`).
pub fn wants_flush(request: &[u8]) -> bool {
    request.iter().any(|b| matches!(b, b'F' | b'A' | b'D'))
}

/// Starts what local commands talk to, on the current runtime: `public/qmgr` (the
/// queue manager runs) and, when master.cf has a `pickup` service, pickup with its
/// `public/pickup`. A socket that cannot be made is logged; pickup then still scans
/// maildrop/ every wakeup interval.
pub fn start(
    config: &tern_config::config::Config,
    layout: &QueueLayout,
    qmgr: &QmgrHandle,
    logger: &Arc<Logger>,
    ident: &Ident,
) {
    let warn = |what: &str, e: &dyn std::fmt::Display| {
        logger.log(ident, &Line::warning(format!("{what}: {e}")));
    };
    match bind(layout, "qmgr") {
        Ok(l) => serve_qmgr(l, qmgr.clone()),
        Err(e) => warn("bind public/qmgr", &e),
    }
    // The fast flush service, when master.cf has a `flush` service (as Postfix's).
    if let Some(flush) = qmgr.flush_service()
        && has_service(config, "flush")
    {
        match bind(layout, "flush") {
            Ok(l) => Arc::clone(flush).serve(l),
            Err(e) => warn("bind public/flush", &e),
        }
    }
    let Some(wakeup) = crate::pickup::wanted(config) else {
        return;
    };
    match crate::pickup::Pickup::new(config, qmgr, logger, wakeup) {
        Ok(p) => {
            let listener = match bind(layout, "pickup") {
                Ok(l) => Some(l),
                Err(e) => {
                    warn("bind public/pickup", &e);
                    None
                }
            };
            Arc::new(p).spawn(listener);
        }
        Err(e) => warn("pickup", &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let table: &[(&[u8], bool)] = &[
            (b"FADI", true),
            (b"I", false),
            (b"W", false),
            (b"D", true),
            (b"", false),
            (b"\0\xff", false),
        ];
        for (bytes, want) in table {
            assert_eq!(wants_flush(bytes), *want, "{bytes:?}");
        }
    }
}
