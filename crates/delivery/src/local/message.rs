//! The message as an agent reads it: the queue file's content streamed from disk, the
//! `Delivered-To:` addresses of its primary header (for loop detection), and the envelope
//! lines Postfix puts before the message for a command or a file (mail_copy(3)).
//!
//! Security: the content is untrusted; the header scan is bounded by the header itself (it
//! stops at the first line that is not a header) and never panics.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tern_message::address::quote_822_local;
use tern_message::trace::{Timestamp, mail_date};
use tern_queue::file::{QueueFile, Segment};

/// Why a queue file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Queue(#[from] tern_queue::Error),
    #[error("read queue file: {0}")]
    Io(#[from] io::Error),
}

/// One message, opened for delivery.
#[derive(Debug, Clone)]
pub struct Message {
    pub path: PathBuf,
    pub file: QueueFile,
    /// The `Delivered-To:` values of the primary header, folded to lower case
    /// (delivered_hdr(3) with FOLD_ADDR_ALL).
    pub delivered_to: HashSet<String>,
    /// The queue file, opened once: every [`ContentReader`] reads it by position, so the
    /// header scan and each delivery of the request share the one descriptor.
    handle: Arc<File>,
}

impl Message {
    /// Reads the queue file at `path` and scans its header.
    pub fn open(path: &Path) -> Result<Message, MessageError> {
        let handle = File::open(path).map_err(|source| tern_queue::Error::Io {
            op: "open",
            path: path.to_owned(),
            source,
        })?;
        let file =
            QueueFile::read(BufReader::with_capacity(64 * 1024, &handle)).map_err(|source| {
                tern_queue::Error::Read {
                    path: path.to_owned(),
                    source,
                }
            })?;
        let mut m = Message {
            path: path.to_owned(),
            file,
            delivered_to: HashSet::new(),
            handle: Arc::new(handle),
        };
        let reader = m.reader()?;
        m.delivered_to = delivered_to(reader);
        Ok(m)
    }

    /// The content, from its first header line.
    pub fn reader(&self) -> io::Result<BufReader<ContentReader>> {
        Ok(BufReader::new(ContentReader::new(
            Arc::clone(&self.handle),
            &self.file.segments,
        )))
    }

    /// A client attribute of the envelope (`client_address`, `helo_name`, ...), or "".
    pub fn client(&self, name: &str) -> &str {
        self.file
            .envelope
            .client
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Whether `address` is among the message's `Delivered-To:` addresses.
    pub fn has_delivered_to(&self, address: &str) -> bool {
        self.delivered_to.contains(&address.to_lowercase())
    }
}

/// Reads the content segments of a queue file in order, by position (pread), so that
/// readers of one open file do not disturb each other.
#[derive(Debug)]
pub struct ContentReader {
    file: Arc<File>,
    segments: Vec<Segment>,
    at: usize,
    /// Where the next read starts, and how much of the current segment is left.
    pos: u64,
    left: u64,
}

impl ContentReader {
    pub fn new(file: Arc<File>, segments: &[Segment]) -> ContentReader {
        ContentReader {
            file,
            segments: segments.to_vec(),
            at: 0,
            pos: 0,
            left: 0,
        }
    }
}

impl Read for ContentReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.left == 0 {
            let Some(s) = self.segments.get(self.at) else {
                return Ok(0);
            };
            self.pos = s.offset;
            self.left = u64::from(s.len);
            self.at += 1;
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "queue file content is shorter than its segments",
            ));
        }
        self.left -= n as u64;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The `Delivered-To:` addresses in the primary header of `content`, lower-cased.
pub fn delivered_to(mut content: impl BufRead) -> HashSet<String> {
    let mut found = HashSet::new();
    let mut line = Vec::new();
    // Header lines are bounded by the queue's line records; stop at 10 MB regardless.
    let mut budget: usize = 10 << 20;
    loop {
        line.clear();
        match content.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) => budget = budget.saturating_sub(n),
        }
        if budget == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.is_empty() {
            break;
        }
        if text[0] == b' ' || text[0] == b'\t' {
            continue;
        }
        let Some(colon) = text.iter().position(|&b| b == b':') else {
            break;
        };
        let name = &text[..colon];
        if name.is_empty() || name.iter().any(|b| !b.is_ascii_graphic()) {
            break;
        }
        if name.eq_ignore_ascii_case(b"Delivered-To") {
            let value = String::from_utf8_lossy(&text[colon + 1..]);
            found.insert(value.trim().to_lowercase());
        }
    }
    found
}

