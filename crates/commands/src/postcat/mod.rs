//! `postcat`: shows queue files (postcat(1) of Postfix 3.7):
//! `postcat [-bdehoqrv] [-c config_dir] [-s offset] [files...]`.
//!
//! Files are named by path, or with `-q` by queue id: the id is checked as Postfix's
//! mail_queue_id_ok checks it (1-255 of `[A-Za-z0-9_]`, so never a path), then looked
//! for in `maildrop`, `incoming`, `active`, `deferred`, `hold` and `saved` (twice, in
//! that order, as Postfix does: a file may move between queues while it looks) under
//! `queue_directory`, hashed as `hash_queue_names` says. No file: standard input.
//!
//! Tern's queue files ([`queuefile`]) and maildrop files ([`maildrop`]) are shown in
//! Postfix's layout ([`printer`]); anything else, Postfix's queue files included, is
//! `warning: PATH: input is not a valid queue file`. `-e`, `-h`, `-b` choose envelope,
//! header, body (all three by default), `-o` adds offsets, `-d` Postfix's decimal record
//! types, `-v` names text records, `-r` is accepted (Tern's files have no pointer
//! records to follow), `-s offset` hides the records before that offset.
//!
//! Messages and exit codes are Postfix's: fatal errors (bad flag, bad queue id, a file
//! not found, a bad record) exit 1 with `postcat: fatal: ...`; the prefix is argv\[0\]
//! as given. Like Postfix's, the command checks no user: the queue directories' modes
//! (mail_owner, 0700) let only root and mail_owner read queue files.
//!
//! Security: ids from the command line never name a file outside the queue (no `/`,
//! no `.`); files are only read; their contents are shown as bytes, as Postfix does.

pub mod maildrop;
pub mod printer;
pub mod queuefile;

use std::fs::File;
use std::io::{self, BufWriter, Cursor, Read, Seek, Write};
use std::path::PathBuf;

use tern_config::config::Config;
use tern_config::text::errno_text;
use tern_queue::maildrop::MAGIC as MAILDROP_MAGIC;
use tern_queue::record::MAGIC as QUEUE_MAGIC;
use tern_queue::{QueueId, QueueLayout, QueueName};

use crate::fatal;
use crate::getopt::{Opt, getopt};
use crate::msg::{Fatal, Msg};
use printer::{Flags, Printer};
use queuefile::ShowError;

/// The queues `-q` looks in, in Postfix's order (postcat.c).
pub const SEARCH: [QueueName; 6] = [
    QueueName::Maildrop,
    QueueName::Incoming,
    QueueName::Active,
    QueueName::Deferred,
    QueueName::Hold,
    QueueName::Saved,
];

/// `postcat`'s entry point; returns the exit status.
pub fn main() -> i32 {
    run(&crate::args())
}

/// Runs postcat with `args` (without argv\[0\]); returns the exit status.
pub fn run(args: &[String]) -> i32 {
    let msg = Msg::from_args();
    let mut out = BufWriter::new(io::stdout().lock());
    let status = match run_with(args, &msg, &mut out) {
        Ok(()) => 0,
        Err(Stop::Fatal(f)) => {
            let _ = out.flush();
            msg.fatal(&f)
        }
        // Standard output is gone (a closed pipe): Postfix dies of SIGPIPE there.
        Err(Stop::Output) => 1,
    };
    if out.flush().is_err() {
        return 1;
    }
    status
}

/// Why a run ends early.
enum Stop {
    Fatal(Fatal),
    Output,
}

impl From<Fatal> for Stop {
    fn from(f: Fatal) -> Self {
        Stop::Fatal(f)
    }
}

fn usage(prog: &str) -> Fatal {
    fatal!(
        "usage: {prog} [-b (body text)] [-c config_dir] [-d (decimal record type)] [-e (envelope records)] [-h (header text)] [-q (access queue)] [-v] [file(s)...]"
    )
}

