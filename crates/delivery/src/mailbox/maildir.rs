//! Delivery to a Maildir: local(8)'s deliver_maildir() (src/local/maildir.c) and
//! virtual(8)'s (src/virtual/maildir.c).
//!
//! As the recipient (everything here runs with the user's ids, "so that file quota
//! work"): create `tmp/SECONDS.PPID.HOST` exclusively (mode 0600; a missing `tmp/` is
//! created, with any missing parent, mode 0700), write the headers and the message
//! ([`super::copy`] with `Return-Path:`, `X-Original-To:`, `Delivered-To:`, no `From `
//! line), fsync, then hard-link it as `new/SECONDS.VDEVIINOMUSEC.HOST` (device and inode
//! in hex, microseconds in decimal: Postfix's answer to maildir.html's "unique name"
//! rules; a missing `new/` makes it create `cur/` and `new/`), and remove the `tmp/` name.
//! The host part is gethostname()'s, unescaped, as Postfix writes it.
//!
//! Errors (maildir.c): `create maildir file PATH: %m` with mbox_dsn(3) of the errno and the
//! agent's default (local 5.2.0, virtual 4.2.0); write errors as mail_copy(3) reports them.
//! On EACCES Postfix adds two warnings, `maildir access problem for UID/GID=U/G: ...` and
//! `perhaps you need to create the maildirs in advance`.
//!
//! Security: the Maildir lives where the user (or the virtual(8) administrator) says; it
//! is only touched with the user's ids, so the kernel's permission checks are the policy.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, BufRead, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::copy::{self, CopyFlags, Limited};
use super::{CopyInfo, MailboxError, Owner, mbox_dsn, strerror};
use crate::privs;

/// Everything about one Maildir delivery beyond the message.
#[derive(Debug, Clone, Copy)]
pub struct MaildirParams {
    /// The recipient's ids; `None`: the process's own.
    pub owner: Option<Owner>,
    /// local(8) `5.2.0`, virtual(8) `4.2.0`.
    pub default_dsn: &'static str,
    /// mailbox_size_limit / virtual_mailbox_limit for the one file (0: none).
    pub size_limit: u64,
}

/// local(8)'s Maildir delivery with its defaults (5.2.0, mailbox_size_limit 51200000).
/// `dir` is the Maildir root. Returns the file made in `new/`.
pub fn deliver(
    dir: &Path,
    owner: Option<Owner>,
    info: &CopyInfo<'_>,
    content: &mut dyn BufRead,
    hostname: &str,
) -> Result<PathBuf, MailboxError> {
    let params = MaildirParams {
        owner,
        default_dsn: "5.2.0",
        size_limit: 51_200_000,
    };
    deliver_with(dir, &params, info, content, hostname)
}

/// One message into the Maildir `dir`; see the module doc.
pub fn deliver_with(
    dir: &Path,
    params: &MaildirParams,
    info: &CopyInfo<'_>,
    content: &mut dyn BufRead,
    hostname: &str,
) -> Result<PathBuf, MailboxError> {
    let def = params.default_dsn;
    let _ids = match params.owner {
        Some(o) => Some(privs::become_user(o.uid, o.gid).map_err(|e| {
            MailboxError::new(
                &mbox_dsn(e.raw_os_error(), def),
                format!("set user ids: {e}"),
            )
        })?),
        None => None,
    };
    let result = write_and_link(dir, params, info, content, hostname);
    result.map_err(|(errno, mut err)| {
        if errno == Some(nix::errno::Errno::EACCES as i32) {
            let (uid, gid) = params.owner.map_or_else(
                || {
                    (
                        nix::unistd::geteuid().as_raw(),
                        nix::unistd::getegid().as_raw(),
                    )
                },
                |o| (o.uid, o.gid),
            );
            err.warnings.push(format!(
                "maildir access problem for UID/GID={uid}/{gid}: {}",
                err.text
            ));
            err.warnings
                .push("perhaps you need to create the maildirs in advance".to_owned());
        }
        err
    })
}

type Failure = (Option<i32>, MailboxError);

fn write_and_link(
    dir: &Path,
    params: &MaildirParams,
    info: &CopyInfo<'_>,
    content: &mut dyn BufRead,
    hostname: &str,
) -> Result<PathBuf, Failure> {
    let def = params.default_dsn;
    let create_error = |path: &Path, e: &io::Error| {
        (
            e.raw_os_error(),
            MailboxError::new(
                &mbox_dsn(e.raw_os_error(), def),
                format!("create maildir file {}: {}", path.display(), strerror(e)),
            ),
        )
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, usecs) = (now.as_secs(), now.subsec_micros());
    let tmpdir = dir.join("tmp");
    let tmpfile = tmpdir.join(format!("{secs}.P{}.{hostname}", std::process::id()));
    let file = match create_exclusive(&tmpfile) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            make_dirs(&tmpdir).and_then(|()| create_exclusive(&tmpfile))
        }
        other => other,
    }
    .map_err(|e| create_error(&tmpfile, &e))?;
    let st = file.metadata().map_err(|e| create_error(&tmpfile, &e))?;
    let newdir = dir.join("new");
    let newfile = newdir.join(format!(
        "{secs}.V{:x}I{:x}M{usecs}.{hostname}",
        st.dev(),
        st.ino()
    ));

    let written = write_file(&file, params.size_limit, info, content);
    let result = written.and_then(|()| {
        let linked = match std::fs::hard_link(&tmpfile, &newfile) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let _ = make_dirs(&dir.join("cur"));
                make_dirs(&newdir).and_then(|()| std::fs::hard_link(&tmpfile, &newfile))
            }
            other => other,
        };
        linked.map_err(|e| create_error(&newfile, &e))
    });
    // maildir.c unlinks the tmp/ name whatever happened (a warning if it cannot); the
    // warning has no place to go on success, so only a failure carries it.
    let removed = std::fs::remove_file(&tmpfile);
    match result {
        Ok(()) => Ok(newfile),
        Err((errno, mut err)) => {
            if let Err(e) = removed {
                err.warnings
                    .push(format!("remove {}: {}", tmpfile.display(), strerror(&e)));
            }
            Err((errno, err))
        }
    }
}

