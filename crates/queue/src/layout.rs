//! The queue directories under `queue_directory`, their owners and modes, and where a
//! queue file of a given id lives.
//!
//! The names, owners and modes are those of Postfix's `postfix-files` (Debian:
//! /etc/postfix/postfix-files), which `postfix start` (postfix-script, `postfix
//! set-permissions`) applies: the queue directory itself and `pid/` belong to root with
//! mode 0755, `maildrop/` and `public/` to `mail_owner` and `setgid_group` (postdrop
//! writes into the one and talks through the other), every other queue to `mail_owner`
//! with mode 0700. Where postfix-files leaves the group as `-`, the group is left as
//! created (root's, for a root-started instance: `postfix:root` as on Debian).
//!
//! The two group-shared directories carry the extra bits Debian's package gives them
//! (`ls -ld /var/spool/postfix/*` on Debian 12: `drwx-wx--T postfix postdrop maildrop`,
//! `drwx--s--- postfix postdrop public`): maildrop is sticky (1730), so a postdrop-group
//! process cannot remove another user's submission, and public is set-gid (2710), so the
//! sockets made in it get the postdrop group. postfix-files itself says 730 and 710.
//!
//! This module trusts its caller for the uids and gids (resolved from `mail_owner` and
//! `setgid_group` by the daemon); it follows no symbolic links of its own accord but does
//! not defend against a hostile queue directory owner (who owns the mail anyway).

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::id::QueueId;

/// A directory under `queue_directory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueName {
    /// Local submissions from postdrop, picked up by pickup.
    Maildrop,
    /// New mail, committed by cleanup, not yet seen by the queue manager.
    Incoming,
    /// Mail the queue manager is delivering.
    Active,
    /// Mail waiting for a retry.
    Deferred,
    /// Mail put on hold (`postsuper -h`, HOLD actions).
    Hold,
    /// Files that could not be read.
    Corrupt,
    /// Per-message logs of recipients that bounced.
    Bounce,
    /// Per-message logs of recipients that were deferred.
    Defer,
    /// Per-message logs for delivery status notifications and `sendmail -v`.
    Trace,
    /// Fast flush logs, one per destination.
    Flush,
    /// Messages saved by `postsuper -r`'s cousins and the HOLD-for-analysis features.
    Saved,
    /// Process id files.
    Pid,
    /// Public sockets (pickup, qmgr, showq, postlog).
    Public,
    /// Private sockets of the daemons.
    Private,
    /// Tern's own: the commit journal's segments (docs/queue-format.md).
    Journal,
}

impl QueueName {
    /// Every queue directory, in the order postfix-files lists them.
    pub const ALL: [QueueName; 15] = [
        QueueName::Active,
        QueueName::Bounce,
        QueueName::Corrupt,
        QueueName::Defer,
        QueueName::Deferred,
        QueueName::Flush,
        QueueName::Hold,
        QueueName::Incoming,
        QueueName::Journal,
        QueueName::Private,
        QueueName::Maildrop,
        QueueName::Public,
        QueueName::Pid,
        QueueName::Saved,
        QueueName::Trace,
    ];

    /// The message queues, whose files are queue files (the others hold logs, sockets,
    /// pid files; maildrop/ holds local submissions in their own format,
    /// [`crate::maildrop`], until pickup takes them).
    pub const MESSAGE_QUEUES: [QueueName; 4] = [
        QueueName::Incoming,
        QueueName::Active,
        QueueName::Deferred,
        QueueName::Hold,
    ];

