//! Looking at and reading a user's files (`.forward`, `:include:`) with that user's rights,
//! as Postfix's stat_as(3), lstat_as(3) and open_as(3) do.
//!
//! Postfix switches its effective ids for the call. This helper runs threaded tests and
//! must not change the process's ids, so it checks instead: every directory on the way
//! must be searchable and the file readable by (uid, gid) by its mode bits, then the
//! file is read as the agent. XXX: supplementary groups and ACLs are not considered
//! (Postfix's switch honours them); the integrator may swap this for
//! `crate::privs::become_user` in the single-threaded helper.
//!
//! Security: a `.forward` or `:include:` file is the user's and untrusted; reads are
//! bounded ([`READ_LIMIT`]).

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The most of a forward or include file that is read (Postfix reads lines up to
/// line_length_limit each; 1 MB of addresses is far beyond any real list).
pub const READ_LIMIT: u64 = 1 << 20;

fn permitted(meta: &Metadata, uid: u32, gid: u32, bits: u32) -> bool {
    if uid == 0 {
        return true;
    }
    let mode = meta.mode();
    let shift = if meta.uid() == uid {
        6
    } else if meta.gid() == gid {
        3
    } else {
        0
    };
    (mode >> shift) & bits == bits
}

fn denied() -> io::Error {
    io::Error::from(io::ErrorKind::PermissionDenied)
}

/// Checks that every directory above `path` is searchable by (uid, gid).
fn search_path(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
    ancestors.reverse();
    for dir in ancestors {
        if dir.as_os_str().is_empty() {
            continue;
        }
        let meta = std::fs::metadata(dir)?;
        if !permitted(&meta, uid, gid, 0o1) {
            return Err(denied());
        }
    }
    Ok(())
}

/// stat(2) of `path` as (uid, gid).
pub fn stat_as(path: &Path, uid: u32, gid: u32) -> io::Result<Metadata> {
    search_path(path, uid, gid)?;
    std::fs::metadata(path)
}

/// lstat(2) of `path` as (uid, gid).
pub fn lstat_as(path: &Path, uid: u32, gid: u32) -> io::Result<Metadata> {
    search_path(path, uid, gid)?;
    std::fs::symlink_metadata(path)
}

/// Opens and reads `path` as (uid, gid), up to [`READ_LIMIT`] bytes.
pub fn read_as(path: &Path, uid: u32, gid: u32) -> io::Result<Vec<u8>> {
    search_path(path, uid, gid)?;
    let f = File::open(path)?;
    let meta = f.metadata()?;
    if !permitted(&meta, uid, gid, 0o4) {
        return Err(denied());
    }
    let mut data = Vec::new();
    f.take(READ_LIMIT).read_to_end(&mut data)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn mode_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod dir");
        let f = dir.path().join("f");
        std::fs::write(&f, "x").expect("write");
        let set = |m: u32| {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(m)).expect("chmod");
        };
        let me = std::fs::metadata(&f).expect("stat");
        let (uid, gid) = (me.uid(), me.gid());
        let other = 4242;
        // (mode, reader uid, reader gid, readable)
        let cases: &[(u32, u32, u32, bool)] = &[
            (0o600, uid.max(1), gid, uid != 0),
            (0o600, other, other, false),
            (0o640, other, gid, true),
            (0o604, other, other, true),
            (0o000, 0, 0, true),
        ];
        for &(mode, u, g, ok) in cases {
            set(mode);
            if u == uid.max(1) && uid == 0 {
                continue; // running as root: the owner case is the root case
            }
            assert_eq!(read_as(&f, u, g).is_ok(), ok, "mode {mode:o} as {u}:{g}");
        }
    }
}
