//! The seam between local(8)'s decisions and the code that writes mailboxes and files
//! (crate::mailbox, crate::privs; /work/wt/MAILBOX-API.md). local(8) decides *what* to
//! write where and with whose rights; an implementation of [`Mailboxes`] does the writing.
//! The integrator implements it over `crate::mailbox::{mbox, maildir}` (see each method);
//! tests use a double that records the calls.
//!
//! Security: every method is told whose rights to use; an implementation never writes a
//! `/file` or `~/file` destination with more rights than `rights` (switch the effective
//! ids first: `crate::privs::become_user`).

use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Whose rights a write uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    pub uid: u32,
    pub gid: u32,
}

/// The envelope lines before the message (mirrors crate::mailbox::CopyInfo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copy<'a> {
    pub sender: &'a str,
    pub arrival: u64,
    pub delivered_to: Option<&'a str>,
    pub original_to: Option<&'a str>,
    pub return_path: bool,
}

/// Why a write failed (mirrors crate::mailbox::MailboxError).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub temporary: bool,
    pub dsn: String,
    pub text: String,
}

/// Writes mailboxes and files for local(8).
pub trait Mailboxes {
    /// The user's mailbox in mbox form (mail_spool_directory/USER or $home/home_mailbox):
    /// `crate::mailbox::mbox::deliver(path, Some(Owner{uid,gid}), opts, info, content)`
    /// with mailbox_delivery_lock, From_ line, `>From ` quoting and a blank line. The spool
    /// directory rules (create as root/group mail, write as the user) are the writer's.
    fn mailbox(
        &mut self,
        path: &Path,
        user: Rights,
        copy: &Copy<'_>,
        content: &mut dyn BufRead,
    ) -> Result<(), Failure>;

    /// A Maildir (home_mailbox ending in `/`, or a `/dir/` destination):
    /// `crate::mailbox::maildir::deliver(dir, Some(owner), info, content, myhostname)`.
    fn maildir(
        &mut self,
        dir: &Path,
        user: Rights,
        copy: &Copy<'_>,
        content: &mut dyn BufRead,
    ) -> Result<PathBuf, Failure>;

    /// A `/file/name` destination in mbox form, entirely with `rights` (never root):
    /// `let _g = privs::become_user(uid, gid)?; mbox::deliver(path, None, opts, ...)`. The
    /// file is created 0600 when missing; an executable regular file is refused with
    /// `5.7.1 file is executable`; a lock that cannot be made is not an error for files
    /// (MBOX_DOT_LOCK_MAY_FAIL).
    fn file(
        &mut self,
        path: &Path,
        rights: Rights,
        copy: &Copy<'_>,
        content: &mut dyn BufRead,
    ) -> Result<(), Failure>;
}

/// One recorded call: (kind, path, rights, delivered_to, original_to, sender).
pub type Call = (
    String,
    PathBuf,
    Rights,
    Option<String>,
    Option<String>,
    String,
);

/// A double for tests: records each call and appends the message (with a Delivered-To
/// line) to the named path as the current user, or fails as told.
#[derive(Debug, Default)]
pub struct Recorder {
    pub calls: Vec<Call>,
    pub fail: Option<Failure>,
    /// Write the content to the path (else only record).
    pub write: bool,
}

impl Recorder {
    fn record(
        &mut self,
        kind: &str,
        path: &Path,
        rights: Rights,
        copy: &Copy<'_>,
        content: &mut dyn BufRead,
    ) -> Result<(), Failure> {
        self.calls.push((
            kind.to_owned(),
            path.to_owned(),
            rights,
            copy.delivered_to.map(str::to_owned),
            copy.original_to.map(str::to_owned),
            copy.sender.to_owned(),
        ));
        if let Some(f) = &self.fail {
            return Err(f.clone());
        }
        if self.write {
            let mut data = Vec::new();
            if let Some(d) = copy.delivered_to {
                data.extend_from_slice(format!("Delivered-To: {d}\n").as_bytes());
            }
            let _ = content.read_to_end(&mut data);
            data.push(b'\n');
            let target = if kind == "maildir" {
                path.join("new.msg")
            } else {
                path.to_owned()
            };
            if let Some(dir) = target.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let res = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&target)
                .and_then(|mut f| std::io::Write::write_all(&mut f, &data));
            if let Err(e) = res {
                return Err(Failure {
                    temporary: true,
                    dsn: "4.2.0".into(),
                    text: e.to_string(),
                });
            }
        }
        Ok(())
    }
}

impl Mailboxes for Recorder {
    fn mailbox(
        &mut self,
        path: &Path,
        user: Rights,
        copy: &Copy<'_>,
        content: &mut dyn BufRead,
    ) -> Result<(), Failure> {
        self.record("mailbox", path, user, copy, content)
    }

    fn maildir(
        &mut self,
        dir: &Path,
        user: Rights,
        copy: &Copy<'_>,
        content: &mut dyn BufRead,
    ) -> Result<PathBuf, Failure> {
        self.record("maildir", dir, user, copy, content)?;
        Ok(dir.join("new.msg"))
    }

    fn file(
        &mut self,
        path: &Path,
        rights: Rights,
        copy: &Copy<'_>,
        content: &mut dyn BufRead,
    ) -> Result<(), Failure> {
        self.record("file", path, rights, copy, content)
    }
}