    /// The directory name, as Postfix spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Maildrop => "maildrop",
            QueueName::Incoming => "incoming",
            QueueName::Active => "active",
            QueueName::Deferred => "deferred",
            QueueName::Hold => "hold",
            QueueName::Corrupt => "corrupt",
            QueueName::Bounce => "bounce",
            QueueName::Defer => "defer",
            QueueName::Trace => "trace",
            QueueName::Flush => "flush",
            QueueName::Saved => "saved",
            QueueName::Pid => "pid",
            QueueName::Public => "public",
            QueueName::Private => "private",
            QueueName::Journal => "journal",
        }
    }

    /// The queue of a directory name (`postsuper -d ALL deferred`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|q| q.as_str() == s)
    }

    /// Owner, group and mode from postfix-files.
    pub fn permissions(self) -> DirPermissions {
        match self {
            QueueName::Pid => DirPermissions {
                owner: Owner::Root,
                group: false,
                mode: 0o755,
            },
            QueueName::Maildrop => DirPermissions {
                owner: Owner::MailOwner,
                group: true,
                mode: 0o1730,
            },
            QueueName::Public => DirPermissions {
                owner: Owner::MailOwner,
                group: true,
                mode: 0o2710,
            },
            _ => DirPermissions {
                owner: Owner::MailOwner,
                group: false,
                mode: 0o700,
            },
        }
    }
}

/// Who owns a queue directory, in postfix-files' terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Root,
    MailOwner,
}

/// One postfix-files line for a queue directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirPermissions {
    pub owner: Owner,
    /// Whether the group is `setgid_group` (otherwise left as created).
    pub group: bool,
    pub mode: u32,
}

/// The uids and gid that [`QueueLayout::create`] gives the directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owners {
    pub root_uid: u32,
    /// `mail_owner`'s uid.
    pub mail_owner_uid: u32,
    /// `setgid_group`'s gid.
    pub setgid_gid: u32,
}

/// Where the queues are and how they are hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLayout {
    root: PathBuf,
    hashed: Vec<QueueName>,
    depth: usize,
}

impl QueueLayout {
    /// Postfix's defaults: `hash_queue_names = deferred, defer`, `hash_queue_depth = 1`.
    pub fn new(queue_directory: impl Into<PathBuf>) -> Self {
        Self {
            root: queue_directory.into(),
            hashed: vec![QueueName::Deferred, QueueName::Defer],
            depth: 1,
        }
    }

    /// The layout of `hash_queue_names` (comma or space separated, names compared without
    /// regard to case as Postfix does; unknown names are ignored) and `hash_queue_depth`.
    #[must_use]
    pub fn with_hashing(mut self, hash_queue_names: &str, hash_queue_depth: usize) -> Self {
        self.hashed = hash_queue_names
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter_map(|n| QueueName::parse(&n.to_ascii_lowercase()))
            .collect();
        self.depth = hash_queue_depth;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of queue `q`, unhashed (`queue_directory/deferred`).
    pub fn dir(&self, q: QueueName) -> PathBuf {
        self.root.join(q.as_str())
    }

    /// How many hashed levels queue `q` has.
    pub fn depth(&self, q: QueueName) -> usize {
        if self.hashed.contains(&q) {
            self.depth
        } else {
            0
        }
    }

    /// The directory that holds `id` in queue `q` (`queue_directory/deferred/C`).
    pub fn dir_of(&self, q: QueueName, id: &QueueId) -> PathBuf {
        let mut p = self.dir(q);
        p.push(id.hash_dir(self.depth(q)));
        p
    }

    /// The path of `id` in queue `q` (`queue_directory/deferred/C/C954098E5B8`).
    pub fn path(&self, q: QueueName, id: &QueueId) -> PathBuf {
        self.dir_of(q, id).join(id.as_str())
    }

    /// Creates the queue directory and every queue under it, with postfix-files' modes,
    /// and with its owners when `owners` is given (a root-started `postfix start`); an
    /// unprivileged instance passes `None` and owns everything itself. Existing
    /// directories get their modes and owners set again, as `postfix set-permissions`.
    pub fn create(&self, owners: Option<Owners>) -> Result<(), Error> {
        make_dir(&self.root, 0o755)?;
        if let Some(o) = owners {
            chown(&self.root, o.root_uid, None)?;
        }
        for q in QueueName::ALL {
            let p = self.dir(q);
            let perm = q.permissions();
            make_dir(&p, perm.mode)?;
            if let Some(o) = owners {
                let uid = match perm.owner {
                    Owner::Root => o.root_uid,
                    Owner::MailOwner => o.mail_owner_uid,
                };
                chown(&p, uid, perm.group.then_some(o.setgid_gid))?;
                // A change of owner may clear the set-gid bit: set the mode again.
                set_mode(&p, perm.mode)?;
            }
        }
        Ok(())
    }
}

/// Makes `p` if missing and sets its mode (mkdir's mode is cut by the umask).
fn make_dir(p: &Path, mode: u32) -> Result<(), Error> {
    match fs::create_dir(p) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && p.is_dir() => {}
        Err(e) => return Err(Error::io("create directory", p, e)),
    }
    set_mode(p, mode)
}