fn create_exclusive(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// make_dirs(3) with mode 0700: the directory and any missing parent.
fn make_dirs(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// mail_copy(3) into the new file, flush and fsync; on failure the file is emptied (it is
/// removed by the caller anyway).
fn write_file(
    file: &File,
    size_limit: u64,
    info: &CopyInfo<'_>,
    content: &mut dyn BufRead,
) -> Result<(), Failure> {
    let mut out = Limited {
        inner: BufWriter::with_capacity(64 * 1024, file),
        start: 0,
        written: 0,
        limit: size_limit,
    };
    let copied = copy::copy(&mut out, info, CopyFlags::MAILDIR, "", content);
    let result = match copied {
        Err(e) => Err(e),
        Ok(_) => out
            .flush()
            .and_then(|()| file.sync_all())
            .map_err(copy::CopyError::Write),
    };
    result.map_err(|e| {
        let (errno, dsn) = match &e {
            copy::CopyError::Read(io) => (
                io.raw_os_error(),
                if matches!(
                    io.raw_os_error().map(nix::errno::Errno::from_raw),
                    Some(nix::errno::Errno::EAGAIN | nix::errno::Errno::ESTALE)
                ) {
                    "4.3.0".to_owned()
                } else {
                    "5.3.0".to_owned()
                },
            ),
            copy::CopyError::Write(io) => (io.raw_os_error(), mbox_dsn(io.raw_os_error(), "5.3.0")),
        };
        let _ = file.set_len(0);
        (errno, MailboxError::new(&dsn, e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> CopyInfo<'static> {
        CopyInfo {
            sender: "s@example.test",
            arrival: 0,
            delivered_to: Some("u@example.test"),
            original_to: Some("o@example.test"),
            return_path: true,
        }
    }

    #[test]
    fn creates_dirs_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("a/Maildir");
        let new = deliver(
            &md,
            None,
            &info(),
            &mut &b"Subject: x\n\nFrom y\n"[..],
            "h.test",
        )
        .unwrap();
        for sub in ["tmp", "new", "cur"] {
            let st = std::fs::metadata(md.join(sub)).unwrap();
            assert_eq!(st.mode() & 0o777, 0o700, "{sub}");
        }
        assert_eq!(std::fs::metadata(&md).unwrap().mode() & 0o777, 0o700);
        assert_eq!(std::fs::read_dir(md.join("tmp")).unwrap().count(), 0);
        let name = new.file_name().unwrap().to_str().unwrap().to_owned();
        let parts: Vec<&str> = name.splitn(2, '.').collect();
        assert!(parts[0].bytes().all(|b| b.is_ascii_digit()), "{name}");
        assert!(
            parts[1].starts_with('V') && parts[1].ends_with(".h.test"),
            "{name}"
        );
        assert!(parts[1].contains('I') && parts[1].contains('M'), "{name}");
        let st = std::fs::metadata(&new).unwrap();
        assert_eq!(st.mode() & 0o777, 0o600);
        assert_eq!(st.nlink(), 1);
        assert_eq!(
            std::fs::read_to_string(&new).unwrap(),
            "Return-Path: <s@example.test>\nX-Original-To: o@example.test\n\
             Delivered-To: u@example.test\nSubject: x\n\nFrom y\n"
        );
    }

    #[test]
    fn too_big_for_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let params = MaildirParams {
            owner: None,
            default_dsn: "4.2.0",
            size_limit: 100,
        };
        let body = format!("S: x\n\n{}\n", "z".repeat(500));
        let err =
            deliver_with(dir.path(), &params, &info(), &mut body.as_bytes(), "h").unwrap_err();
        assert_eq!(
            (err.dsn.as_str(), err.text.as_str()),
            ("5.2.2", "error writing message: File too large")
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        let md = dir.path().join("file");
        let err = deliver(&md, None, &info(), &mut &b"x\n"[..], "h").unwrap_err();
        assert_eq!(err.dsn, "5.2.0");
        assert!(
            err.text
                .starts_with(&format!("create maildir file {}/tmp/", md.display()))
                && err.text.ends_with(": Not a directory"),
            "{}",
            err.text
        );
    }
}
