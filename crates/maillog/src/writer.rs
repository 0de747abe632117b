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
//! anything but a regular file (Postfix opens it with safe_open()). Lines are whole in
//! the file, in the order they were logged, never interleaved. They are written by a
//! writer thread: the first line after a quiet spell is written at once, and the lines of
//! a busy spell are gathered for up to [`GATHER`] and written together, so a loaded
//! daemon pays one write(2) per batch instead of one per line (4-5 lines per message);
//! the thread is woken only when it is idle. [`Logger::flush`] writes what is pending
//! (the daemon calls it before it exits); a crash loses at most the last [`GATHER`] of
//! lines, as a datagram to postlogd(8) can be lost. Log rotation: the caller renames the
//! file and calls [`Logger::reopen`] (on SIGHUP / `postfix reload` / `postfix logrotate`).
//!
//! Write errors are ignored as postlogd ignores them: a full disk must not stop mail.
//!
//! Trust: the path and parameters come from main.cf (trusted, owned by root); the lines
//! are built by this crate.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

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

/// How long the writer thread gathers the lines of a busy spell before it writes them.
pub const GATHER: Duration = Duration::from_millis(1);

/// Lines above this many pending bytes are written by the logging thread itself (a bound
/// on memory if the writer thread falls behind).
const PENDING_MAX: usize = 256 * 1024;

/// The shared logger. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Logger {
    myhostname: String,
    pid: u32,
    sink: Mutex<Sink>,
    /// The writer thread of a `maillog_file` sink.
    batch: Option<Arc<Batch>>,
}

/// Lines waiting for the writer thread, and the file they go to.
#[derive(Debug)]
struct Batch {
    state: Mutex<Pending>,
    wake: Condvar,
    /// The file; held while a batch is written, so that writes (and reopen) keep order.
    file: Mutex<FileSink>,
}

#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    /// The writer thread waits for a line (a logger must wake it).
    idle: bool,
    stop: bool,
}

#[derive(Debug)]
struct FileSink {
    path: PathBuf,
    file: Option<File>,
}

impl FileSink {
    fn write(&mut self, bytes: &[u8]) {
        if self.file.is_none() {
            self.file = open_logfile(&self.path).ok();
        }
        if let Some(f) = &mut self.file {
            // write_all loops only after a short write.
            let _ = f.write_all(bytes);
        }
    }
}

impl Batch {
    fn start(path: PathBuf, file: File) -> Arc<Self> {
        let batch = Arc::new(Self {
            state: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            file: Mutex::new(FileSink {
                path,
                file: Some(file),
            }),
        });
        let b = Arc::clone(&batch);
        // Without the thread (it could not be made), lines are written as they come.
        if thread::Builder::new()
            .name("maillog".into())
            .spawn(move || b.run())
            .is_err()
        {
            batch
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .stop = true;
        }
        batch
    }

    fn push(&self, line: &[u8]) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.stop || st.bytes.len() >= PENDING_MAX {
            drop(st);
            self.write_pending_and(line);
            return;
        }
        st.bytes.extend_from_slice(line);
        if st.idle {
            st.idle = false;
            self.wake.notify_one();
        }
    }

    /// Writes what is pending now.
    fn flush(&self) {
        self.write_pending_and(b"");
    }

    /// Writes what is pending, then `line`. Locks are always taken file first, then
    /// pending, so that batches reach the file in the order they were taken.
    fn write_pending_and(&self, line: &[u8]) {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let pending = std::mem::take(
            &mut self
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .bytes,
        );
        file.write(&pending);
        if !line.is_empty() {
            file.write(line);
        }
    }

    fn run(&self) {
        loop {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            while st.bytes.is_empty() && !st.stop {
                st.idle = true;
                st = self.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
            st.idle = false;
            let stop = st.stop;
            drop(st);
            self.flush();
            if stop {
                return;
            }
            // A busy spell: let its lines gather before the next write.
            thread::sleep(GATHER);
        }
    }

    fn stop(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.stop = true;
        self.wake.notify_one();
        drop(st);
        self.flush();
    }
}

#[derive(Debug)]
enum Sink {
    /// `maillog_file`: the lines go through [`Logger::batch`].
    File,
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
                let mut logger = Self::with_sink(config.myhostname, Sink::File);
                logger.batch = Some(Batch::start(path, file));
                return Ok(logger);
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

    /// Logs `line` for another process of the mail system (a delivery agent's
    /// `postfix/local[PID]` lines, which the daemon writes for it).
    pub fn log_pid(&self, ident: &Ident, pid: u32, line: &Line) {
        self.write(Timestamp::now(), ident, pid, line);
    }

    /// Logs `line` with a given time stamp (tests, and replays).
    pub fn log_at(&self, stamp: Timestamp, ident: &Ident, line: &Line) {
        self.write(stamp, ident, self.pid, line);
    }

    fn write(&self, stamp: Timestamp, ident: &Ident, pid: u32, line: &Line) {
        if let Some(batch) = &self.batch {
            let mut text = prefix::file_line(stamp, &self.myhostname, ident, pid, line);
            text.push('\n');
            batch.push(text.as_bytes());
            return;
        }
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *sink {
            Sink::File => {}
            Sink::Stdout => {
                let mut text = prefix::file_line(stamp, &self.myhostname, ident, pid, line);
                text.push('\n');
                let _ = io::stdout().lock().write_all(text.as_bytes());
            }
            Sink::Syslog(syslog) => {
                let datagram = prefix::syslog_datagram(syslog.facility(), stamp, ident, pid, line);
                syslog.send(datagram.as_bytes());
            }
            Sink::Memory(lines) => {
                lines.push(prefix::file_line(stamp, &self.myhostname, ident, pid, line));
            }
        }
    }

    /// Closes and opens `maillog_file` again, after the caller has rotated it. For syslog,
    /// reconnects; a missing /dev/log is not an error (lines are then dropped, as syslog(3)
    /// drops them).
    pub fn reopen(&self) -> Result<(), MaillogError> {
        if let Some(batch) = &self.batch {
            batch.flush();
            let mut f = batch.file.lock().unwrap_or_else(PoisonError::into_inner);
            f.file = None;
            f.file = Some(open_logfile(&f.path)?);
            return Ok(());
        }
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *sink {
            Sink::Syslog(syslog) => syslog.disconnect(),
            Sink::File | Sink::Stdout | Sink::Memory(_) => {}
        }
        Ok(())
    }

    /// Writes the lines that wait for the writer thread (before an exit: a clean stop
    /// loses no line).
    pub fn flush(&self) {
        if let Some(batch) = &self.batch {
            batch.flush();
        }
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
            batch: None,
        }
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        if let Some(batch) = &self.batch {
            batch.stop();
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
