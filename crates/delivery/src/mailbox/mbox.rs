//! Delivery to a mailbox file (mbox): local(8)'s deliver_mailbox_file() (src/local/
//! mailbox.c) and virtual(8)'s (src/virtual/mailbox.c), through mbox_open(3) and
//! mail_copy(3).
//!
//! Steps: take the dotlock (`PATH.lock`), safe-open or create the file (0600), take the
//! kernel locks (`flock`, `fcntl`), check that the file still has one link, check that it
//! is a regular file owned by the recipient (strict_mailbox_ownership), remember its size,
//! append the message ([`super::copy`]), flush and fsync; on any failure truncate the file
//! back to its old size, so a half-written message never reaches the reader.
//!
//! # Rights ([`Rights`])
//! local(8), mailbox.c: "Mailbox delivery with least privilege". For a mailbox in a home
//! directory everything (locking included) happens as the user. In mail_spool_directory:
//! world-writable spool: as the user; group-writable spool (Debian's /var/mail, `root:mail
//! 2775`): the user's uid with the spool's group (so the dotlock can be made there);
//! otherwise as root, and a new mailbox is chowned to the user. The message is then written
//! with the user's own uid and gid ("so that file quota work"). virtual(8) does everything as
//! the uid/gid from virtual_uid_maps/virtual_gid_maps.
//!
//! # Security
//! The spool is shared with other users: a mailbox that is a symlink, a hard link, a
//! directory or someone else's file is refused ([`super::safe_open`]), with the texts and
//! DSN codes Postfix uses. The message is not interpreted beyond `From ` quoting.

use std::fs::File;
use std::io::{self, BufRead, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::copy::{self, CopyFlags, Limited};
use super::lock::{self, LockKind, LockParams};
use super::safe_open::{self, Mode};
use super::{CopyInfo, MailboxError, Owner, mbox_dsn, strerror};
use crate::privs;

/// How the mailbox file is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MboxOptions {
    /// mailbox_delivery_lock (local) or virtual_mailbox_lock (virtual).
    pub locks: Vec<LockKind>,
    /// The `From ` line (MAIL_COPY_FROM).
    pub from_line: bool,
    /// `>From ` quoting (MAIL_COPY_QUOTE).
    pub quote_from: bool,
    /// The blank line after the message (MAIL_COPY_BLANK).
    pub blank_line: bool,
}

impl MboxOptions {
    /// MAIL_COPY_MBOX with the given locks: what local(8) and virtual(8) use.
    pub fn mbox(locks: Vec<LockKind>) -> MboxOptions {
        MboxOptions {
            locks,
            from_line: true,
            quote_from: true,
            blank_line: true,
        }
    }
}

/// With whose ids each step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rights {
    /// The process's own ids throughout (unprivileged, or already switched).
    Current,
    /// Everything as this user (a home mailbox, virtual(8), a `/file` destination).
    User(Owner),
    /// Lock and open with `open` ids, chown a new file to `chown`, write as `user`
    /// (local(8) in mail_spool_directory).
    Spool {
        open: Owner,
        chown: Option<Owner>,
        user: Owner,
    },
}

impl Rights {
    /// local(8)'s rule for a mailbox in mail_spool_directory `spool` (mailbox.c): a
    /// world-writable spool (or one that cannot be stat()ed) as the user; a group-writable
    /// one as the user with the spool's group; otherwise as root, chowning to the user.
    pub fn for_spool(spool: &Path, user: Owner) -> Rights {
        match std::fs::metadata(spool) {
            Err(_) => Rights::User(user),
            Ok(st) if st.mode() & 0o002 != 0 => Rights::User(user),
            Ok(st) if st.mode() & 0o020 != 0 => Rights::Spool {
                open: Owner {
                    uid: user.uid,
                    gid: st.gid(),
                },
                chown: None,
                user,
            },
            Ok(_) => Rights::Spool {
                open: Owner { uid: 0, gid: 0 },
                chown: Some(user),
                user,
            },
        }
    }

    fn open_ids(self) -> Option<Owner> {
        match self {
            Rights::Current => None,
            Rights::User(o) => Some(o),
            Rights::Spool { open, .. } => Some(open),
        }
    }

