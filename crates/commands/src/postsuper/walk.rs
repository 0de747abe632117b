//! postsuper's pass over whole queues (postsuper.c, super()): the repair work of `-s`,
//! `-S` and `-p`, and the mass operations `-d ALL`, `-h ALL`, `-H ALL`, `-r ALL`,
//! `-e ALL`, `-f ALL`.
//!
//! Each named queue is walked with its hashed subdirectories (one-character names,
//! entered only where the queue may be hashed; maildrop/ never is). For each name, in
//! postsuper.c's order: a foreign directory is removed (if empty); `-d ALL` removes
//! everything and counts finished message files; a non-file, and with `-p` an
//! unfinished message file older than seven days, is removed; `-s` strips the `#FIX`
//! suffix a previous pass left; a name that is not a queue id is reported as `bogus
//! file name`; `-s` renames a message file whose name does not match its inode to
//! `NEWID#FIX` (the second pass moves it into place); then the mass operation; then
//! `-s` moves a file that sits in the wrong hashed directory. A subdirectory deeper
//! than the queue's hash_queue_depth is removed when its walk ends.
//!
//! Tern's maildrop files are named from time and pid, not inode: `-s` leaves their
//! names alone.
//!
//! Security: entries are looked at with lstat and never followed; only names that
//! parse as queue ids are turned into new paths.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tern_queue::{IdForm, QueueId, QueueName};

use super::ops::{queue_info, ready};
use super::{Super, action};
use crate::fatal;
use crate::msg::Fatal;

/// MAX_TEMP_AGE: an unfinished message file older than this is purged by `-p`.
const MAX_TEMP_AGE: i64 = 7 * 24 * 60 * 60;

/// The suffix of a file renamed to match its inode; not a valid queue id, so the
/// queue manager leaves such files alone.
const SUFFIX: &str = "#FIX";

/// How deep the walk goes (hash_queue_depth is at most 16).
const MAX_DEPTH: usize = 16;