/// Postfix's alldig(): one or more decimal digits.
fn alldig(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn run_with(args: &[String], msg: &Msg, out: &mut dyn Write) -> Result<(), Stop> {
    let (opts, files) = getopt(args, "bc:dehoqrs:v").map_err(|e| {
        let _ = writeln!(io::stderr(), "{}: {e}", msg.prog());
        usage(msg.prog())
    })?;
    let mut flags = Flags::default();
    let mut search = false;
    let mut config_dir: Option<PathBuf> = None;
    let mut start = 0u64;
    for opt in opts {
        match opt {
            Opt::Flag('b') => flags.body = true,
            Opt::WithArg('c', dir) => config_dir = Some(PathBuf::from(dir)),
            Opt::Flag('d') => flags.decimal = true,
            Opt::Flag('e') => flags.envelope = true,
            Opt::Flag('h') => flags.header = true,
            Opt::Flag('o') => flags.offsets = true,
            Opt::Flag('q') => search = true,
            // Tern's files have no pointer records: file order is the only order.
            Opt::Flag('r') => {}
            Opt::WithArg('s', offset) => {
                start = if alldig(&offset) {
                    offset.parse().ok()
                } else {
                    None
                }
                .ok_or_else(|| fatal!("bad offset: {offset}"))?;
            }
            Opt::Flag('v') => flags.verbose = true,
            _ => return Err(usage(msg.prog()).into()),
        }
    }
    let flags = flags.with_default_parts();
    let config = Config::load_for_command(config_dir.as_deref()).map_err(Fatal::from)?;
    let get = |name: &str| config.expanded(name).ok().flatten().unwrap_or_default();

    if files.is_empty() {
        let mut data = Vec::new();
        io::stdin()
            .lock()
            .read_to_end(&mut data)
            .map_err(|e| fatal!("read stdin: {}", errno_text(&e)))?;
        return show(
            &mut Cursor::new(data),
            "stdin",
            None,
            now(),
            flags,
            start,
            msg,
            out,
        );
    }
    if search {
        let queue_dir = get("queue_directory");
        // Postfix works from the queue directory: the names it shows are relative.
        std::env::set_current_dir(&queue_dir)
            .map_err(|e| fatal!("chdir {queue_dir}: {}", errno_text(&e)))?;
        let depth = get("hash_queue_depth").parse().unwrap_or(1);
        let layout = QueueLayout::new("").with_hashing(&get("hash_queue_names"), depth);
        for name in &files {
            let id = QueueId::parse(name).map_err(|_| fatal!("bad mail queue ID: {name}"))?;
            let (mut file, path) = open_queued(&layout, &id)
                .map_err(|e| fatal!("open queue file {name}: {}", errno_text(&e)))?;
            let mtime = mtime(&file);
            show(&mut file, &path, Some(name), mtime, flags, start, msg, out)?;
        }
        return Ok(());
    }
    for name in &files {
        let mut file = File::open(name).map_err(|e| fatal!("open {name}: {}", errno_text(&e)))?;
        let base = name.rsplit('/').next().unwrap_or(name);
        let id = QueueId::parse(base).ok().map(|_| base);
        let mtime = mtime(&file);
        show(&mut file, name, id, mtime, flags, start, msg, out)?;
    }
    Ok(())
}

/// Finds `id` in the queues: two rounds over [`SEARCH`]; the error is the last open's.
fn open_queued(layout: &QueueLayout, id: &QueueId) -> io::Result<(File, String)> {
    let mut last = io::Error::from(io::ErrorKind::NotFound);
    for _ in 0..2 {
        for q in SEARCH {
            let path = layout.path(q, id);
            match File::open(&path) {
                Ok(f) => return Ok((f, path.display().to_string())),
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

fn mtime(file: &File) -> u64 {
    file.metadata()
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn now() -> u64 {
    tern_queue::Timestamp::now().sec
}

/// What a file is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No bytes at all: Postfix prints the banner and nothing else.
    Empty,
    /// A Tern queue file (or the start of one).
    QueueFile,
    /// A Tern maildrop file.
    Maildrop,
    /// Anything else.
    Other,
}

/// Sorts a file by its first bytes (at most 16).
pub fn kind(head: &[u8]) -> Kind {
    let n = head.len().min(QUEUE_MAGIC.len());
    let maildrop = format!("{MAILDROP_MAGIC}\n");
    if head.is_empty() {
        Kind::Empty
    } else if head[..n] == QUEUE_MAGIC[..n] {
        Kind::QueueFile
    } else if head.starts_with(maildrop.as_bytes())
        || maildrop.as_bytes().starts_with(head) && head.len() < maildrop.len()
    {
        Kind::Maildrop
    } else {
        Kind::Other
    }
}

#[allow(clippy::too_many_arguments)]
fn show<F: Read + Seek>(
    input: &mut F,
    path: &str,
    id: Option<&str>,
    mtime: u64,
    flags: Flags,
    start: u64,
    msg: &Msg,
    out: &mut dyn Write,
) -> Result<(), Stop> {
    let read_err = |e: io::Error| Stop::Fatal(fatal!("{path}: read error: {}", errno_text(&e)));
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match input.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_err(e)),
        }
    }
    input.rewind().map_err(read_err)?;
    let kind = kind(&head[..n]);
    if kind == Kind::Other && start == 0 {
        out.flush().map_err(|_| Stop::Output)?;
        msg.warn(format!("{path}: input is not a valid queue file"));
        return Ok(());
    }
    let mut p = Printer::new(out, flags, path, start).map_err(|_| Stop::Output)?;
    let shown = match kind {
        Kind::QueueFile => queuefile::show(input, id, &mut p),
        Kind::Maildrop => maildrop::show(input, mtime, &mut p),
        Kind::Empty | Kind::Other => Ok(()),
    };
    match shown {
        Ok(()) => Ok(()),
        Err(ShowError::Write(_)) => Err(Stop::Output),
        Err(ShowError::Record(text)) => {
            out.flush().map_err(|_| Stop::Output)?;
            msg.warn(format!("{path}: {text}"));
            Err(fatal!("record read error").into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let cases: &[(&[u8], Kind)] = &[
            (b"", Kind::Empty),
            (b"\x89TQF\r\n\x1a\n\0\x01\0\0", Kind::QueueFile),
            (b"\x89TQ", Kind::QueueFile),
            (b"TERN-MAILDROP 1\nsender", Kind::Maildrop),
            (b"TERN-MAIL", Kind::Maildrop),
            (b"TERN-MAILDROP 2\n", Kind::Other),
            (b"C\x0f             326", Kind::Other),
            (b"root:x:0:0", Kind::Other),
        ];
        for (head, want) in cases {
            assert_eq!(kind(head), *want, "{head:?}");
        }
    }

    #[test]
    fn offsets_must_be_digits() {
        for (s, ok) in [
            ("0", true),
            ("12", true),
            ("", false),
            ("-1", false),
            ("1x", false),
        ] {
            assert_eq!(alldig(s), ok, "{s:?}");
        }
    }
}

#[cfg(test)]
mod file_tests;
