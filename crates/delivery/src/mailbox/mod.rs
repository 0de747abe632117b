//! Mailboxes: the mbox and Maildir writers of local(8) and virtual(8), their locks, and
//! the careful open of a file in a directory that others can write.
//!
//! - [`copy`]: Postfix's mail_copy(3), pure: the `From ` line, `Return-Path:`,
//!   `X-Original-To:`, `Delivered-To:`, `>From ` quoting, the blank line at the end.
//! - [`safe_open`]: safe_open(3): no symlinks (but root's, in root's directories), regular
//!   file, one hard link, created exclusively and chowned.
//! - [`lock`]: dot_lockfile(3) and deliver_flock(3) (`flock`, `fcntl`), with their retries.
//! - [`mbox`]: local(8)'s and virtual(8)'s mailbox file delivery (mbox_open(3), the
//!   rollback to the old size, fsync).
//! - [`maildir`]: `tmp/` then `new/`, Postfix's unique names.
//!
//! Errors come back as [`MailboxError`]: the DSN status and the reason, as mbox_open(3) and
//! mail_copy(3) put them in their DSN buffer. The caller adds its own prefix, which differs
//! between agents (local(8): `cannot update mailbox PATH for user USER. `, virtual(8):
//! `delivery failed to mailbox PATH: `, both: `maildir delivery failed: `); see
//! [`MailboxError::prefixed`].
//!
//! Trust: the message content is not trusted (it is copied, never interpreted, except for
//! `From ` at a line start); paths come from the configuration and the password file.
//! Everything that touches the user's files happens with the ids [`crate::privs`] sets.

pub mod copy;
pub mod lock;
pub mod maildir;
pub mod mbox;
pub mod safe_open;

use std::sync::OnceLock;

/// The headers and envelope lines an agent puts before the message (Postfix mail_copy()).
#[derive(Debug, Clone, Copy)]
pub struct CopyInfo<'a> {
    /// Envelope sender, `""` for `<>` (the `From ` line then says `MAILER-DAEMON`).
    pub sender: &'a str,
    /// Arrival time, seconds since the epoch. Postfix's `From ` line carries the time of
    /// the delivery, not this (mail_copy.c calls time()); kept for callers that need it.
    pub arrival: u64,
    /// `Delivered-To:` (local/virtual add it).
    pub delivered_to: Option<&'a str>,
    /// `X-Original-To:` (omitted when empty, as mail_copy does).
    pub original_to: Option<&'a str>,
    /// Add `Return-Path: <sender>`.
    pub return_path: bool,
}

/// Whose file it is: the mailbox is created/owned by this user; `None` = the current process
/// owner (unprivileged runs, or when the caller already switched ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Why a delivery failed, as mbox_open(3), mail_copy(3) and maildir.c report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxError {
    /// The DSN status starts with 4 (defer) rather than 5 (bounce).
    pub temporary: bool,
    /// `4.2.0`, `5.2.2`, ...
    pub dsn: String,
    /// The reason without the agent's prefix: `error writing message: File too large`,
    /// `unable to create lock file /var/mail/u.lock: File exists`,
    /// `create maildir file /m/tmp/1.P2.h: Permission denied`.
    pub text: String,
    /// Warnings Postfix logs along the way (`NAME: warning: ...` lines), e.g. `specify
    /// "strict_mailbox_ownership = no" to ignore mailbox ownership mismatch`.
    pub warnings: Vec<String>,
}

impl MailboxError {
    /// An error with `dsn` (its class decides `temporary`).
    pub fn new(dsn: &str, text: impl Into<String>) -> MailboxError {
        MailboxError {
            temporary: dsn.starts_with('4'),
            dsn: dsn.to_owned(),
            text: text.into(),
            warnings: Vec::new(),
        }
    }

