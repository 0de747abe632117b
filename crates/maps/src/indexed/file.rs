//! File access shared by the table formats: positioned reads that report a short file as
//! such, and the temporary file that becomes a table by an atomic rename.
//!
//! Trust: the file may shrink or change under us; a short read is an error, never a panic.
//! A held table is read block by block as lookups reach it, so a file rewritten in place
//! while open can give blocks of both versions, as a mapped file (Postfix's) would; every
//! writer here replaces a table by renaming a new file over it, which an open table never
//! sees.

use std::borrow::Cow;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::OnceLock;

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

/// Tables up to this size are held in memory once read: a lookup step costs no system call
/// (Postfix maps its tables into memory; without `unsafe` we copy).
const IN_MEMORY_LIMIT: u64 = 256 << 20;

/// A held table is read in blocks of this size, each on first use: a few lookups in a large
/// table (`postmap -q KEY`) read a few blocks, not the whole file, as a mapping would fault
/// in a few pages. A multiple of LMDB's 4096-byte page, so a page lies in one block.
const BLOCK: usize = 64 << 10;

/// A table file opened for positioned reads.
#[derive(Debug)]
pub(crate) struct ReadAt {
    file: File,
    /// The size when opened; a table is never grown in place by Tern.
    pub(crate) len: u64,
    /// The file's blocks, each filled when first read, when the file is small enough to hold.
    blocks: Option<Vec<OnceLock<Box<[u8]>>>>,
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
            // At most IN_MEMORY_LIMIT / BLOCK = 4096 blocks.
            let blocks = usize::try_from(len.div_ceil(BLOCK as u64))
                .ok()
                .filter(|_| len <= IN_MEMORY_LIMIT)
                .map(|count| (0..count).map(|_| OnceLock::new()).collect());
            Ok(ReadAt { file, len, blocks })
        });
        opened.map_err(|err| MapError::Config(format!("open database {path}: {}", strerror(&err))))
    }

    /// The owner's uid.
    pub(crate) fn uid(&self) -> Option<u32> {
        self.file.metadata().ok().map(|meta| meta.uid())
    }

    /// Exactly `len` bytes at `offset`: borrowed from memory when they lie in one held block.
    pub(crate) fn read(&self, offset: u64, len: usize) -> Result<Cow<'_, [u8]>, ReadError> {
        let end = offset.checked_add(len as u64).ok_or(ReadError::Short)?;
        if end > self.len {
            return Err(ReadError::Short);
        }
        if len == 0 {
            return Ok(Cow::Borrowed(&[]));
        }
        if let Some(blocks) = &self.blocks {
            // Both fit: end <= self.len <= IN_MEMORY_LIMIT.
            let (Ok(start), Ok(end)) = (usize::try_from(offset), usize::try_from(end)) else {
                return Err(ReadError::Short);
            };
            let (first, last) = (start / BLOCK, (end - 1) / BLOCK);
            if first == last {
                let block = self.block(blocks, first)?;
                let at = start - first * BLOCK;
                return block
                    .get(at..at + len)
                    .map(Cow::Borrowed)
                    .ok_or(ReadError::Short);
            }
            // A record across a block boundary: copied from the two blocks. A longer span
            // (a whole table's records) is read on its own below, not held twice.
            if last == first + 1 {
                let (head, tail) = (self.block(blocks, first)?, self.block(blocks, last)?);
                let split = last * BLOCK;
                let mut out = Vec::with_capacity(len);
                out.extend_from_slice(head.get(start - first * BLOCK..).ok_or(ReadError::Short)?);
                out.extend_from_slice(tail.get(..end - split).ok_or(ReadError::Short)?);
                return Ok(Cow::Owned(out));
            }
        }
        let mut buf = vec![0; len];
        self.read_exact_at(&mut buf, offset)?;
        Ok(Cow::Owned(buf))
    }

    /// Block `index`, read from the file on first use. Two threads may both read a block
    /// the first time; one copy is kept.
    fn block<'a>(
        &self,
        blocks: &'a [OnceLock<Box<[u8]>>],
        index: usize,
    ) -> Result<&'a [u8], ReadError> {
        let cell = blocks.get(index).ok_or(ReadError::Short)?;
        if let Some(block) = cell.get() {
            return Ok(block);
        }
        let start = index as u64 * BLOCK as u64;
        let size = usize::try_from((self.len - start).min(BLOCK as u64)).unwrap_or(BLOCK);
        let mut data = vec![0; size].into_boxed_slice();
        self.read_exact_at(&mut data, start)?;
        Ok(cell.get_or_init(|| data))
    }

    /// `buf.len()` bytes at `offset`; a file that shrank since it was opened reads short.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ReadError> {
        match self.file.read_exact_at(buf, offset) {
            Ok(()) => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_within_across_and_past_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f").display().to_string();
        let bytes: Vec<u8> = (0..3 * BLOCK + 100)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        std::fs::write(&path, &bytes).unwrap();
        let file = ReadAt::open(&path).unwrap();
        let b = BLOCK as u64;
        // (offset, len, whether the bytes are borrowed from a block)
        let fine = [
            (0, 10, true),
            (b - 10, 10, true),
            (b - 10, 20, false),
            (b - 10, BLOCK + 20, false),
            (3 * b, 100, true),
            (3 * b + 100, 0, true),
            (0, bytes.len(), false),
        ];
        for (offset, len, borrowed) in fine {
            let got = file.read(offset, len).unwrap();
            let at = usize::try_from(offset).unwrap();
            assert_eq!(&got[..], &bytes[at..at + len], "{offset} {len}");
            assert_eq!(matches!(got, Cow::Borrowed(_)), borrowed, "{offset} {len}");
        }
        for (offset, len) in [(3 * b + 90, 11), (3 * b + 101, 0), (u64::MAX, 2)] {
            assert!(matches!(file.read(offset, len), Err(ReadError::Short)));
        }
        assert_eq!(
            &file.read_upto(3 * b + 90, 50).unwrap()[..],
            &bytes[3 * BLOCK + 90..]
        );
        // A file cut short after it was opened reads short, not stale or zeroed bytes.
        std::fs::write(&path, &bytes[..BLOCK]).unwrap();
        assert!(matches!(file.read(2 * b, 10), Err(ReadError::Short)));
    }
}
