//! `unix:passwd.byname` and `unix:group.byname`: the system's user and group databases
//! (postconf(5), "unix"; util/dict_unix.c), as getpwnam(3) and getgrnam(3) see them.
//!
//! A user's value is its passwd line, `name:passwd:uid:gid:gecos:dir:shell`; a group's is
//! `name:passwd:gid:member,member,...`. Keys are folded to lower case unless the caller
//! turned folding off (`postmap -f`), so `ROOT` finds `root`. These tables cannot list
//! their entries.
//!
//! Answers are kept for [`CACHE_TTL`] (found and not found alike, never errors): a name
//! service lookup costs dozens of system calls (the password file, systemd's userdb
//! directories), and smtpd asks once or twice per recipient. Postfix asks proxymap, which
//! asks the C library each time; a user added or removed is seen by Tern within
//! [`CACHE_TTL`].
//!
//! Trust: the answers come from the C library's name service, which we trust as Postfix
//! does. When a name is not found and even uid 0 (gid 0) cannot be found, the database is
//! taken to be unreachable: a warning once, and a lookup error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::unistd::{Gid, Group, Uid, User};

use crate::{Map, MapError, OpenFlags, Warn};

/// Opens `unix:NAME`.
pub fn open(name: &str, flags: &OpenFlags) -> Result<Box<dyn Map>, MapError> {
    let kind = match name {
        "passwd.byname" => Kind::Passwd,
        "group.byname" => Kind::Group,
        "" => {
            return Err(MapError::Config(
                "open dictionary: expecting \"type:name\" form instead of \"unix:\"".to_owned(),
            ));
        }
        _ => return Err(MapError::Config(format!("unknown table: unix:{name}"))),
    };
    Ok(Box::new(UnixMap {
        spec: format!("unix:{name}"),
        kind,
        fold: flags.fold_fix,
        warn: flags.warn.clone(),
        cache: Mutex::new(HashMap::new()),
    }))
}

/// How long an answer is kept.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// The most answers kept; when full, the cache starts over.
const CACHE_MAX: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Passwd,
    Group,
}

/// A `unix:` table.
pub struct UnixMap {
    spec: String,
    kind: Kind,
    fold: bool,
    warn: Warn,
    cache: Mutex<HashMap<String, (Instant, Option<String>)>>,
}

impl std::fmt::Debug for UnixMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixMap")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// dict_unix.c checks the database once per process, after the first miss.
static PASSWD_CHECKED: AtomicBool = AtomicBool::new(false);
static GROUP_CHECKED: AtomicBool = AtomicBool::new(false);

impl Map for UnixMap {
    fn spec(&self) -> &str {
        &self.spec
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, MapError> {
        let key = if self.fold {
            key.to_lowercase()
        } else {
            key.to_owned()
        };
        // A name with a NUL cannot be in the database (nix would refuse it).
        if key.contains('\0') {
            return Ok(None);
        }
        if let Ok(cache) = self.cache.lock()
            && let Some((at, answer)) = cache.get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(answer.clone());
        }
        let answer = self.ask(&key)?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), answer.clone()));
        }
        Ok(answer)
    }

    fn sequence(&self) -> Result<Vec<(String, String)>, MapError> {
        Err(crate::fail::no_sequence(&self.spec))
    }
}

impl UnixMap {
    /// The name service's answer for `key`.
    fn ask(&self, key: &str) -> Result<Option<String>, MapError> {
        match self.kind {
            Kind::Passwd => match User::from_name(key) {
                Ok(Some(user)) => {
                    PASSWD_CHECKED.store(true, Ordering::Relaxed);
                    Ok(Some(passwd_line(&user)))
                }
                found => self.miss(
                    found.err(),
                    &PASSWD_CHECKED,
                    "password",
                    User::from_uid(Uid::from_raw(0)).ok().flatten().is_some(),
                ),
            },
            Kind::Group => match Group::from_name(key) {
                Ok(Some(group)) => {
                    GROUP_CHECKED.store(true, Ordering::Relaxed);
                    Ok(Some(group_line(&group)))
                }
                found => self.miss(
                    found.err(),
                    &GROUP_CHECKED,
                    "group",
                    Group::from_gid(Gid::from_raw(0)).ok().flatten().is_some(),
                ),
            },
        }
    }

    /// A name that was not found: not found, unless this is the first miss and the
    /// database cannot even find id 0.
    fn miss(
        &self,
        err: Option<nix::Error>,
        checked: &AtomicBool,
        what: &str,
        zero_found: bool,
    ) -> Result<Option<String>, MapError> {
        if checked.swap(true, Ordering::Relaxed) || zero_found {
            return Ok(None);
        }
        let reason = err.map_or(crate::fail::APPLICATION_ERROR, |e| e.desc());
        let text = format!("cannot access UNIX {what} database: {reason}");
        (self.warn)(&text);
        Err(MapError::Retry(text))
    }
}

/// `name:passwd:uid:gid:gecos:dir:shell`, as dict_unix.c formats a passwd entry.
fn passwd_line(user: &User) -> String {
    format!(
        "{}:{}:{}:{}:{}:{}:{}",
        user.name,
        user.passwd.to_string_lossy(),
        user.uid,
        user.gid,
        user.gecos.to_string_lossy(),
        user.dir.display(),
        user.shell.display()
    )
}

/// `name:passwd:gid:member,member`, as dict_unix.c formats a group entry.
fn group_line(group: &Group) -> String {
    format!(
        "{}:{}:{}:{}",
        group.name,
        group.passwd.to_string_lossy(),
        group.gid,
        group.mem.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        let flags = OpenFlags::default();
        let passwd = open("passwd.byname", &flags).unwrap();
        let root = passwd.lookup("root").unwrap().unwrap();
        assert!(
            root.starts_with("root:") && root.contains(":0:0:"),
            "{root}"
        );
        assert_eq!(passwd.lookup("ROOT").unwrap(), Some(root));
        assert_eq!(passwd.lookup("no-such-user-xyz").unwrap(), None);
        let group = open("group.byname", &flags).unwrap();
        assert!(group.lookup("root").unwrap().unwrap().starts_with("root:"));
        let unfolded = OpenFlags {
            fold_fix: false,
            ..OpenFlags::default()
        };
        let passwd = open("passwd.byname", &unfolded).unwrap();
        assert_eq!(passwd.lookup("ROOT").unwrap(), None);
        assert_eq!(
            open("shadow", &flags).unwrap_err().to_string(),
            "unknown table: unix:shadow"
        );
        assert_eq!(
            passwd.sequence().unwrap_err().to_string(),
            "table unix:passwd.byname: sequence operation is not supported"
        );
    }
}