    fn user(self) -> Option<Owner> {
        match self {
            Rights::Current => None,
            Rights::User(o) | Rights::Spool { user: o, .. } => Some(o),
        }
    }
}

/// Everything about one mailbox delivery beyond the message.
#[derive(Debug, Clone)]
pub struct MboxParams {
    pub rights: Rights,
    /// The DSN when an error has no better one: local(8) `5.2.0`, virtual(8) `4.2.0`.
    pub default_dsn: &'static str,
    /// mailbox_size_limit / virtual_mailbox_limit (0: none); the file may not grow past it.
    pub size_limit: u64,
    /// strict_mailbox_ownership.
    pub strict_owner: bool,
    /// A dotlock that cannot be made (other than "exists") is only a warning (local(8)'s
    /// `/file` deliveries: MBOX_DOT_LOCK_MAY_FAIL).
    pub dotlock_may_fail: bool,
    /// virtual(8)'s texts: a non-regular destination is `5.3.5 mail system configuration
    /// error` (with a warning) instead of local(8)'s `5.2.0 destination PATH is not a
    /// regular file`.
    pub virtual_agent: bool,
    pub lock: LockParams,
}

impl MboxParams {
    /// local(8)'s defaults for these rights: 5.2.0, mailbox_size_limit 51200000, strict
    /// ownership, Postfix's lock timing.
    pub fn local(rights: Rights) -> MboxParams {
        MboxParams {
            rights,
            default_dsn: "5.2.0",
            size_limit: 51_200_000,
            strict_owner: true,
            dotlock_may_fail: false,
            virtual_agent: false,
            lock: LockParams::default(),
        }
    }
}

/// local(8)'s mailbox delivery with Postfix's defaults ([`MboxParams::local`]). The rights
/// follow from `owner` and the mailbox's directory: `None` runs with the process's ids;
/// a directory owned by the user (a home directory) runs as the user; any other directory
/// is taken as the spool ([`Rights::for_spool`]).
pub fn deliver(
    path: &Path,
    owner: Option<Owner>,
    opts: &MboxOptions,
    info: &CopyInfo<'_>,
    content: &mut dyn BufRead,
) -> Result<(), MailboxError> {
    let rights = match owner {
        None => Rights::Current,
        Some(user) => {
            let dir = path.parent().unwrap_or(Path::new("/"));
            match std::fs::metadata(dir) {
                Ok(st) if st.uid() == user.uid => Rights::User(user),
                _ => Rights::for_spool(dir, user),
            }
        }
    };
    deliver_with(path, &MboxParams::local(rights), opts, info, content)
}

