//! The real [`Mailboxes`]: local(8)'s writes through [`crate::mailbox`] (mbox and
//! Maildir) with the rights local(8) uses for each (src/local/mailbox.c, maildir.c,
//! file.c).
//!
//! - A mailbox in mail_spool_directory: the spool rules of [`mbox::Rights::for_spool`]
//!   (Debian's `root:mail 2775` /var/mail: open as the user with group mail, write as the
//!   user); a mailbox elsewhere (home_mailbox): everything as the user.
//! - A Maildir: everything as the user.
//! - A `/file` destination: everything with the rights local(8) chose (the alias table's
//!   owner, default_privs, the `.forward`'s user), never root; an executable file is
//!   refused.
//!
//! Failures carry local(8)'s prefixes (`cannot update mailbox PATH for user USER. `,
//! `maildir delivery failed: `, `cannot append message to file PATH: `). Warnings the
//! writers report are kept in [`RealMailboxes::warnings`] for the helper to pass on.
//!
//! When the process is not root (an instance started by an ordinary user) everything runs
//! with the process's own ids, as Postfix's agents do then.
//!
//! # Security
//! The paths come from local(8)'s decisions (the password file, home_mailbox, an alias or
//! `.forward` the user owns); the ids are switched before any of them is opened
//! ([`crate::privs`]), so the kernel's permission checks apply to the recipient.

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tern_config::config::Config;

use super::mailboxes::{Copy, Failure, Mailboxes, Rights};
use super::settings::{Params, SettingsError};
use crate::mailbox::lock::{LockKind, LockParams};
use crate::mailbox::maildir::{self, MaildirParams};
use crate::mailbox::mbox::{self, MboxOptions, MboxParams};
use crate::mailbox::{CopyInfo, MailboxError, Owner};
use crate::privs;

/// local(8)'s mailbox writers with the parameters of one local(8) service.
#[derive(Debug, Clone)]
pub struct RealMailboxes {
    /// mail_spool_directory, without a trailing `/`.
    pub spool: PathBuf,
    /// mailbox_delivery_lock.
    pub locks: Vec<LockKind>,
    /// mailbox_size_limit (0: none).
    pub size_limit: u64,
    /// strict_mailbox_ownership.
    pub strict_owner: bool,
    /// deliver_lock_attempts, deliver_lock_delay, stale_lock_time.
    pub lock: LockParams,
    /// gethostname(), for Maildir file names.
    pub hostname: String,
    /// Switch to the recipient's ids (the process is root); else everything runs with
    /// the process's own.
    pub switch_ids: bool,
    /// Warnings from the writers since the last [`RealMailboxes::take_warnings`].
    pub warnings: Vec<String>,
}

impl RealMailboxes {
    /// The writers' parameters in the name space of the local(8) service `service`.
    pub fn from_config(config: &Config, service: &str) -> Result<RealMailboxes, SettingsError> {
        let entry = config.master.services.iter().find(|s| s.name == service);
        let p = Params {
            config,
            service: entry,
        };
        let lock_value = p.text("mailbox_delivery_lock")?;
        let locks = LockKind::parse_list("mailbox_delivery_lock", &lock_value).map_err(|_| {
            SettingsError::BadValue {
                name: "mailbox_delivery_lock".into(),
                value: lock_value.clone(),
            }
        })?;
        let spool = p.text("mail_spool_directory")?;
        Ok(RealMailboxes {
            spool: PathBuf::from(spool.trim_end_matches('/')),
            locks,
            size_limit: p.int("mailbox_size_limit")? as u64,
            strict_owner: p.bool("strict_mailbox_ownership")?,
            lock: LockParams {
                attempts: u32::try_from(p.int("deliver_lock_attempts")?).unwrap_or(u32::MAX),
                delay: p.time("deliver_lock_delay")?,
                stale: p.time("stale_lock_time")?,
            },
            hostname: nix::unistd::gethostname().map_or_else(
                |_| "localhost".to_owned(),
                |h| h.to_string_lossy().into_owned(),
            ),
            switch_ids: privs::privileged(),
            warnings: Vec::new(),
        })
    }

    /// The warnings collected so far, emptied.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn failure(&mut self, e: &MailboxError, prefix: &str) -> Failure {
        self.warnings.extend(e.warnings.iter().cloned());
        Failure {
            temporary: e.temporary,
            dsn: e.dsn.clone(),
            text: e.prefixed(prefix),
        }
    }
}

fn info<'a>(copy: &Copy<'a>) -> CopyInfo<'a> {
    CopyInfo {
        sender: copy.sender,
        arrival: copy.arrival,
        delivered_to: copy.delivered_to,
        original_to: copy.original_to,
        return_path: copy.return_path,
    }
}