/// Which envelope lines go before the message (mail_copy(3) MAIL_COPY_* flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyFlags {
    pub from_line: bool,
    pub return_path: bool,
    pub orig_rcpt: bool,
    pub delivered: bool,
}

/// The lines mail_copy() writes before the message: `From sender  DATE`, `Return-Path:
/// <sender>`, `X-Original-To: orig` (when not empty and enable_original_recipient),
/// `Delivered-To: addr`, in that order, each ending in `eol`.
pub fn prefix(
    flags: CopyFlags,
    sender: &str,
    orig_rcpt: &str,
    delivered: &str,
    now: &Timestamp,
    eol: &str,
) -> String {
    let mut out = String::new();
    let quoted = if sender.is_empty() {
        String::new()
    } else {
        quote_822_local(sender)
    };
    if flags.from_line {
        let who = if sender.is_empty() {
            "MAILER-DAEMON"
        } else {
            quoted.as_str()
        };
        let _ = write!(out, "From {who}  {}{eol}", asctime(now));
    }
    if flags.return_path {
        let _ = write!(out, "Return-Path: <{quoted}>{eol}");
    }
    if flags.orig_rcpt && !orig_rcpt.is_empty() {
        let _ = write!(out, "X-Original-To: {}{eol}", quote_822_local(orig_rcpt));
    }
    if flags.delivered {
        let _ = write!(out, "Delivered-To: {}{eol}", quote_822_local(delivered));
    }
    out
}

/// asctime(localtime(now)) without the newline: `Fri Nov 27 00:12:21 2026`.
pub fn asctime(now: &Timestamp) -> String {
    // mail_date gives "Fri, 27 Nov 2026 00:12:21 +0000 (UTC)", day space-padded.
    let d = mail_date(now);
    let w: Vec<&str> = d.split_whitespace().collect();
    match w.as_slice() {
        [wd, day, mon, year, time, ..] => {
            format!("{} {mon} {day:>2} {time} {year}", wd.trim_end_matches(','))
        }
        _ => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_to_headers() {
        let msg = b"Received: x\n\tfolded\nDelivered-To: A@Example.COM\ndelivered-to:b@x\nSubject: s\n\nDelivered-To: body@x\n";
        let got = delivered_to(&msg[..]);
        let mut got: Vec<_> = got.into_iter().collect();
        got.sort();
        assert_eq!(got, ["a@example.com", "b@x"]);
        assert!(delivered_to(&b"no header line\nDelivered-To: a\n"[..]).is_empty());
    }

    #[test]
    fn prefixes() {
        let t = Timestamp::utc(1_795_738_341); // Fri Nov 27 00:12:21 2026 UTC
        let all = CopyFlags {
            from_line: true,
            return_path: true,
            orig_rcpt: true,
            delivered: true,
        };
        let cases: &[(CopyFlags, &str, &str, &str)] = &[
            (
                all,
                "snd@example.org",
                "envtest@ref.example",
                "From snd@example.org  Fri Nov 27 00:12:21 2026\nReturn-Path: <snd@example.org>\nX-Original-To: envtest@ref.example\nDelivered-To: envtest@ref.example\n",
            ),
            (
                all,
                "",
                "",
                "From MAILER-DAEMON  Fri Nov 27 00:12:21 2026\nReturn-Path: <>\nDelivered-To: envtest@ref.example\n",
            ),
            (
                CopyFlags {
                    delivered: true,
                    ..CopyFlags::default()
                },
                "a b@x",
                "",
                "Delivered-To: envtest@ref.example\n",
            ),
        ];
        for (flags, sender, orig, want) in cases {
            assert_eq!(
                prefix(*flags, sender, orig, "envtest@ref.example", &t, "\n"),
                *want
            );
        }
        assert_eq!(
            prefix(
                CopyFlags {
                    return_path: true,
                    ..CopyFlags::default()
                },
                "a b@x",
                "",
                "",
                &t,
                "\r\n"
            ),
            "Return-Path: <\"a b\"@x>\r\n"
        );
        let early = Timestamp::utc(1_793_836_800); // Thu Nov  5 00:00:00 2026
        assert_eq!(asctime(&early), "Thu Nov  5 00:00:00 2026");
    }
}
