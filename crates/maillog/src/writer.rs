//! Where log lines go: `maillog_file`, syslog over /dev/log, or memory (for tests), behind
//! one [`Logger`] that every thread of the daemon shares.
//!
//! postconf(5) and MAILLOG_README: with `maillog_file` set, lines are appended to that file
//! (Postfix hands them to postlogd(8), which writes each with its newline and flushes);
//! the path must start with one of `maillog_file_prefixes` (default `/var, /dev/stdout`),
//! otherwise Postfix stops with `fatal: maillog_file value '...' does not match any prefix
//! in maillog_file_prefixes`. `/dev/stdout` is written as standard output (for
//! `postfix start-fg` in containers). Without `maillog_file`, lines go to syslog with the
//! `syslog_facility` (default `mail`).
//!
//! The file is opened `O_APPEND | O_CREAT`, mode 0644, refusing a symbolic link and
//! anything but a regular file (Postfix opens it with safe_open()). Each line is one
//! write(2) of the line and its newline, under a lock, so lines from different threads
//! never interleave. Log rotation: the caller renames the file and calls
//! [`Logger::reopen`] (on SIGHUP / `postfix reload` / `postfix logrotate`).
//!
//! Write errors are ignored as postlogd ignores them: a full disk must not stop mail.
//!
//! Trust: the path and parameters come from main.cf (trusted, owned by root); the lines
//! are built by this crate.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::line::Line;
use crate::prefix::{self, Ident, Timestamp};
use crate::syslog::Syslog;

pub use crate::localtime::local_utc_offset;
pub use crate::syslog::facility_code;

/// Errors opening the log. Their texts are Postfix's, without the `postfix: fatal: ` that
/// the caller prints before them.
#[derive(Debug, thiserror::Error)]
pub enum MaillogError {
    /// `maillog_file` does not start with any of `maillog_file_prefixes`.
    #[error("maillog_file value '{path}' does not match any prefix in maillog_file_prefixes")]
    PrefixMismatch { path: String },
    /// `syslog_facility` is not a facility name.
    #[error(
        "file {config_directory}/main.cf: parameter syslog_facility: unrecognized value: {value}"
    )]
    Facility {
        config_directory: String,
        value: String,
    },
    /// The file could not be opened (postlogd: `open logfile '...': ...`).
    #[error("open logfile '{}': {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
}

/// The main.cf parameters that choose and shape the log.
#[derive(Clone, Copy, Debug)]
pub struct LogConfig<'a> {
    /// `maillog_file`; empty for syslog.
    pub maillog_file: &'a str,
    /// `maillog_file_prefixes`.
    pub maillog_file_prefixes: &'a str,
    /// `syslog_facility`.
    pub syslog_facility: &'a str,
    /// `myhostname`; its first label is written in `maillog_file` lines.
    pub myhostname: &'a str,
    /// `config_directory`, named in error messages.
    pub config_directory: &'a str,
}

/// The shared logger. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Logger {
    myhostname: String,
    pid: u32,
    sink: Mutex<Sink>,
}

#[derive(Debug)]
enum Sink {
    File { path: PathBuf, file: Option<File> },
    Stdout,
    Syslog(Syslog),
    Memory(Vec<String>),
}

impl Logger {
    /// Opens the log `config` describes: `maillog_file` when set (checked against
    /// `maillog_file_prefixes`), syslog over /dev/log otherwise.
    pub fn open(config: &LogConfig<'_>) -> Result<Self, MaillogError> {
        let facility =
            facility_code(config.syslog_facility).ok_or_else(|| MaillogError::Facility {
                config_directory: config.config_directory.to_string(),
                value: config.syslog_facility.to_string(),
            })?;
        let sink = if config.maillog_file.is_empty() {
            Sink::Syslog(Syslog::new(Path::new(crate::syslog::DEV_LOG), facility))
        } else {
            check_prefix(config.maillog_file, config.maillog_file_prefixes)?;
            if config.maillog_file == "/dev/stdout" {
                Sink::Stdout
            } else {
                let path = PathBuf::from(config.maillog_file);
                let file = open_logfile(&path)?;
                Sink::File {
                    path,
                    file: Some(file),
                }
            }
        };
        Ok(Self::with_sink(config.myhostname, sink))
    }

    /// A logger that sends to a syslog socket at `path` (tests use a private socket).
    pub fn syslog_at(path: &Path, facility: u8, myhostname: &str) -> Self {
        Self::with_sink(myhostname, Sink::Syslog(Syslog::new(path, facility)))
    }

    /// A logger that keeps `maillog_file`-shaped lines in memory; see [`Logger::captured`].
    pub fn memory(myhostname: &str) -> Self {
        Self::with_sink(myhostname, Sink::Memory(Vec::new()))
    }