/// The login name of `uid` for the failure text (the uid itself when unknown).
fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

impl Mailboxes for RealMailboxes {
    fn mailbox(
        &mut self,
        path: &Path,
        user: Rights,
        copy: &Copy<'_>,
        content: &mut dyn BufRead,
    ) -> Result<(), Failure> {
        let owner = Owner {
            uid: user.uid,
            gid: user.gid,
        };
        let rights = if !self.switch_ids {
            mbox::Rights::Current
        } else if path.parent() == Some(self.spool.as_path()) {
            mbox::Rights::for_spool(&self.spool, owner)
        } else {
            mbox::Rights::User(owner)
        };
        let params = MboxParams {
            rights,
            default_dsn: "5.2.0",
            size_limit: self.size_limit,
            strict_owner: self.strict_owner,
            dotlock_may_fail: false,
            virtual_agent: false,
            lock: self.lock,
        };
        let opts = MboxOptions::mbox(self.locks.clone());
        mbox::deliver_with(path, &params, &opts, &info(copy), content).map_err(|e| {
            let prefix = format!(
                "cannot update mailbox {} for user {}. ",
                path.display(),
                user_name(user.uid)
            );
            self.failure(&e, &prefix)
        })
    }

    fn maildir(
        &mut self,
        dir: &Path,
        user: Rights,
        copy: &Copy<'_>,
        content: &mut dyn BufRead,
    ) -> Result<PathBuf, Failure> {
        let params = MaildirParams {
            owner: self.switch_ids.then_some(Owner {
                uid: user.uid,
                gid: user.gid,
            }),
            default_dsn: "5.2.0",
            size_limit: self.size_limit,
        };
        let hostname = self.hostname.clone();
        maildir::deliver_with(dir, &params, &info(copy), content, &hostname)
            .map_err(|e| self.failure(&e, "maildir delivery failed: "))
    }

    fn file(
        &mut self,
        path: &Path,
        rights: Rights,
        copy: &Copy<'_>,
        content: &mut dyn BufRead,
    ) -> Result<(), Failure> {
        // file.c: the whole delivery with the chosen rights; the executable check is made
        // with them too (a file the rights cannot stat is the open's error below).
        let prefix = format!("cannot append message to file {}: ", path.display());
        let guard = if self.switch_ids {
            Some(
                privs::become_user(rights.uid, rights.gid).map_err(|e| Failure {
                    temporary: true,
                    dsn: "4.3.0".into(),
                    text: format!("{prefix}set user ids: {}", crate::mailbox::strerror(&e)),
                })?,
            )
        } else {
            None
        };
        if let Ok(st) = std::fs::metadata(path)
            && st.is_file()
            && st.permissions().mode() & 0o111 != 0
        {
            return Err(Failure {
                temporary: false,
                dsn: "5.7.1".into(),
                text: "file is executable".into(),
            });
        }
        let params = MboxParams {
            rights: mbox::Rights::Current,
            default_dsn: "5.2.0",
            size_limit: self.size_limit,
            strict_owner: false,
            dotlock_may_fail: true,
            virtual_agent: false,
            lock: self.lock,
        };
        let opts = MboxOptions::mbox(self.locks.clone());
        let result = mbox::deliver_with(path, &params, &opts, &info(copy), content);
        drop(guard);
        result.map_err(|e| self.failure(&e, &prefix))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn unprivileged(dir: &Path) -> RealMailboxes {
        RealMailboxes {
            spool: dir.to_owned(),
            locks: vec![LockKind::Fcntl],
            size_limit: 0,
            strict_owner: true,
            lock: LockParams::default(),
            hostname: "h".into(),
            switch_ids: false,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn mailbox_and_failure_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = unprivileged(dir.path());
        let me = Rights {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        };
        let copy = Copy {
            sender: "a@b",
            arrival: 0,
            delivered_to: Some("u@x"),
            original_to: None,
            return_path: true,
        };
        let path = dir.path().join("u");
        m.mailbox(&path, me, &copy, &mut Cursor::new(b"Subject: s\n\nbody\n"))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("From a@b "), "{text}");
        assert!(text.contains("Delivered-To: u@x\n"), "{text}");
        // A directory where the mailbox should be: local(8)'s prefix and 5.2.0.
        let bad = dir.path().join("d");
        std::fs::create_dir(&bad).unwrap();
        let err = m
            .mailbox(&bad, me, &copy, &mut Cursor::new(b"x\n"))
            .unwrap_err();
        assert!(
            err.text.starts_with(&format!(
                "cannot update mailbox {} for user ",
                bad.display()
            )),
            "{err:?}"
        );
        assert!(!err.temporary);
    }
}
