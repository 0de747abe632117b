//! Shared by delivery_crash.rs and delivery_side_by_side.rs: a small SMTP client (one
//! session, pipelined MAIL/RCPT/DATA), reading Maildirs and mboxes, waiting for an empty
//! queue, and a line diff for readable failures.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tern_queue::{QueueLayout, QueueName};

/// One SMTP session (EHLO done).
pub struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

/// A reply that was not the one wanted: the transaction failed, the session goes on.
#[derive(Debug)]
pub struct Refused(pub String);

impl Client {
    /// Connects, reads the greeting and says EHLO; every read waits at most `timeout`.
    pub fn connect(addr: &str, timeout: Duration) -> std::io::Result<Client> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let w = s.try_clone()?;
        let mut c = Client {
            r: BufReader::new(s),
            w,
        };
        let greeting = c.reply()?;
        if !greeting.starts_with("220 ") {
            return Err(std::io::Error::other(format!("greeting: {greeting}")));
        }
        c.w.write_all(b"EHLO client.example\r\n")?;
        let ehlo = c.reply()?;
        if !ehlo.starts_with("250") {
            return Err(std::io::Error::other(format!("EHLO: {ehlo}")));
        }
        Ok(c)
    }

    /// One transaction: `MAIL FROM:<from>{params}`, each RCPT, DATA with `content` (lines
    /// ended by LF or CRLF; sent as CRLF, dot-stuffed). Returns the queue id of the 250
    /// reply; `Ok(Err(_))` for a refusal; `Err(_)` when the session broke.
    pub fn send(
        &mut self,
        from: &str,
        params: &str,
        rcpts: &[&str],
        content: &[u8],
    ) -> std::io::Result<Result<String, Refused>> {
        let mut cmds = format!("MAIL FROM:<{from}>{params}\r\n");
        for r in rcpts {
            let _ = write!(cmds, "RCPT TO:<{r}>\r\n");
        }
        cmds.push_str("DATA\r\n");
        self.w.write_all(cmds.as_bytes())?;
        let mail = self.reply()?;
        let mut refused = None;
        if !mail.starts_with("250") {
            refused = Some(mail.clone());
        }
        for _ in rcpts {
            let rc = self.reply()?;
            if !rc.starts_with("250") && refused.is_none() {
                refused = Some(rc);
            }
        }
        let data = self.reply()?;
        if !data.starts_with("354") {
            return Ok(Err(Refused(refused.unwrap_or(data))));
        }
        self.w.write_all(&smtp_data(content))?;
        let end = self.reply()?;
        if let Some(r) = refused {
            return Ok(Err(Refused(r)));
        }
        match end.trim_end().rsplit_once("queued as ") {
            Some((_, id)) if end.starts_with("250") => Ok(Ok(id.trim().to_owned())),
            _ => Ok(Err(Refused(end))),
        }
    }

    pub fn quit(mut self) {
        let _ = self.w.write_all(b"QUIT\r\n");
        let _ = self.reply();
    }

    /// One reply; the end of the stream or a continuation line at the end is an error.
    fn reply(&mut self) -> std::io::Result<String> {
        let all = tern_testkit::smtp::read_reply(&mut self.r)?;
        let last = all.lines().last().unwrap_or("");
        if all.is_empty() || last.as_bytes().get(3) == Some(&b'-') {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(all)
    }
}

/// The DATA bytes: CRLF line ends, dot-stuffing (RFC 5321 4.5.2), the final dot.
pub fn smtp_data(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 64);
    for line in content.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The files of a Maildir's `new/` and `cur/`, with their contents.
pub fn maildir_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            if let Ok(text) = std::fs::read(e.path()) {
                out.push((e.path(), text));
            }
        }
    }
    out.sort();
    out
}

/// How many files a Maildir's `new/` holds (cheap: no reads).
pub fn maildir_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("new")).map_or(0, Iterator::count)
}

/// An mbox split into messages, each starting with its `From ` line. Bodies have their
/// `From ` lines quoted (`>From `), so a line starting `From ` after an empty line is a
/// message start.
pub fn mbox_messages(text: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut prev_empty = true;
    for line in text.split_inclusive(|&b| b == b'\n') {
        if prev_empty && line.starts_with(b"From ") {
            out.push(Vec::new());
        }
        prev_empty = line == b"\n";
        match out.last_mut() {
            Some(m) => m.extend_from_slice(line),
            None => out.push(line.to_vec()),
        }
    }
    out
}

/// The value of the first header `name` (case-insensitive) of a message.
pub fn header(msg: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(msg);
    let want = format!("{}:", name.to_ascii_lowercase());
    for line in text.lines() {
        if line.is_empty() {
            return None;
        }
        if line.to_ascii_lowercase().starts_with(&want) {
            return Some(line[want.len()..].trim().to_owned());
        }
    }
    None
}

/// The queue files of incoming/, active/ and deferred/.
pub fn queued(queue_dir: &Path) -> usize {
    let layout = QueueLayout::new(queue_dir);
    [QueueName::Incoming, QueueName::Active, QueueName::Deferred]
        .into_iter()
        .map(|q| tern_queue::scan(&layout, q).map_or(0, |l| l.entries.len()))
        .sum()
}

#[allow(unused_imports)] // not every test binary that has this module waits
pub use tern_testkit::support::wait_until;

/// Whether process `pid` is gone (or a zombie, which runs nothing any more).
pub fn gone(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty()
        || stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

/// A line diff of `a` (`-`) and `b` (`+`), with common lines as context (`  `); the
/// longest common subsequence, so that a changed line shows as a pair.
pub fn diff(old: &str, new: &str) -> String {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    // common[i][j]: the common subsequence length of old[i..] and new[j..].
    let mut common = vec![vec![0usize; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            common[i][j] = if old[i] == new[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            let _ = writeln!(out, "  {}", old[i]);
            i += 1;
            j += 1;
        } else if i < old.len() && (j == new.len() || common[i + 1][j] >= common[i][j + 1]) {
            let _ = writeln!(out, "- {}", old[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "+ {}", new[j]);
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_stuffed_and_ended() {
        assert_eq!(smtp_data(b"a\n.b\r\nc"), b"a\r\n..b\r\nc\r\n.\r\n");
    }

    #[test]
    fn mbox_split() {
        let m = mbox_messages(b"From a x\nS: 1\n\n>From b\n\nFrom c y\nS: 2\n\nz\n\n");
        assert_eq!(m.len(), 2);
        assert!(m[1].starts_with(b"From c y"));
    }

    #[test]
    fn diff_pairs_changes() {
        assert_eq!(diff("a\nb\nc", "a\nx\nc"), "  a\n- b\n+ x\n  c\n");
    }
}
