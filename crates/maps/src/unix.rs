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
                Ok(Some(user)) => Ok(Some(passwd_line(&user))),
                found => self.miss(found.err(), "password", || {
                    working("/etc/passwd", || {
                        User::from_uid(Uid::from_raw(0)).ok().flatten().is_some()
                    })
                }),
            },
            Kind::Group => match Group::from_name(key) {
                Ok(Some(group)) => Ok(Some(group_line(&group))),
                found => self.miss(found.err(), "group", || {
                    working("/etc/group", || {
                        Group::from_gid(Gid::from_raw(0)).ok().flatten().is_some()
                    })
                }),
            },
        }
    }

    /// A name that was not found: not found, if the database works. dict_unix.c checks
    /// that once per process, at the first miss, by looking up id 0; Tern checks at every
    /// miss, because a miss can also be the name service failing: once glibc has loaded
    /// its NSS modules, getpwnam_r(3) with no descriptor left (EMFILE) returns 0 and no
    /// entry, errno cleared, exactly as for an unknown name. In one process serving every
    /// session, "not found" then would be `550 User unknown` for real users. `works`
    /// says whether the database works (see [`working`]); if not, the miss is a
    /// temporary error (451 4.3.0).
    fn miss(
        &self,
        err: Option<nix::Error>,
        what: &str,
        works: impl FnOnce() -> Result<(), nix::Error>,
    ) -> Result<Option<String>, MapError> {
        // getpwnam_r's "no such entry" errnos (POSIX allows them for a miss) are a miss;
        // any other error is the lookup failing.
        let failed = err.filter(|e| {
            !matches!(
                e,
                nix::Error::ENOENT | nix::Error::ESRCH | nix::Error::EBADF | nix::Error::EPERM
            )
        });
        let failed = match failed {
            Some(e) => Some(e),
            None => match works() {
                Ok(()) => return Ok(None),
                Err(e) => Some(e),
            },
        };
        let reason = match failed {
            None | Some(nix::Error::UnknownErrno) => crate::fail::APPLICATION_ERROR,
            Some(e) => e.desc(),
        };
        let text = format!("cannot access UNIX {what} database: {reason}");
        (self.warn)(&text);
        Err(MapError::Retry(text))
    }
}

/// Whether the name service answers: its file can be opened (no descriptor shortage:
/// the id-0 lookup alone does not tell, since nss-systemd makes up root without any
/// file) and id 0 is found (dict_unix.c's check). The error says why not; a database
/// without id 0 is `UnknownErrno`, logged as dict_unix.c's "Application error".
fn working(file: &str, zero_found: impl FnOnce() -> bool) -> Result<(), nix::Error> {
    if let Err(e) = std::fs::File::open(file)
        && let Some(n) = e.raw_os_error()
        && matches!(
            nix::Error::from_raw(n),
            nix::Error::EMFILE | nix::Error::ENFILE | nix::Error::ENOMEM
        )
    {
        return Err(nix::Error::from_raw(n));
    }
    if zero_found() {
        Ok(())
    } else {
        Err(nix::Error::UnknownErrno)
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

    #[test]
    fn a_failing_name_service_is_a_temporary_error() {
        let map = UnixMap {
            spec: "unix:passwd.byname".to_owned(),
            kind: Kind::Passwd,
            fold: true,
            warn: OpenFlags::default().warn,
            cache: Mutex::new(HashMap::new()),
        };
        // (error, id 0 found, answer): Err is Retry.
        let table = [
            (None, true, Ok(None)),
            (Some(nix::Error::ENOENT), true, Ok(None)),
            (Some(nix::Error::ESRCH), true, Ok(None)),
            (Some(nix::Error::EMFILE), true, Err("Too many open files")),
            (Some(nix::Error::EIO), true, Err("I/O error")),
            // glibc's answer with no descriptor left: no error, no entry, and no id 0.
            (None, false, Err("Application error")),
        ];
        for (err, zero, want) in table {
            let works = || working("/etc/passwd", || zero);
            match (map.miss(err, "password", works), want) {
                (Err(MapError::Retry(text)), Err(why)) => assert_eq!(
                    text,
                    format!("cannot access UNIX password database: {why}"),
                    "{err:?}"
                ),
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{err:?}"),
                (got, want) => panic!("{err:?}: {got:?}, want {want:?}"),
            }
        }
    }
}