    /// Logs `line` under `ident` (such as `postfix/smtpd`) with the current time.
    pub fn log(&self, ident: &Ident, line: &Line) {
        self.log_at(Timestamp::now(), ident, line);
    }

    /// Logs `line` with a given time stamp (tests, and replays).
    pub fn log_at(&self, stamp: Timestamp, ident: &Ident, line: &Line) {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *sink {
            Sink::File { path, file } => {
                let mut text = prefix::file_line(stamp, &self.myhostname, ident, self.pid, line);
                text.push('\n');
                if file.is_none() {
                    *file = open_logfile(path).ok();
                }
                if let Some(f) = file {
                    // One write(2) per line; write_all loops only after a short write.
                    let _ = f.write_all(text.as_bytes());
                }
            }
            Sink::Stdout => {
                let mut text = prefix::file_line(stamp, &self.myhostname, ident, self.pid, line);
                text.push('\n');
                let _ = io::stdout().lock().write_all(text.as_bytes());
            }
            Sink::Syslog(syslog) => {
                let datagram =
                    prefix::syslog_datagram(syslog.facility(), stamp, ident, self.pid, line);
                syslog.send(datagram.as_bytes());
            }
            Sink::Memory(lines) => {
                lines.push(prefix::file_line(
                    stamp,
                    &self.myhostname,
                    ident,
                    self.pid,
                    line,
                ));
            }
        }
    }

    /// Closes and opens `maillog_file` again, after the caller has rotated it. For syslog,
    /// reconnects; a missing /dev/log is not an error (lines are then dropped, as syslog(3)
    /// drops them).
    pub fn reopen(&self) -> Result<(), MaillogError> {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *sink {
            Sink::File { path, file } => {
                *file = None;
                *file = Some(open_logfile(path)?);
            }
            Sink::Syslog(syslog) => syslog.disconnect(),
            Sink::Stdout | Sink::Memory(_) => {}
        }
        Ok(())
    }

    /// The lines a [`Logger::memory`] logger kept (empty for the others).
    pub fn captured(&self) -> Vec<String> {
        match &*self.sink.lock().unwrap_or_else(PoisonError::into_inner) {
            Sink::Memory(lines) => lines.clone(),
            _ => Vec::new(),
        }
    }

    fn with_sink(myhostname: &str, sink: Sink) -> Self {
        Self {
            myhostname: myhostname.to_string(),
            pid: std::process::id(),
            sink: Mutex::new(sink),
        }
    }
}

/// Postfix's check: `path` must start with one of the prefixes (a plain string prefix, so
/// `/var` admits `/variable`; the list is separated by commas and white space).
pub fn check_prefix(path: &str, prefixes: &str) -> Result<(), MaillogError> {
    let ok = prefixes
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|p| !p.is_empty())
        .any(|p| path.starts_with(p));
    if ok {
        Ok(())
    } else {
        Err(MaillogError::PrefixMismatch {
            path: path.to_string(),
        })
    }
}

/// Opens the log file for appending, creating it 0644; refuses symlinks and non-files.
fn open_logfile(path: &Path) -> Result<File, MaillogError> {
    let err = |source| MaillogError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(err)?;
    let kind = file.metadata().map_err(err)?.file_type();
    // A FIFO or character device (such as a terminal) is refused as safe_open() does;
    // /dev/stdout has its own sink.
    if !kind.is_file() || kind.is_fifo() {
        return Err(err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let cases = [
            ("/var/log/mail.log", "/var, /dev/stdout", true),
            ("/dev/stdout", "/var, /dev/stdout", true),
            ("/variable/x", "/var", true),
            ("/tmp/x", "/var, /dev/stdout", false),
            ("/tmp/x", "", false),
            ("/tmp/x", "/srv,\t/tmp", true),
        ];
        for (path, prefixes, ok) in cases {
            assert_eq!(
                check_prefix(path, prefixes).is_ok(),
                ok,
                "{path} {prefixes}"
            );
        }
        assert_eq!(
            check_prefix("/tmp/pf/maillog", "/var, /dev/stdout")
                .unwrap_err()
                .to_string(),
            "maillog_file value '/tmp/pf/maillog' does not match any prefix in maillog_file_prefixes"
        );
    }

    #[test]
    fn memory_logger_keeps_file_shaped_lines() {
        let logger = Logger::memory("mx.example.test");
        let stamp = Timestamp {
            month: 1,
            day: 2,
            hour: 3,
            minute: 4,
            second: 5,
        };
        logger.log_at(
            stamp,
            &Ident::new("postfix", "qmgr"),
            &crate::queue::removed("Q"),
        );
        let pid = std::process::id();
        assert_eq!(
            logger.captured(),
            [format!(
                "Jan 02 03:04:05 mx postfix/qmgr[{pid}]: Q: removed"
            )]
        );
    }
}
