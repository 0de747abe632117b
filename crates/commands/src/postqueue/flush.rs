//! `postqueue -f`, `-i` and `-s`: the requests postqueue sends to a running mail system.
//!
//! - `-f` (flush_queue): the trigger bytes of global/mail_flush.c to `public/qmgr`:
//!   QMGR_REQ_FLUSH_DEAD `F`, QMGR_REQ_SCAN_ALL `A`, QMGR_REQ_SCAN_DEFERRED `D`,
//!   QMGR_REQ_SCAN_INCOMING `I`; then TRIGGER_REQ_WAKEUP `W` to `public/pickup`. A trigger
//!   (mail_trigger.c, unix_trigger.c) is a connect, the request bytes and one NUL, and a
//!   wait of up to two seconds for the server to close (postqueue's event_drain(2)). A
//!   missing socket is `warning: unable to look up public/qmgr: ...`; a refused
//!   connection says nothing; either way `fatal: Cannot flush mail queue - mail system
//!   is down`.
//! - `-i ID` and `-s SITE` (global/flush_clnt.c): a request to the fast flush service at
//!   `public/flush`, in the attribute protocol (mail_command_client.c): the server greets
//!   with `protocol=queue_flush_protocol`, the client sends `request=send_file,
//!   queue_id=ID` or `request=send_site, site=SITE`, the server answers `status=N`
//!   (0 done, 3 bad request, 4 denied). `-s` asks only for a site in fast_flush_domains.
//!
//! Security: what the servers send is bounded (a few attributes of [`MAX_ATTR`] bytes)
//! and every read and write has a timeout.

use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// mail_flush_deferred's request bytes.
pub const QMGR_FLUSH: &[u8] = b"FADI";
/// mail_flush_maildrop's request: TRIGGER_REQ_WAKEUP.
pub const PICKUP_WAKEUP: &[u8] = b"W";

/// Postfix's FLUSH_STAT_* codes.
pub const FLUSH_STAT_FAIL: i64 = -1;
pub const FLUSH_STAT_OK: i64 = 0;
pub const FLUSH_STAT_BAD: i64 = 3;
pub const FLUSH_STAT_DENY: i64 = 4;

/// var_trigger_timeout's default, and the ipc timeout used for the flush service.
const TIMEOUT: Duration = Duration::from_secs(10);

/// event_drain(2).
const DRAIN: Duration = Duration::from_secs(2);

/// The longest attribute name or value read from the flush service.
const MAX_ATTR: usize = 1024;

/// mail_trigger(): `Err(warning)` when the socket is missing or not a socket (the
/// warning to print), `Ok(false)` when it cannot be reached, `Ok(true)` when sent.
pub fn trigger(queue_dir: &Path, service: &str, request: &[u8]) -> Result<bool, String> {
    let rel = format!("public/{service}");
    let path = queue_dir.join(&rel);
    match std::fs::metadata(&path) {
        Err(e) => {
            return Err(format!(
                "unable to look up {rel}: {}",
                tern_config::text::errno_text(&e)
            ));
        }
        Ok(m) if !m.file_type().is_socket() && !m.file_type().is_fifo() => {
            return Err(format!("{rel} is not a socket or a fifo"));
        }
        Ok(m) if m.file_type().is_fifo() => {
            // Postfix writes to a fifo without waiting; Tern's daemon makes sockets.
            return Ok(write_fifo(&path, request));
        }
        Ok(_) => {}
    }
    let Ok(mut s) = UnixStream::connect(&path) else {
        return Ok(false);
    };
    let _ = s.set_write_timeout(Some(TIMEOUT));
    let mut bytes = request.to_vec();
    bytes.push(0);
    // unix_trigger: a failed write is not an error (only logged with -v).
    let _ = s.write_all(&bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    drain(&mut s);
    Ok(true)
}

/// Waits until the server closes, at most [`DRAIN`].
fn drain(s: &mut UnixStream) {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    while let Some(left) = DRAIN.checked_sub(start.elapsed()) {
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match s.read(&mut buf) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

fn write_fifo(path: &Path, request: &[u8]) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
    else {
        return false;
    };
    f.write_all(request).is_ok()
}

/// mail_command_client() to `public/flush` with `attrs`; returns the status, or
/// FLUSH_STAT_FAIL after printing Postfix's warning (through `warn`).
pub fn flush_request(queue_dir: &Path, attrs: &[(&str, &str)], warn: &dyn Fn(String)) -> i64 {
    let rel = "public/flush";
    let path = queue_dir.join(rel);
    let mut s = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e) => {
            warn(format!(
                "connect to {rel}: {}",
                tern_config::text::errno_text(&e)
            ));
            return FLUSH_STAT_FAIL;
        }
    };
    let _ = s.set_read_timeout(Some(TIMEOUT));
    let _ = s.set_write_timeout(Some(TIMEOUT));
    let sock = format!("{rel} socket");
    let mut r = AttrReader::new(&mut s);
    match r.list() {
        Some(l) if l == [("protocol".to_owned(), "queue_flush_protocol".to_owned())] => {}
        _ => {
            warn(format!("read {sock}: {}", last_error()));
            return FLUSH_STAT_FAIL;
        }
    }
    let mut req = Vec::new();
    for (name, value) in attrs {
        req.extend_from_slice(name.as_bytes());
        req.push(0);
        req.extend_from_slice(value.as_bytes());
        req.push(0);
    }
    req.push(0);
    if s.write_all(&req).is_err() {
        warn(format!("write {sock}: {}", last_error()));
        return FLUSH_STAT_FAIL;
    }
    let mut r = AttrReader::new(&mut s);
    if let Some([(name, value)]) = r.list().as_deref()
        && name == "status"
        && let Ok(n) = value.parse::<i64>()
    {
        return n;
    }
    warn(format!("write/read {sock}: {}", last_error()));
    FLUSH_STAT_FAIL
}