/// Appends one message to the mailbox file `path`; see the module doc.
pub fn deliver_with(
    path: &Path,
    params: &MboxParams,
    opts: &MboxOptions,
    info: &CopyInfo<'_>,
    content: &mut dyn BufRead,
) -> Result<(), MailboxError> {
    let def = params.default_dsn;
    let io_err = |e: &io::Error, what: &str| {
        MailboxError::new(
            &mbox_dsn(e.raw_os_error(), def),
            format!("{what}: {}", strerror(e)),
        )
    };
    let _open_ids = match params.rights.open_ids() {
        Some(o) => Some(privs::become_user(o.uid, o.gid).map_err(|e| io_err(&e, "set user ids"))?),
        None => None,
    };
    let mut warnings = Vec::new();

    // mbox_open.c: the dotlock comes first, and only for a regular file or none (stat
    // follows symlinks: no /dev/null.lock).
    let mut dot = None;
    let wants_dotlock = opts.locks.contains(&LockKind::Dotlock)
        && std::fs::metadata(path).map_or(true, |st| st.is_file());
    if wants_dotlock {
        match lock::dotlock(path, &params.lock) {
            Ok(l) => dot = Some(l),
            Err(e) if e.errno == Some(nix::errno::Errno::EEXIST as i32) => {
                return Err(MailboxError::new(
                    &mbox_dsn(Some(nix::errno::Errno::EAGAIN as i32), def),
                    e.text,
                ));
            }
            Err(e) if params.dotlock_may_fail => warnings.push(e.text),
            Err(e) => return Err(MailboxError::new(&mbox_dsn(e.errno, def), e.text)),
        }
    }

    let chown = match params.rights {
        Rights::Spool { chown, .. } => chown.map(|o| (o.uid, o.gid)),
        _ => None,
    };
    let (file, st) = safe_open::open_append(
        path,
        Mode {
            create: Some(0o600),
            chown,
        },
    )
    .map_err(|e| MailboxError::new(&mbox_dsn(e.errno, def), e.text))?;

    let mut kernel_locks = Vec::new();
    if st.is_file() {
        for kind in [LockKind::Flock, LockKind::Fcntl] {
            if opts.locks.contains(&kind) {
                let held = lock::kernel_lock(&file, kind, &params.lock)
                    .map_err(|e| MailboxError::new(&mbox_dsn(e.errno, def), e.text))?;
                kernel_locks.push(held);
            }
        }
        // mbox_open.c: a mail reader that replaced the file (GNU pop3d) shows as a changed
        // link count on the file we hold.
        let now = file.metadata().map_err(|e| io_err(&e, "fstat"))?;
        if now.nlink() != 1 {
            let mut err = MailboxError::new(
                &mbox_dsn(Some(nix::errno::Errno::EAGAIN as i32), def),
                "target file status changed unexpectedly",
            );
            err.warnings.push(format!(
                "{}: file status changed unexpectedly",
                path.display()
            ));
            return Err(err);
        }
    }

    // Write as the recipient ("so that file quota work"); the open ids come back when
    // this guard drops, before the dotlock is removed.
    let user = params.rights.user();
    let user_ids = match (user, params.rights) {
        (Some(u), Rights::Spool { open, .. }) if open != u => {
            Some(privs::become_user(u.uid, u.gid).map_err(|e| io_err(&e, "set user ids"))?)
        }
        _ => None,
    };
    let path_text = path.display();
    if !st.is_file() {
        if params.virtual_agent {
            let mut err = MailboxError::new("5.3.5", "mail system configuration error");
            err.warnings
                .push(format!("destination {path_text} is not a regular file"));
            return Err(err);
        }
        return Err(MailboxError::new(
            "5.2.0",
            format!("destination {path_text} is not a regular file"),
        ));
    }
    if params.strict_owner && user.is_some_and(|u| st.uid() != u.uid) {
        return Err(MailboxError::new(
            "4.2.0",
            format!("destination {path_text} is not owned by recipient"),
        )
        .warn("specify \"strict_mailbox_ownership = no\" to ignore mailbox ownership mismatch"));
    }

    let result = append(&file, params.size_limit, opts, info, content);
    // Back to the open ids before unlocking: only they may remove the dotlock from a
    // spool like root:mail 2775.
    drop(user_ids);
    drop(kernel_locks);
    drop(dot);
    match result {
        Ok(()) => Ok(()),
        Err(e) => {
            let mut err = MailboxError::new(&e.0, e.1);
            err.warnings = warnings;
            Err(err)
        }
    }
}

/// mail_copy(3) with MAIL_COPY_TOFILE: append, flush, fsync; truncate back on failure.
/// Errors are (dsn, text).
fn append(
    file: &File,
    size_limit: u64,
    opts: &MboxOptions,
    info: &CopyInfo<'_>,
    content: &mut dyn BufRead,
) -> Result<(), (String, String)> {
    let mut f = file;
    let start = f.seek(SeekFrom::End(0)).map_err(|e| {
        (
            mbox_dsn(e.raw_os_error(), "5.3.0"),
            format!("seek mailbox: {}", strerror(&e)),
        )
    })?;
    let flags = CopyFlags {
        from_line: opts.from_line,
        quote_from: opts.quote_from,
        blank_line: opts.blank_line,
    };
    let now = super::now_unix();
    let date = copy::asctime(now, super::local_offset(now));
    let mut out = Limited {
        inner: BufWriter::with_capacity(64 * 1024, file),
        start,
        written: 0,
        limit: size_limit,
    };
    let copied = copy::copy(&mut out, info, flags, &date, content);
    let result = match copied {
        Err(copy::CopyError::Read(e)) => Err(read_error(&e)),
        Err(e @ copy::CopyError::Write(_)) => Err(write_error(&e)),
        Ok(_) => out
            .flush()
            .and_then(|()| file.sync_all())
            .map_err(|e| write_error(&copy::CopyError::Write(e))),
    };
    if result.is_err() {
        // mail_copy.c: "Truncate the file to its original length when the delivery
        // failed." Anything still buffered is dropped, not written after the truncation.
        let (inner, _) = out.inner.into_parts();
        let _ = inner.set_len(start);
    }
    result
}

