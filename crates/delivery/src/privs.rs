//! Effective uid/gid switching for one delivery, as Postfix's set_eugid(3): a delivery
//! agent that runs as root opens and writes a user's files with that user's effective ids
//! (so that file permissions and quotas apply to the user), and goes back to its own ids
//! afterwards.
//!
//! [`become_user`] returns a guard, [`Switched`], that restores the previous effective
//! ids and supplementary groups when dropped; guards nest (local(8) opens a spool mailbox
//! as `user:mail`, then writes it as `user:user`). When the real uid is not root the
//! process cannot switch and everything runs with its own ids: `become_user` is then a
//! no-op, as Postfix's agents are when started by an unprivileged `postfix` instance.
//!
//! # Security
//! - The switch sets the effective uid, the effective gid and the supplementary group list
//!   (to the one gid, as set_eugid does): a root process keeps group 0 in its list, and
//!   writing a user's file with group root still in the list would give the user's file
//!   operations root's group rights.
//! - **The process must be single-threaded.** Linux keeps credentials per thread; glibc's
//!   `seteuid()` and friends broadcast the change to every thread of the process (the
//!   "setxid" signal), so another thread that is, say, opening a queue file would suddenly
//!   do so as the recipient, and the recipient's open files would be made with whatever ids
//!   the other thread switched to. Tern's delivery helper is therefore a separate,
//!   single-threaded process; [`become_user`] counts the process's threads (the link
//!   count of /proc/self/task, else `Threads:` in /proc/self/status) and refuses to
//!   switch (an error, never a silent half-switch) when there are others.
//! - A failure to switch back is a broken invariant (root lost its own rights while holding
//!   a user's): the guard panics rather than going on with the wrong ids.

use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::sync::{Mutex, PoisonError};

use nix::unistd::{Gid, Uid, getegid, geteuid, getgroups, getuid, setegid, seteuid, setgroups};

/// A switch of effective ids; dropping it restores the ids that were in force before.
#[derive(Debug)]
#[must_use = "the ids switch back when the guard is dropped"]
pub struct Switched {
    /// `None` when nothing was switched (not root).
    previous: Option<Previous>,
}

#[derive(Debug)]
struct Previous {
    euid: Uid,
    egid: Gid,
    groups: Vec<Gid>,
}

/// Whether this process can switch ids (its real uid is root).
pub fn privileged() -> bool {
    getuid().is_root()
}

/// Switches the effective uid and gid (and the supplementary groups, to `gid` alone) to
/// `uid`/`gid`, until the guard is dropped. A no-op when the process is not privileged.
/// Fails when the process has more than one thread (see the module doc) or when the
/// kernel refuses a switch.
pub fn become_user(uid: u32, gid: u32) -> io::Result<Switched> {
    if !privileged() {
        return Ok(Switched { previous: None });
    }
    assert_single_threaded()?;
    let (euid, egid) = (geteuid(), getegid());
    let groups = match last_set(euid, egid) {
        Some(groups) => groups,
        None => getgroups().map_err(io::Error::from)?,
    };
    let previous = Previous { euid, egid, groups };
    if let Err(e) = set_ids(
        Uid::from_raw(uid),
        Gid::from_raw(gid),
        &[Gid::from_raw(gid)],
    ) {
        // Back to where we were before reporting: a half-made switch must not stay.
        restore(&previous);
        return Err(e);
    }
    Ok(Switched {
        previous: Some(previous),
    })
}

impl Drop for Switched {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous {
            restore(previous);
        }
    }
}

/// Fails unless this process has exactly one thread. Where /proc is not mounted the
/// check cannot be made and passes.
///
/// The count is the link count of /proc/self/task (procfs gives that directory 2 + one
/// link per thread, as Linux has since 2.6): one stat, where reading /proc/self/status
/// costs the kernel a page of text; this runs at every switch of every delivery. A
/// link count below 3 (a procfs that counts otherwise) falls back to `Threads:` in
/// /proc/self/status.
pub fn assert_single_threaded() -> io::Result<()> {
    let threads = match std::fs::metadata("/proc/self/task") {
        Ok(m) if m.nlink() >= 3 => Some(m.nlink() - 2),
        Ok(_) => status_threads(),
        Err(_) => return Ok(()),
    };
    match threads {
        Some(1) | None => Ok(()),
        Some(n) => Err(io::Error::other(format!(
            "refusing to switch user ids in a process with {n} threads: \
             set*id calls apply to every thread (run deliveries in a single-threaded helper)"
        ))),
    }
}

/// `Threads:` of /proc/self/status.
fn status_threads() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse::<u64>().ok())
}

/// The ids and group list the last successful [`set_ids`] made. This module is the only
/// code of the process that changes them (the helper's commands change theirs in the
/// child, after fork), so while the effective ids are still these, the group list is
/// too, and a switch need not ask the kernel: nix's getgroups() reads
/// /proc/sys/kernel/ngroups_max for its buffer size at every call.
static LAST_SET: Mutex<Option<(Uid, Gid, Vec<Gid>)>> = Mutex::new(None);

fn last_set(euid: Uid, egid: Gid) -> Option<Vec<Gid>> {
    let last = LAST_SET.lock().unwrap_or_else(PoisonError::into_inner);
    match &*last {
        Some((u, g, groups)) if *u == euid && *g == egid => Some(groups.clone()),
        _ => None,
    }
}

/// set_eugid(3): root first (only root may change the gid and the group list), then the
/// gid and groups, then the uid.
fn set_ids(uid: Uid, gid: Gid, groups: &[Gid]) -> io::Result<()> {
    // Whatever happens below, the ids are no longer known until the switch succeeds.
    *LAST_SET.lock().unwrap_or_else(PoisonError::into_inner) = None;
    if !geteuid().is_root() {
        seteuid(Uid::from_raw(0))?;
    }
    setegid(gid)?;
    setgroups(groups)?;
    if !uid.is_root() {
        seteuid(uid)?;
    }
    *LAST_SET.lock().unwrap_or_else(PoisonError::into_inner) = Some((uid, gid, groups.to_vec()));
    Ok(())
}

fn restore(previous: &Previous) {
    if let Err(e) = set_ids(previous.euid, previous.egid, &previous.groups) {
        // The real uid is root (checked before switching), so going back to euid 0 and
        // then to the saved ids cannot fail unless the kernel broke its promises.
        panic!("privs: cannot restore effective ids: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_in_the_threaded_test_harness() {
        // libtest runs every test on a thread of its own, so there are at least two here.
        let err = assert_single_threaded().unwrap_err();
        assert!(err.to_string().contains("threads"), "{err}");
        // Both ways of counting agree.
        let by_links = std::fs::metadata("/proc/self/task").unwrap().nlink() - 2;
        assert!(by_links >= 2, "{by_links}");
        assert!(status_threads().unwrap() >= 2);
        if privileged() {
            let before = (geteuid(), getegid());
            assert!(become_user(65534, 65534).is_err());
            assert_eq!((geteuid(), getegid()), before);
        }
    }
}