/// `%m` after a failed exchange: the last OS error, or "Success" as Postfix prints when
/// the peer merely sent the wrong thing.
fn last_error() -> String {
    tern_config::text::errno_text(&std::io::Error::last_os_error())
}

/// Reads one attribute list (attr_scan0): pairs of NUL-terminated strings up to an empty
/// name, with at most 16 pairs of [`MAX_ATTR`] bytes each.
struct AttrReader<'a> {
    s: &'a mut UnixStream,
}

impl<'a> AttrReader<'a> {
    fn new(s: &'a mut UnixStream) -> Self {
        Self { s }
    }

    fn list(&mut self) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        for _ in 0..16 {
            let name = self.string()?;
            if name.is_empty() {
                return Some(out);
            }
            let value = self.string()?;
            out.push((name, value));
        }
        None
    }

    /// Byte by byte: the replies are a few dozen bytes, and nothing may be read past
    /// the list (the next list follows on the same socket).
    fn string(&mut self) -> Option<String> {
        let mut out = Vec::new();
        let mut b = [0u8; 1];
        loop {
            match self.s.read(&mut b) {
                Ok(1) if b[0] == 0 => return Some(String::from_utf8_lossy(&out).into_owned()),
                Ok(1) if out.len() < MAX_ATTR => out.push(b[0]),
                _ => return None,
            }
        }
    }
}

/// valid_hostname(): labels of letters, digits, `-` and `_`, no label starting or ending
/// with `-`, at most 63 bytes a label and 255 in all, not all numeric.
pub fn valid_hostname(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut non_numeric = false;
    for label in name.split('.') {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
        non_numeric |= label.bytes().any(|b| !b.is_ascii_digit());
    }
    non_numeric
}

/// valid_mailhost_literal(): `[IPv4]` or `[IPv6:address]`.
pub fn valid_mailhost_literal(site: &str) -> bool {
    let Some(inner) = site.strip_prefix('[').and_then(|s| s.strip_suffix(']')) else {
        return false;
    };
    match inner.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("ipv6:") => {
            inner[5..].parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => inner.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let table = [
            ("example.com", true),
            ("a-b.example_x.com", true),
            ("1234", false),
            ("1.2.3.4", false),
            ("bad..site", false),
            ("-a.com", false),
            ("a b", false),
            ("", false),
        ];
        for (name, want) in table {
            assert_eq!(valid_hostname(name), want, "{name}");
        }
        let literals = [
            ("[1.2.3.4]", true),
            ("[IPv6:::1]", true),
            ("[1.2.3]", false),
            ("[example.com]", false),
            ("1.2.3.4", false),
        ];
        for (site, want) in literals {
            assert_eq!(valid_mailhost_literal(site), want, "{site}");
        }
    }

    #[test]
    fn trigger_bytes_reach_the_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("public")).expect("mkdir");
        let l =
            std::os::unix::net::UnixListener::bind(dir.path().join("public/qmgr")).expect("bind");
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut got = Vec::new();
            s.read_to_end(&mut got).expect("read");
            got
        });
        assert_eq!(trigger(dir.path(), "qmgr", QMGR_FLUSH), Ok(true));
        assert_eq!(t.join().expect("thread"), b"FADI\0");
        assert_eq!(
            trigger(dir.path(), "pickup", PICKUP_WAKEUP),
            Err("unable to look up public/pickup: No such file or directory".to_owned())
        );
    }
}