    /// The text with the agent's prefix, as local(8) and virtual(8) log it:
    /// `err.prefixed(&format!("cannot update mailbox {path} for user {user}. "))`.
    pub fn prefixed(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.text)
    }

    fn warn(mut self, warning: impl Into<String>) -> MailboxError {
        self.warnings.push(warning.into());
        self
    }
}

/// mbox_dsn(3): the DSN status for an errno: try again (`EAGAIN`, `ESTALE`) 4.2.0, the
/// file system full (`ENOSPC`) 4.3.0, the mailbox full (`EDQUOT`, `EFBIG`) 5.2.2, else the
/// caller's default (local(8) 5.2.0, virtual(8) 4.2.0).
pub fn mbox_dsn(errno: Option<i32>, default: &str) -> String {
    use nix::errno::Errno;
    let e = errno.map(Errno::from_raw);
    match e {
        Some(Errno::EAGAIN | Errno::ESTALE) => "4.2.0",
        Some(Errno::ENOSPC) => "4.3.0",
        Some(Errno::EDQUOT | Errno::EFBIG) => "5.2.2",
        _ => default,
    }
    .to_owned()
}

/// strerror(3) text of an io::Error, as Postfix's `%m` prints it (`Permission denied`,
/// without Rust's ` (os error 13)`).
pub fn strerror(e: &std::io::Error) -> String {
    // std formats OS errors with the C library's strerror_r(), then " (os error N)"; nix's
    // own table has different texts ("Try again" for EAGAIN) and is not what Postfix logs.
    let text = e.to_string();
    match e.raw_os_error() {
        Some(n) => text
            .strip_suffix(&format!(" (os error {n})"))
            .unwrap_or(&text)
            .to_owned(),
        None => text,
    }
}

/// [`strerror`] of an errno value.
pub fn errno_text(errno: i32) -> String {
    strerror(&std::io::Error::from_raw_os_error(errno))
}

/// The local time zone's offset from UTC in seconds at a given time, for the `From ` line
/// (asctime(localtime())). The delivery helper installs one at start-up with
/// [`set_local_offset`] (tern-maillog's `writer::local_utc_offset`); until then UTC.
pub type LocalOffset = fn(i64) -> i32;

static LOCAL_OFFSET: OnceLock<LocalOffset> = OnceLock::new();

/// Installs the local time zone lookup (once per process; later calls are ignored).
pub fn set_local_offset(f: LocalOffset) {
    let _ = LOCAL_OFFSET.set(f);
}

pub(crate) fn local_offset(unix: i64) -> i32 {
    LOCAL_OFFSET.get().map_or(0, |f| f(unix))
}

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_per_errno() {
        let table: &[(Option<i32>, &str, &str)] = &[
            (Some(libc_errno::EAGAIN), "5.2.0", "4.2.0"),
            (Some(libc_errno::ENOSPC), "5.2.0", "4.3.0"),
            (Some(libc_errno::EFBIG), "4.2.0", "5.2.2"),
            (Some(libc_errno::EDQUOT), "4.2.0", "5.2.2"),
            (Some(libc_errno::EACCES), "5.2.0", "5.2.0"),
            (Some(libc_errno::EACCES), "4.2.0", "4.2.0"),
            (None, "5.2.0", "5.2.0"),
        ];
        for (errno, def, want) in table {
            assert_eq!(mbox_dsn(*errno, def), *want, "{errno:?}");
        }
    }

    #[test]
    fn strerror_is_postfix_m() {
        let e = std::io::Error::from_raw_os_error(libc_errno::EFBIG);
        assert_eq!(strerror(&e), "File too large");
    }

    mod libc_errno {
        use nix::errno::Errno;
        pub const EAGAIN: i32 = Errno::EAGAIN as i32;
        pub const ENOSPC: i32 = Errno::ENOSPC as i32;
        pub const EFBIG: i32 = Errno::EFBIG as i32;
        pub const EDQUOT: i32 = Errno::EDQUOT as i32;
        pub const EACCES: i32 = Errno::EACCES as i32;
    }
}