fn read_error(e: &io::Error) -> (String, String) {
    // mail_copy.c: EAGAIN/ESTALE on the queue file are worth another try.
    let dsn = match e.raw_os_error().map(nix::errno::Errno::from_raw) {
        Some(nix::errno::Errno::EAGAIN | nix::errno::Errno::ESTALE) => "4.3.0",
        _ => "5.3.0",
    };
    (
        dsn.to_owned(),
        format!("error reading message: {}", strerror(e)),
    )
}

fn write_error(e: &copy::CopyError) -> (String, String) {
    let errno = match e {
        copy::CopyError::Read(e) | copy::CopyError::Write(e) => e.raw_os_error(),
    };
    (mbox_dsn(errno, "5.3.0"), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> CopyInfo<'static> {
        CopyInfo {
            sender: "s@example.test",
            arrival: 0,
            delivered_to: Some("u@example.test"),
            original_to: Some("u@example.test"),
            return_path: true,
        }
    }

    fn params(limit: u64) -> MboxParams {
        MboxParams {
            size_limit: limit,
            lock: LockParams {
                attempts: 2,
                delay: std::time::Duration::from_millis(10),
                stale: std::time::Duration::from_secs(500),
            },
            ..MboxParams::local(Rights::Current)
        }
    }

    #[test]
    fn appends_two_messages() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u");
        let opts = MboxOptions::mbox(vec![LockKind::Fcntl, LockKind::Dotlock]);
        for body in ["Subject: 1\n\nFrom a\n", "Subject: 2\n\nb\n"] {
            deliver_with(&p, &params(0), &opts, &info(), &mut body.as_bytes()).unwrap();
        }
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.matches("\nFrom ").count() + 1, 2, "{text}");
        assert!(text.contains("\n>From a\n\n"), "{text}");
        assert!(text.ends_with("Subject: 2\n\nb\n\n"));
        assert!(!dir.path().join("u.lock").exists());
    }

    #[test]
    fn size_limit_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u");
        std::fs::write(&p, "old\n").unwrap();
        let opts = MboxOptions::mbox(vec![LockKind::Fcntl]);
        let big = format!("Subject: x\n\n{}\n", "y".repeat(200_000));
        let err = deliver_with(&p, &params(1000), &opts, &info(), &mut big.as_bytes()).unwrap_err();
        assert_eq!(err.dsn, "5.2.2");
        assert!(!err.temporary);
        assert_eq!(err.text, "error writing message: File too large");
        assert_eq!(std::fs::read(&p).unwrap(), b"old\n");
    }

    #[test]
    fn held_dotlock_defers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("u");
        std::fs::write(dir.path().join("u.lock"), "").unwrap();
        let opts = MboxOptions::mbox(vec![LockKind::Dotlock]);
        let err = deliver_with(&p, &params(0), &opts, &info(), &mut &b"x\n"[..]).unwrap_err();
        assert_eq!(err.dsn, "4.2.0");
        assert_eq!(
            err.text,
            format!(
                "unable to create lock file {}.lock: File exists",
                p.display()
            )
        );
    }

    #[test]
    fn symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A spool others can write: root's own symlinks are allowed only elsewhere.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .unwrap();
        let p = dir.path().join("u");
        std::fs::write(dir.path().join("victim"), "").unwrap();
        std::os::unix::fs::symlink(dir.path().join("victim"), &p).unwrap();
        let opts = MboxOptions::mbox(vec![LockKind::Fcntl, LockKind::Dotlock]);
        let err = deliver_with(&p, &params(0), &opts, &info(), &mut &b"x\n"[..]).unwrap_err();
        assert_eq!(
            (err.dsn.as_str(), err.text.as_str()),
            ("5.2.0", "file is a symbolic link")
        );
        assert_eq!(std::fs::read(dir.path().join("victim")).unwrap(), b"");
    }
}
