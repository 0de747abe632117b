//! postsuper's operations on messages named by queue id (`-d ID`, `-h ID`, `-H ID`,
//! `-r ID`, `-e ID`, `-f ID`, and the same with `-` for ids on standard input), and the
//! file primitives every operation shares: Postfix's postremove, postrename, postrmdir
//! and mail_open_ok, with their messages.
//!
//! Security: an id is checked (mail_queue_id_ok: 1-255 of `[A-Za-z0-9_]`) before a path
//! is made from it, so `../x` names nothing outside the queue; a queue name must be one
//! of postsuper's queues ([`queue_info`]) before any file in it is touched.

use std::fs;
use std::io::{self, BufRead};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tern_maillog::postsuper::{self as plog, Action};
use tern_queue::maildrop::READY_MODE;
use tern_queue::{QueueId, QueueName};

use super::Super;
use crate::fatal;
use crate::msg::Fatal;

/// An operation on one queue id: its option letter (`d`, `e`, `f`, `h`, `H`, `r`).
pub(crate) type OneOp = char;

/// MAIL_QUEUE_STAT_READY: a queue file is finished when its owner bits are rwx.
const STAT_READY: u32 = 0o700;
/// MAIL_QUEUE_STAT_EXPIRE: `postsuper -e`'s mark, the group execute bit.
const STAT_EXPIRE: u32 = 0o010;

/// One of postsuper's queues (postsuper.c, queue_info).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueInfo {
    pub queue: QueueName,
    /// Holds message files (otherwise per-message or flush logs).
    pub message: bool,
    /// Hashed subdirectories may be entered.
    pub recurse: bool,
}

/// find_queue_info(): the queues postsuper knows; any other name is fatal.
pub(crate) fn queue_info(name: &str) -> Result<QueueInfo, Fatal> {
    let (queue, message, recurse) = match name {
        "maildrop" => (QueueName::Maildrop, true, false),
        "incoming" => (QueueName::Incoming, true, true),
        "active" => (QueueName::Active, true, true),
        "deferred" => (QueueName::Deferred, true, true),
        "hold" => (QueueName::Hold, true, true),
        "trace" => (QueueName::Trace, false, true),
        "defer" => (QueueName::Defer, false, true),
        "bounce" => (QueueName::Bounce, false, true),
        "flush" => (QueueName::Flush, false, true),
        _ => return Err(fatal!("invalid directory name: {name}")),
    };
    Ok(QueueInfo {
        queue,
        message,
        recurse,
    })
}

/// READY_MESSAGE(), with Tern's maildrop: a finished maildrop file has mode 0444.
pub(crate) fn ready(queue: QueueName, mode: u32) -> bool {
    if queue == QueueName::Maildrop {
        mode & 0o777 == READY_MODE
    } else {
        mode & 0o700 == STAT_READY
    }
}

/// The per-message log directories whose files go with a deleted message.
const LOG_QUEUES: [QueueName; 3] = [QueueName::Bounce, QueueName::Defer, QueueName::Trace];

