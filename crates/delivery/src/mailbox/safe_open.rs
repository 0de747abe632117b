//! safe_open(3): open or create a file in a directory that someone else may write, without
//! being lured into writing elsewhere.
//!
//! An existing file must be a regular file (not a directory), have exactly one hard link
//! (a hard link to `/etc/passwd` planted in a world-writable spool would otherwise be
//! appended to), and the name must still point at the very file that was opened (`lstat`
//! after `fstat`: same device, inode, link count and mode), which rules out a symlink;
//! Postfix allows one exception, a symlink owned by root in a directory that only root can
//! write (Solaris's /dev). A new file is created with `O_CREAT|O_EXCL`, which never follows
//! a symlink, and optionally chowned. Opening is non-blocking, so a FIFO planted as the
//! mailbox cannot hang the agent.
//!
//! Security: this module decides whether a path may be written; it trusts nothing in the
//! directory. Its texts are Postfix's (`file is a symbolic link`, `file has 2 hard links`,
//! `cannot create file exclusively: File exists`, ...).

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;

/// Why a safe open failed: `errno` for the DSN (mbox_dsn(3)) and Postfix's reason text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct SafeOpenError {
    pub errno: Option<i32>,
    pub text: String,
}

impl SafeOpenError {
    fn io(prefix: &str, e: &io::Error) -> Self {
        SafeOpenError {
            errno: e.raw_os_error(),
            text: format!("{prefix}: {}", super::strerror(e)),
        }
    }

    fn perm(errno: Errno, text: String) -> Self {
        SafeOpenError {
            errno: Some(errno as i32),
            text,
        }
    }
}

/// How to open.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// Create the file when missing (`O_CREAT`), with these permission bits.
    pub create: Option<u32>,
    /// After creating, chown to (uid, gid).
    pub chown: Option<(u32, u32)>,
}

/// Opens `path` for appending (`O_WRONLY|O_APPEND|O_NONBLOCK`) under safe_open(3)'s rules;
/// returns the file and its `fstat`.
pub fn open_append(path: &Path, mode: Mode) -> Result<(File, Metadata), SafeOpenError> {
    match open_existing(path) {
        Err(e) if e.errno == Some(Errno::ENOENT as i32) && mode.create.is_some() => {
            match create(path, mode) {
                // Someone made it in between: open what is there, carefully.
                Err(e) if e.errno == Some(Errno::EEXIST as i32) => open_existing(path),
                other => other,
            }
        }
        other => other,
    }
}

fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.append(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits());
    o
}

fn open_existing(path: &Path) -> Result<(File, Metadata), SafeOpenError> {
    let file = options()
        .open(path)
        .map_err(|e| SafeOpenError::io("cannot open file", &e))?;
    let fst = file
        .metadata()
        .map_err(|e| SafeOpenError::io("bad open file status", &e))?;
    if fst.nlink() != 1 {
        return Err(SafeOpenError::perm(
            Errno::EPERM,
            format!("file has {} hard links", fst.nlink()),
        ));
    }
    if fst.is_dir() {
        return Err(SafeOpenError::perm(
            Errno::EISDIR,
            "file is a directory".to_owned(),
        ));
    }
    let lst = std::fs::symlink_metadata(path).map_err(|e| {
        SafeOpenError::perm(
            Errno::EPERM,
            format!("file status changed unexpectedly: {}", super::strerror(&e)),
        )
    })?;
    if lst.file_type().is_symlink() {
        if lst.uid() == 0 && parent_is_roots_alone(path) {
            return Ok((file, fst));
        }
        return Err(SafeOpenError::perm(
            Errno::EPERM,
            "file is a symbolic link".to_owned(),
        ));
    }
    if fst.dev() != lst.dev()
        || fst.ino() != lst.ino()
        || fst.nlink() != lst.nlink()
        || fst.mode() != lst.mode()
    {
        return Err(SafeOpenError::perm(
            Errno::EPERM,
            "file status changed unexpectedly".to_owned(),
        ));
    }
    Ok((file, fst))
}

/// safe_open.c: a root-owned symlink is fine only in a directory that is root's and
/// writable by no group or other (a symlink's link(2) could otherwise be planted).
fn parent_is_roots_alone(path: &Path) -> bool {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::metadata(parent).is_ok_and(|st| st.uid() == 0 && st.mode() & 0o022 == 0)
}

fn create(path: &Path, mode: Mode) -> Result<(File, Metadata), SafeOpenError> {
    let file = options()
        .create_new(true)
        .mode(mode.create.unwrap_or(0o600))
        .open(path)
        .map_err(|e| SafeOpenError::io("cannot create file exclusively", &e))?;
    if let Some((uid, gid)) = mode.chown {
        // safe_open.c: on failure, do not remove the file: "Something else may have
        // opened the file in the mean time."
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
            .map_err(|e| SafeOpenError::io("cannot change file ownership", &e))?;
    }
    let st = file
        .metadata()
        .map_err(|e| SafeOpenError::io("bad open file status", &e))?;
    Ok((file, st))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: Mode = Mode {
        create: Some(0o600),
        chown: None,
    };

    #[test]
    fn refusals() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("target"), "x").unwrap();
        std::os::unix::fs::symlink(d.join("target"), d.join("sym")).unwrap();
        std::fs::write(d.join("two"), "x").unwrap();
        std::fs::hard_link(d.join("two"), d.join("two-b")).unwrap();
        std::fs::create_dir(d.join("dir")).unwrap();
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling")).unwrap();
        let table: &[(&str, &str)] = &[
            ("two", "file has 2 hard links"),
            ("dir", "cannot open file: Is a directory"),
            ("dangling", "cannot open file: No such file or directory"),
        ];
        for (name, want) in table {
            let err = open_append(&d.join(name), CREATE).unwrap_err();
            assert_eq!(err.text, *want, "{name}");
        }
        // A symlink owned by root in a temp dir (mode 0700 but owned by whoever runs the
        // tests): refused unless both are root's and the dir is root's alone.
        let r = open_append(&d.join("sym"), CREATE);
        let roots = nix::unistd::geteuid().is_root() && parent_is_roots_alone(&d.join("sym"));
        assert_eq!(r.is_ok(), roots);
        if !roots {
            assert_eq!(r.unwrap_err().text, "file is a symbolic link");
        }
        assert!(!d.join("nowhere").exists());
    }

    #[test]
    fn creates_with_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("new");
        let (_, st) = open_append(&p, CREATE).unwrap();
        assert_eq!(st.mode() & 0o7777, 0o600);
        assert!(st.is_file());
        let missing = open_append(
            &dir.path().join("none"),
            Mode {
                create: None,
                chown: None,
            },
        )
        .unwrap_err();
        assert_eq!(missing.text, "cannot open file: No such file or directory");
    }
}