impl Super<'_> {
    /// One pass over `queues` for the `act` bits.
    pub(crate) fn super_pass(&mut self, queues: &[String], mut act: u32) -> Result<(), Fatal> {
        for name in queues {
            self.verbose(|| format!("queue: {name}"));
            let info = queue_info(name)?;
            let wanted = self.layout.depth(info.queue);
            if wanted > 0 && !info.recurse {
                return Err(fatal!("{name} queue must not be hashed"));
            }
            self.walk_dir(
                &self.layout.dir(info.queue),
                0,
                wanted,
                info.queue,
                &mut act,
            )?;
        }
        Ok(())
    }

    fn walk_dir(
        &mut self,
        dir: &Path,
        depth: usize,
        wanted: usize,
        queue: QueueName,
        act: &mut u32,
    ) -> Result<(), Fatal> {
        let info = queue_info(queue.as_str())?;
        let mut names: Vec<String> = match fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Err(e) => {
                return Err(fatal!(
                    "open directory {}: {}",
                    dir.display(),
                    super::ops::errno(&e)
                ));
            }
        };
        names.sort();
        for name in names {
            let path = dir.join(&name);
            if name.len() == 1 && info.recurse && depth < MAX_DEPTH {
                // A hash subdirectory (or a one-letter file: lstat decides below).
                if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                    self.walk_dir(&path, depth + 1, wanted, queue, act)?;
                    if depth + 1 > wanted {
                        self.rmdir(&path)?;
                    }
                    continue;
                }
            }
            self.entry(&path, &name, queue, info.message, act)?;
        }
        Ok(())
    }

    /// One directory entry that is not a hash subdirectory.
    fn entry(
        &mut self,
        actual: &Path,
        name: &str,
        queue: QueueName,
        message: bool,
        act: &mut u32,
    ) -> Result<(), Fatal> {
        let Ok(st) = fs::symlink_metadata(actual) else {
            return Ok(());
        };
        if st.is_dir() {
            // A foreign directory: removed if it can be; a compromised maildrop must
            // not stop the run.
            match fs::remove_dir(actual) {
                Ok(()) => self.verbose(|| format!("remove subdirectory {}", actual.display())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => self.warn(format!(
                    "remove subdirectory {}: {}",
                    actual.display(),
                    super::ops::errno(&e)
                )),
            }
            return Ok(());
        }
        let is_ready = ready(queue, st.mode());
        if *act & action::DELETE_ALL != 0 {
            if self.remove(actual)? && message && is_ready {
                self.counts.deleted += 1;
            }
            return Ok(());
        }
        if !st.is_file()
            || (*act & action::PURGE != 0
                && message
                && !is_ready
                && now() > st.mtime().saturating_add(MAX_TEMP_AGE))
        {
            self.remove(actual)?;
            return Ok(());
        }
        let mut actual = actual.to_path_buf();
        let mut name = name.to_owned();
        if *act & action::STRUCT != 0
            && let Some(stripped) = name.strip_suffix(SUFFIX)
        {
            let Ok(id) = QueueId::parse(stripped) else {
                self.warn(format!("bogus file name: {}", actual.display()));
                return Ok(());
            };
            if message && queue != QueueName::Maildrop {
                match id.inode() {
                    None => {
                        self.warn(format!("bogus file name: {}", actual.display()));
                        return Ok(());
                    }
                    Some(inum) if inum != st.ino() => {
                        self.warn(format!("name/inode mismatch: {}", actual.display()));
                        return Ok(());
                    }
                    Some(_) => {}
                }
            }
            let wanted = self.path(queue, &id);
            if !self.rename(&actual, &wanted)? {
                return Ok(());
            }
            if message {
                self.counts.inode_fixed += 1;
            }
            actual = wanted;
            id.as_str().clone_into(&mut name);
        }
        let Ok(id) = QueueId::parse(&name) else {
            self.warn(format!("bogus file name: {}", actual.display()));
            return Ok(());
        };
        if *act & action::STRUCT != 0 && message && queue != QueueName::Maildrop {
            let Some(inum) = id.inode() else {
                self.warn(format!("bogus file name: {}", actual.display()));
                return Ok(());
            };
            let long = id.form() == IdForm::Long;
            if (long && !self.long_ids)
                || (inum != st.ino() && (!long || *act & action::STRUCT_RED != 0))
            {
                self.counts.inode_mismatch += 1;
                *act &= !action::BY_WILDCARD;
                self.fix_queue_id(&actual, queue, &id, st.ino())?;
                return Ok(());
            }
        }
        if *act & action::REQUEUE_ALL != 0 && message && queue != QueueName::Maildrop {
            if is_ready && self.requeue_file(&actual, &id)? {
                self.counts.requeued += 1;
            }
            return Ok(());
        }
        if *act & (action::EXPIRE_ALL | action::EXP_REL_ALL) != 0
            && message
            && is_ready
            && queue != QueueName::Maildrop
            && self.expire(&actual)
        {
            self.counts.expired += 1;
        }
        if *act & action::HOLD_ALL != 0
            && message
            && queue != QueueName::Maildrop
            && queue != QueueName::Hold
        {
            if self.rename(&actual, &self.path(QueueName::Hold, &id))? {
                self.counts.held += 1;
            }
            return Ok(());
        }
        if *act & (action::RELEASE_ALL | action::EXP_REL_ALL) != 0 && queue == QueueName::Hold {
            if self.rename(&actual, &self.path(QueueName::Deferred, &id))? {
                self.counts.released += 1;
            }
            return Ok(());
        }
        if *act & action::STRUCT != 0 {
            let wanted = self.path(queue, &id);
            if wanted != actual {
                self.counts.position_mismatch += 1;
                self.rename(&actual, &wanted)?;
            }
        }
        Ok(())
    }

    /// fix_queue_id(): renames the logs, then the message file, to `NEWID#FIX`, where
    /// NEWID keeps the time part of the old id and takes the file's inode (and becomes
    /// short when long ids are off).
    fn fix_queue_id(
        &self,
        actual: &Path,
        queue: QueueName,
        old: &QueueId,
        ino: u64,
    ) -> Result<(), Fatal> {
        let new = fixed_id(old, ino, self.long_ids);
        let Ok(new_id) = QueueId::parse(&new) else {
            return Ok(());
        };
        for log in [QueueName::Bounce, QueueName::Defer, QueueName::Trace] {
            let from = self.path(log, old);
            let to = with_suffix(self.path(log, &new_id));
            self.rename(&from, &to)?;
        }
        self.rename(actual, &with_suffix(self.path(queue, &new_id)))?;
        Ok(())
    }
}

/// The id a file should have: `old`'s time part and `ino`.
fn fixed_id(old: &QueueId, ino: u64, long_ids: bool) -> String {
    let s = old.as_str();
    match (old.form(), s.rfind('z')) {
        (IdForm::Long, Some(z)) if long_ids => {
            // QueueId::long(0, 0, ino) ends with `z` and the inode in base 51.
            let l = QueueId::long(0, 0, ino);
            let tail = l.as_str().rsplit_once('z').map_or("", |(_, t)| t);
            format!("{}z{tail}", &s[..z])
        }
        // Long to short: the hex microseconds (the hash key) and the inode.
        (IdForm::Long, _) => format!("{}{ino:X}", old.hash_key()),
        (IdForm::Short, _) => format!("{}{ino:X}", &s[..s.len().min(5)]),
    }
}

fn with_suffix(p: PathBuf) -> PathBuf {
    let mut s = p.into_os_string();
    s.push(SUFFIX);
    PathBuf::from(s)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_ids() {
        let short = QueueId::parse("C954098E5B8").unwrap();
        let long = QueueId::long(1_700_000_000, 0xC9540, 77);
        let table = [
            (&short, 0x1234, false, "C95401234".to_owned()),
            (&short, 0x1234, true, "C95401234".to_owned()),
            (&long, 0x1234, false, "C95401234".to_owned()),
            (
                &long,
                99,
                true,
                QueueId::long(1_700_000_000, 0xC9540, 99)
                    .as_str()
                    .to_owned(),
            ),
        ];
        for (old, ino, long_ids, want) in table {
            assert_eq!(fixed_id(old, ino, long_ids), want, "{old} {ino}");
        }
    }
}