impl Super<'_> {
    /// mail_queue_path().
    pub(crate) fn path(&self, queue: QueueName, id: &QueueId) -> PathBuf {
        self.layout.path(queue, id)
    }

    /// postremove(): `Ok(true)` when removed, `Ok(false)` when already gone; any other
    /// error is fatal.
    pub(crate) fn remove(&self, path: &Path) -> Result<bool, Fatal> {
        match fs::remove_file(path) {
            Ok(()) => {
                self.verbose(|| format!("removed file {}", path.display()));
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(fatal!("remove file {}: {}", path.display(), errno(&e))),
        }
    }

    /// postrename(): makes missing hashed directories; `Ok(false)` when the source is
    /// gone; any other error is fatal. Like rename(2) it replaces an existing target.
    pub(crate) fn rename(&self, old: &Path, new: &Path) -> Result<bool, Fatal> {
        let mut r = fs::rename(old, new);
        if let Err(e) = &r
            && e.kind() == io::ErrorKind::NotFound
            && let Some(parent) = new.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            use std::os::unix::fs::DirBuilderExt;
            let _ = fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent);
            r = fs::rename(old, new);
        }
        match r {
            Ok(()) => {
                self.verbose(|| format!("renamed file {} as {}", old.display(), new.display()));
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(fatal!(
                "rename file {} as {}: {}",
                old.display(),
                new.display(),
                errno(&e)
            )),
        }
    }

    /// postrmdir().
    pub(crate) fn rmdir(&self, path: &Path) -> Result<(), Fatal> {
        match fs::remove_dir(path) {
            Ok(()) => {
                self.verbose(|| format!("remove directory {}", path.display()));
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(fatal!("remove directory {}: {}", path.display(), errno(&e))),
        }
    }

    /// mail_open_ok(): the path of `id` in `queue` when it is a finished regular file.
    fn open_ok(&self, queue: QueueName, id: &QueueId) -> Option<PathBuf> {
        let path = self.path(queue, id);
        let md = match fs::symlink_metadata(&path) {
            Ok(md) => md,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    self.warn(format!("{}: {}", path.display(), errno(&e)));
                }
                return None;
            }
        };
        if !md.file_type().is_file() {
            self.warn(format!(
                "{}: uid {}: not a regular file",
                path.display(),
                md.uid()
            ));
            return None;
        }
        ready(queue, md.mode()).then_some(path)
    }

    /// delete_one(): the message and its bounce/defer/trace logs, from the first of the
    /// message queues that has it.
    pub(crate) fn delete_one(&mut self, queues: &[String], id: &str) -> Result<(), Fatal> {
        let Some(id) = self.checked(id) else {
            return Ok(());
        };
        for _try in 0..2 {
            for name in queues {
                let info = queue_info(name)?;
                if !info.message {
                    continue;
                }
                let Some(path) = self.open_ok(info.queue, &id) else {
                    continue;
                };
                for log in LOG_QUEUES {
                    self.remove(&self.path(log, &id))?;
                }
                if self.remove(&path)? {
                    self.info(&plog::message(id.as_str(), Action::Removed));
                    self.counts.deleted += 1;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// requeue_one(): the message goes back through pickup and cleanup.
    pub(crate) fn requeue_one(&mut self, queues: &[String], id: &str) -> Result<(), Fatal> {
        let Some(id) = self.checked(id) else {
            return Ok(());
        };
        for _try in 0..2 {
            for name in queues {
                if name == "maildrop" {
                    continue;
                }
                let info = queue_info(name)?;
                if !info.message {
                    continue;
                }
                let Some(path) = self.open_ok(info.queue, &id) else {
                    continue;
                };
                if self.requeue_file(&path, &id)? {
                    self.info(&plog::message(id.as_str(), Action::Requeued));
                    self.counts.requeued += 1;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// hold_one(): to hold/, from any message queue but maildrop/ (whose mail is not
    /// sanitized yet) and hold/ itself.
    pub(crate) fn hold_one(&mut self, queues: &[String], id: &str) -> Result<(), Fatal> {
        let Some(id) = self.checked(id) else {
            return Ok(());
        };
        for _try in 0..2 {
            for name in queues {
                if name == "maildrop" || name == "hold" {
                    continue;
                }
                let info = queue_info(name)?;
                if !info.message {
                    continue;
                }
                let Some(path) = self.open_ok(info.queue, &id) else {
                    continue;
                };
                if self.rename(&path, &self.path(QueueName::Hold, &id))? {
                    self.info(&plog::message(id.as_str(), Action::PlacedOnHold));
                    self.counts.held += 1;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// release_one(): from hold/ to deferred/, keeping the file's time stamp (the time
    /// of its next delivery attempt), as Postfix does. Other queue names are skipped
    /// without a word.
    pub(crate) fn release_one(&mut self, queues: &[String], id: &str) -> Result<(), Fatal> {
        let Some(id) = self.checked(id) else {
            return Ok(());
        };
        for name in queues {
            if name != "hold" {
                continue;
            }
            let Some(path) = self.open_ok(QueueName::Hold, &id) else {
                continue;
            };
            if self.rename(&path, &self.path(QueueName::Deferred, &id))? {
                self.info(&plog::message(id.as_str(), Action::Released));
                self.counts.released += 1;
                break;
            }
        }
        Ok(())
    }

    /// expire_one(): sets the expiry mark on the file.
    pub(crate) fn expire_one(&mut self, queues: &[String], id: &str) -> Result<(), Fatal> {
        let Some(id) = self.checked(id) else {
            return Ok(());
        };
        for _try in 0..2 {
            for name in queues {
                let info = queue_info(name)?;
                if !info.message || name == "maildrop" {
                    continue;
                }
                let Some(path) = self.open_ok(info.queue, &id) else {
                    continue;
                };
                if self.expire(&path) {
                    self.info(&plog::message(id.as_str(), Action::Expired));
                    self.counts.expired += 1;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// exp_rel_one(): `-f`, expire and release.
    pub(crate) fn exp_rel_one(&mut self, queues: &[String], id: &str) -> Result<(), Fatal> {
        self.expire_one(queues, id)?;
        self.release_one(queues, id)
    }

    /// postexpire(): adds MAIL_QUEUE_STAT_EXPIRE to a finished file that lacks it.
    pub(crate) fn expire(&self, path: &Path) -> bool {
        let opened = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags_nofollow()
            .open(path);
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    self.warn(format!("expire file {}: {}", path.display(), errno(&e)));
                }
                return false;
            }
        };
        let Ok(md) = file.metadata() else {
            return false;
        };
        if !md.is_file() || md.mode() & 0o700 != STAT_READY || md.mode() & STAT_EXPIRE != 0 {
            return false;
        }
        let mode = (md.mode() | STAT_EXPIRE) & 0o7777;
        if let Err(e) = file.set_permissions(fs::Permissions::from_mode(mode)) {
            self.warn(format!(
                "expire file {}: cannot set permission: {}",
                path.display(),
                errno(&e)
            ));
            return false;
        }
        true
    }

    /// The operation of option `op` on `id`.
    pub(crate) fn one(&mut self, op: OneOp, queues: &[String], id: &str) -> Result<(), Fatal> {
        match op {
            'd' => self.delete_one(queues, id),
            'e' => self.expire_one(queues, id),
            'f' => self.exp_rel_one(queues, id),
            'h' => self.hold_one(queues, id),
            'H' => self.release_one(queues, id),
            'r' => self.requeue_one(queues, id),
            _ => Ok(()),
        }
    }

    /// operate_stream(): one id per line of standard input.
    pub(crate) fn operate_stream(&mut self, op: OneOp, queues: &[String]) -> Result<(), Fatal> {
        let stdin = io::stdin();
        let mut input = stdin.lock();
        let mut line = Vec::new();
        loop {
            line.clear();
            match input.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => {}
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            let id = String::from_utf8_lossy(&line).into_owned();
            self.one(op, queues, &id)?;
        }
    }

    /// The id, or a warning (mail_queue_id_ok).
    fn checked(&self, id: &str) -> Option<QueueId> {
        let parsed = QueueId::parse(id).ok();
        if parsed.is_none() {
            self.warn(format!("invalid mail queue id: {id}"));
        }
        parsed
    }
}

/// O_NOFOLLOW on an OpenOptions (safe_open's refusal of symbolic links).
trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(nix::libc::O_NOFOLLOW)
    }
}

/// `%m`: the C library's text.
pub(crate) fn errno(e: &io::Error) -> String {
    tern_config::text::errno_text(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_infos_as_postsuper() {
        let table = [
            ("maildrop", Some((true, false))),
            ("incoming", Some((true, true))),
            ("active", Some((true, true))),
            ("deferred", Some((true, true))),
            ("hold", Some((true, true))),
            ("trace", Some((false, true))),
            ("defer", Some((false, true))),
            ("bounce", Some((false, true))),
            ("flush", Some((false, true))),
            ("corrupt", None),
            ("saved", None),
            ("journal", None),
            ("../etc", None),
        ];
        for (name, want) in table {
            let got = queue_info(name).ok().map(|i| (i.message, i.recurse));
            assert_eq!(got, want, "{name}");
        }
        assert_eq!(
            queue_info("nosuch").unwrap_err().0,
            "invalid directory name: nosuch"
        );
    }

    #[test]
    fn ready_modes() {
        let table = [
            (QueueName::Deferred, 0o700, true),
            (QueueName::Deferred, 0o710, true),
            (QueueName::Deferred, 0o600, false),
            (QueueName::Incoming, 0o744, true),
            (QueueName::Maildrop, 0o444, true),
            (QueueName::Maildrop, 0o600, false),
            (QueueName::Maildrop, 0o744, false),
        ];
        for (q, mode, want) in table {
            assert_eq!(ready(q, mode), want, "{q:?} {mode:o}");
        }
    }
}
