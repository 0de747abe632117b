//! File access shared by the table formats: positioned reads that report a short file as
//! such, and the temporary file that becomes a table by an atomic rename.
//!
//! Trust: the file may shrink or change under us; a short read is an error, never a panic.

use std::borrow::Cow;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::MapError;

/// The C library's text for an I/O error, as Postfix's `%m` prints it.
pub(crate) fn strerror(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => match err.kind() {
            io::ErrorKind::UnexpectedEof => "Protocol error".to_owned(),
            _ => err.to_string(),
        },
    }
}

/// Tables up to this size are read into memory when opened: one read instead of a system
/// call per lookup step (Postfix maps its tables into memory; without `unsafe` we copy).
const IN_MEMORY_LIMIT: u64 = 256 << 20;

/// A table file opened for positioned reads.
#[derive(Debug)]
pub(crate) struct ReadAt {
    file: File,
    /// The size when opened; a table is never grown in place by Tern.
    pub(crate) len: u64,
    /// The whole file, when it is small enough to hold.
    data: Option<Vec<u8>>,
}

/// Why a positioned read failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The wanted bytes lie past the end of the file.
    Short,
    Io(io::Error),
}

impl ReadAt {
    /// Opens `path`; the error is `open database PATH: REASON`.
    pub(crate) fn open(path: &str) -> Result<ReadAt, MapError> {
        let opened = File::open(path).and_then(|file| {
            let len = file.metadata()?.len();
            let data = if len <= IN_MEMORY_LIMIT {
                let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                std::io::Read::read_to_end(&mut &file, &mut data)?;
                Some(data)
            } else {
                None
            };
            // A file that changed size while read is judged by what was read.
            let len = data.as_ref().map_or(len, |d| d.len() as u64);
            Ok(ReadAt { file, len, data })
        });
        opened.map_err(|err| MapError::Config(format!("open database {path}: {}", strerror(&err))))
    }

    /// The owner's uid.
    pub(crate) fn uid(&self) -> Option<u32> {
        self.file.metadata().ok().map(|meta| meta.uid())
    }

    /// Exactly `len` bytes at `offset`: borrowed from memory when the table is held there.
    pub(crate) fn read(&self, offset: u64, len: usize) -> Result<Cow<'_, [u8]>, ReadError> {
        let end = offset.checked_add(len as u64).ok_or(ReadError::Short)?;
        if end > self.len {
            return Err(ReadError::Short);
        }
        if let Some(data) = &self.data {
            // In bounds: end <= self.len == data.len(), checked above.
            let start = usize::try_from(offset).map_err(|_| ReadError::Short)?;
            return Ok(Cow::Borrowed(&data[start..start + len]));
        }
        let mut buf = vec![0; len];
        match self.file.read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(Cow::Owned(buf)),
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Err(ReadError::Short),
            Err(err) => Err(ReadError::Io(err)),
        }
    }

    /// Up to `len` bytes at `offset` (fewer at the end of the file).
    pub(crate) fn read_upto(&self, offset: u64, len: usize) -> Result<Cow<'_, [u8]>, ReadError> {
        let left = self.len.saturating_sub(offset);
        let len = usize::try_from(left).map_or(len, |left| left.min(len));
        self.read(offset, len)
    }
}

/// The temporary file a table is written to, renamed over the table by [`TempFile::commit`].
/// While it is being written it holds an exclusive lock, so that two builders of the same
/// table do not write into one file (dict_cdb.c does the same with `NAME.cdb.tmp`).
#[derive(Debug)]
pub(crate) struct TempFile {
    out: BufWriter<File>,
    /// The lock, on the same open file as `out`.
    lock: Flock<File>,
    pub(crate) tmp_path: String,
    path: String,
}

impl TempFile {
    /// Creates `PATH.tmp` with `mode`, locked and empty.
    pub(crate) fn create(path: &str, mode: u32) -> Result<TempFile, MapError> {
        let tmp_path = format!("{path}.tmp");
        let open_err = |err: &io::Error| {
            MapError::Config(format!("open database {tmp_path}: {}", strerror(err)))
        };
        // Another builder may hold the lock and then rename the file away: lock, then check
        // that the name still leads to the file we locked, else start over.
        for _ in 0..10 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&tmp_path)
                .map_err(|err| open_err(&err))?;
            let locked = Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, errno)| open_err(&io::Error::from(errno)))?;
            let held = locked.metadata().map_err(|err| open_err(&err))?;
            match std::fs::metadata(&tmp_path) {
                Ok(named) if named.ino() == held.ino() && named.dev() == held.dev() => {}
                _ => continue,
            }
            locked.set_len(0).map_err(|err| open_err(&err))?;
            locked
                .set_permissions(Permissions::from_mode(mode & 0o7777))
                .map_err(|err| open_err(&err))?;
            let writer = locked.try_clone().map_err(|err| open_err(&err))?;
            return Ok(TempFile {
                out: BufWriter::with_capacity(1 << 20, writer),
                lock: locked,
                tmp_path,
                path: path.to_owned(),
            });
        }
        Err(open_err(&io::Error::from(io::ErrorKind::WouldBlock)))
    }

    /// The error for a failed write to the temporary file.
    pub(crate) fn write_error(&self, err: &io::Error) -> MapError {
        MapError::Config(format!(
            "error writing {}: {}",
            self.tmp_path,
            strerror(err)
        ))
    }

    /// Writes all of `bytes`.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), MapError> {
        match self.out.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(err) => Err(self.write_error(&err)),
        }
    }

    /// Writes `bytes` at `offset`, over what was written there before.
    pub(crate) fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), MapError> {
        let written = self
            .out
            .flush()
            .and_then(|()| self.out.get_ref().write_all_at(bytes, offset));
        written.map_err(|err| self.write_error(&err))
    }

    /// Flushes, syncs and renames the file over the table, then syncs the directory so that
    /// the rename survives a crash.
    pub(crate) fn commit(self) -> Result<(), MapError> {
        let TempFile {
            out,
            lock,
            tmp_path,
            path,
        } = self;
        let finish_err = |err: &io::Error| {
            MapError::Config(format!("finish database {tmp_path}: {}", strerror(err)))
        };
        let written = out.into_inner().map_err(|err| finish_err(err.error()))?;
        written.sync_all().map_err(|err| finish_err(&err))?;
        std::fs::rename(&tmp_path, &path).map_err(|err| {
            MapError::Config(format!(
                "rename database from {tmp_path} to {path}: {}",
                strerror(&err)
            ))
        })?;
        let dir = match Path::new(&path).parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        // XXX: a directory that cannot be synced (some file systems refuse) leaves the
        // rename to the kernel's own schedule; the table itself is complete either way.
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
        drop(lock);
        Ok(())
    }
}