fn set_mode(p: &Path, mode: u32) -> Result<(), Error> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("set mode of", p, e))
}

fn chown(p: &Path, uid: u32, gid: Option<u32>) -> Result<(), Error> {
    std::os::unix::fs::chown(p, Some(uid), gid).map_err(|e| Error::io("change owner of", p, e))
}

/// Makes the hashed subdirectories of a file's directory, with mode 0700 as Postfix's
/// mail_queue_mkdirs does.
pub(crate) fn make_hash_dirs(dir: &Path) -> Result<(), Error> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("create directory", dir, e))
}

use std::os::unix::fs::DirBuilderExt;

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn modes_as_postfix_files() {
        let t = tempfile::tempdir().unwrap();
        let layout = QueueLayout::new(t.path().join("q"));
        layout.create(None).unwrap();
        // Modes from Debian's /etc/postfix/postfix-files.
        let table: &[(&str, u32)] = &[
            ("", 0o755),
            ("active", 0o700),
            ("bounce", 0o700),
            ("corrupt", 0o700),
            ("defer", 0o700),
            ("deferred", 0o700),
            ("flush", 0o700),
            ("hold", 0o700),
            ("incoming", 0o700),
            ("private", 0o700),
            ("maildrop", 0o1730),
            ("public", 0o2710),
            ("pid", 0o755),
            ("saved", 0o700),
            ("trace", 0o700),
        ];
        for (name, mode) in table {
            let md = fs::metadata(layout.root().join(name)).unwrap();
            assert_eq!(md.mode() & 0o7777, *mode, "{name}");
        }
        // Again: idempotent.
        layout.create(None).unwrap();
    }

    #[test]
    fn owners_when_root() {
        if !nix::unistd::Uid::effective().is_root() {
            return; // chown to other users needs root; the modes test covers the rest.
        }
        let t = tempfile::tempdir().unwrap();
        let layout = QueueLayout::new(t.path().join("q"));
        let o = Owners {
            root_uid: 0,
            mail_owner_uid: 4321,
            setgid_gid: 8765,
        };
        layout.create(Some(o)).unwrap();
        let md = |n: &str| fs::metadata(layout.dir(QueueName::parse(n).unwrap())).unwrap();
        assert_eq!((md("maildrop").uid(), md("maildrop").gid()), (4321, 8765));
        assert_eq!((md("public").uid(), md("public").gid()), (4321, 8765));
        assert_eq!(md("incoming").uid(), 4321);
        assert_ne!(md("incoming").gid(), 8765);
        assert_eq!(md("pid").uid(), 0);
        assert_eq!(md("maildrop").mode() & 0o7777, 0o1730);
        assert_eq!(md("public").mode() & 0o7777, 0o2710);
    }

    #[test]
    fn paths_and_hashing() {
        let l = QueueLayout::new("/q");
        let id = QueueId::parse("C954098E5B8").unwrap();
        assert_eq!(
            l.path(QueueName::Deferred, &id),
            Path::new("/q/deferred/C/C954098E5B8")
        );
        assert_eq!(
            l.path(QueueName::Incoming, &id),
            Path::new("/q/incoming/C954098E5B8")
        );
        let l = l.with_hashing("Incoming, deferred active", 2);
        assert_eq!(
            l.path(QueueName::Incoming, &id),
            Path::new("/q/incoming/C/9/C954098E5B8")
        );
        assert_eq!(l.depth(QueueName::Active), 2);
        assert_eq!(l.depth(QueueName::Hold), 0);
        assert_eq!(l.depth(QueueName::Defer), 0);
    }
}
