//! A small syslog client: one datagram per line to /dev/log, as glibc's syslog(3) sends
//! them for Postfix (`<PRI>MMM dd HH:MM:SS ident[pid]: text`, no newline; RFC 3164
//! section 4.1).
//!
//! The socket is connected lazily and again after a failed send (syslogd restarted);
//! when /dev/log is missing the line is dropped, as syslog(3) drops it. Reconnection is
//! tried at most once per line, so a missing syslogd costs one failed connect per line.
//!
//! Trust: the facility name comes from main.cf; the socket path from the caller.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Where syslogd listens.
pub const DEV_LOG: &str = "/dev/log";

/// The facility code (the value before `* 8`) for a `syslog_facility` name, with the
/// names Postfix accepts on Linux (util/msg_syslog.c); `None` for others.
pub fn facility_code(name: &str) -> Option<u8> {
    const FACILITIES: [(&str, u8); 20] = [
        ("auth", 4),
        ("authpriv", 10),
        ("cron", 9),
        ("daemon", 3),
        ("ftp", 11),
        ("kern", 0),
        ("lpr", 6),
        ("mail", 2),
        ("news", 7),
        ("syslog", 5),
        ("user", 1),
        ("uucp", 8),
        ("local0", 16),
        ("local1", 17),
        ("local2", 18),
        ("local3", 19),
        ("local4", 20),
        ("local5", 21),
        ("local6", 22),
        ("local7", 23),
    ];
    FACILITIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, code)| *code)
}

/// A datagram connection to syslogd.
#[derive(Debug)]
pub(crate) struct Syslog {
    path: PathBuf,
    facility: u8,
    socket: Option<UnixDatagram>,
}

impl Syslog {
    pub(crate) fn new(path: &Path, facility: u8) -> Self {
        Self {
            path: path.to_path_buf(),
            facility,
            socket: None,
        }
    }

    pub(crate) fn facility(&self) -> u8 {
        self.facility
    }

    /// Sends one datagram; on failure reconnects once and sends again; then gives up.
    pub(crate) fn send(&mut self, datagram: &[u8]) {
        for _ in 0..2 {
            if self.socket.is_none() {
                self.socket = self.connect();
            }
            let Some(socket) = &self.socket else { return };
            if socket.send(datagram).is_ok() {
                return;
            }
            self.socket = None;
        }
    }

    pub(crate) fn disconnect(&mut self) {
        self.socket = None;
    }

    fn connect(&self) -> Option<UnixDatagram> {
        let socket = UnixDatagram::unbound().ok()?;
        socket.connect(&self.path).ok()?;
        Some(socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facilities() {
        let cases = [
            ("mail", Some(2)),
            ("local7", Some(23)),
            ("daemon", Some(3)),
            ("Mail", None),
            ("", None),
        ];
        for (name, code) in cases {
            assert_eq!(facility_code(name), code, "{name}");
        }
    }

    #[test]
    fn sends_and_survives_a_missing_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut client = Syslog::new(&path, 2);
        client.send(b"dropped"); // no listener yet: dropped, no panic
        let server = UnixDatagram::bind(&path).unwrap();
        client.send(b"<22>hello");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<22>hello");
        // syslogd restarts: the old connection fails, the client reconnects.
        drop(server);
        std::fs::remove_file(&path).unwrap();
        let server = UnixDatagram::bind(&path).unwrap();
        client.send(b"<22>again");
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<22>again");
    }
}
