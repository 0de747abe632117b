//! The byte stream under a session: bounded line reads and timed writes over any tokio
//! stream (TCP, a UNIX socket, a TLS layer, a test's duplex pipe).
//!
//! Time: as Postfix's smtp_stream(3), each read or write must make progress within the
//! step's timeout; a server that trickles bytes slower than that times out, one that
//! trickles faster does not.
//!
//! Security: a line longer than the limit is cut and the rest of it is read and dropped
//! (smtp_get() with SMTP_GET_FLAG_SKIP); the read buffer has a fixed size. One reply may
//! consume at most [`REPLY_BYTES_CAP`] bytes of input in all.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::reply::{Reply, ReplyBuilder};

/// Input one reply may consume, skipped parts of long lines included.
// XXX: Postfix has no such cap (only the per-read timeout, or smtp_per_request_deadline);
// a server streaming an endless reply at full speed would hold a Postfix client forever.
// Past the cap the session ends as if the server had hung up.
pub const REPLY_BYTES_CAP: usize = 1 << 20;

/// The largest piece of content written under one timeout.
const WRITE_CHUNK: usize = 64 * 1024;

/// Why the stream failed; Postfix's SMTP_ERR_EOF and SMTP_ERR_TIME.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The server closed the connection, a read or write failed, or a reply exceeded
    /// [`REPLY_BYTES_CAP`].
    #[error("lost connection")]
    Eof,
    #[error("timed out")]
    Timeout,
}

/// A stream with a fixed read buffer and an output queue.
pub struct Wire<S> {
    io: S,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    out: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub fn new(io: S) -> Self {
        Self {
            io,
            buf: vec![0; 8192].into_boxed_slice(),
            start: 0,
            end: 0,
            out: Vec::new(),
        }
    }

    /// The stream back (for STARTTLS or connection reuse later).
    pub fn into_inner(self) -> S {
        self.io
    }

    /// Queues bytes to send with the next [`Wire::flush`].
    pub fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Queued bytes not yet sent.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Sends everything queued, each piece within `limit`.
    pub async fn flush(&mut self, limit: Duration) -> Result<(), WireError> {
        let out = std::mem::take(&mut self.out);
        for chunk in out.chunks(WRITE_CHUNK) {
            match timeout(limit, self.io.write_all(chunk)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(WireError::Eof),
                Err(_) => return Err(WireError::Timeout),
            }
        }
        match timeout(limit, self.io.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(WireError::Eof),
            Err(_) => Err(WireError::Timeout),
        }
    }

    /// Reads one complete reply: lines of at most `line_limit` bytes, each read within
    /// `limit`.
    pub async fn read_reply(
        &mut self,
        line_limit: usize,
        limit: Duration,
    ) -> Result<Reply, WireError> {
        let mut builder = ReplyBuilder::new(line_limit);
        let mut budget = REPLY_BYTES_CAP;
        loop {
            let line = self.read_line(line_limit, limit, &mut budget).await?;
            if let Some(reply) = builder.push(&line) {
                return Ok(reply);
            }
        }
    }

    /// One line without its LF and trailing CRs, cut at `line_limit` bytes.
    async fn read_line(
        &mut self,
        line_limit: usize,
        limit: Duration,
        budget: &mut usize,
    ) -> Result<Vec<u8>, WireError> {
        let mut line = Vec::new();
        let mut skipping = false;
        loop {
            if self.start == self.end {
                self.fill(limit).await?;
            }
            let avail = &self.buf[self.start..self.end];
            let (take, found) = match avail.iter().position(|&c| c == b'\n') {
                Some(p) => (p + 1, true),
                None => (avail.len(), false),
            };
            *budget = budget.checked_sub(take).ok_or(WireError::Eof)?;
            let piece = &avail[..take - usize::from(found)];
            if !skipping {
                let room = line_limit.saturating_sub(line.len());
                line.extend_from_slice(&piece[..piece.len().min(room)]);
                // smtp_get(): the rest of an overlong line is read and thrown away.
                skipping = piece.len() > room;
            }
            self.start += take;
            if found {
                while line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
        }
    }

    async fn fill(&mut self, limit: Duration) -> Result<(), WireError> {
        self.start = 0;
        self.end = 0;
        match timeout(limit, self.io.read(&mut self.buf)).await {
            Ok(Ok(0) | Err(_)) => Err(WireError::Eof),
            Ok(Ok(n)) => {
                self.end = n;
                Ok(())
            }
            Err(_) => Err(WireError::Timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn replies(input: &[u8], line_limit: usize) -> Vec<Result<Reply, WireError>> {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let input = input.to_vec();
        let writer = tokio::spawn(async move {
            let _ = a.write_all(&input).await;
            // Dropping `a` ends the stream.
        });
        let mut w = Wire::new(b);
        let mut out = Vec::new();
        for _ in 0..10 {
            let r = w.read_reply(line_limit, Duration::from_secs(5)).await;
            let stop = r.is_err();
            out.push(r);
            if stop {
                break;
            }
        }
        writer.await.expect("writer");
        out
    }

    type Want = Vec<Result<(u16, String), WireError>>;

    #[tokio::test]
    async fn lines_and_limits() {
        let long = format!("250 {}\r\n220 next\r\n", "x".repeat(100_000));
        let table: Vec<(Vec<u8>, usize, Want)> = vec![
            (
                b"220 hi\r\n250-a\r\n250 b\n".to_vec(),
                2048,
                vec![
                    Ok((220, "220 hi".into())),
                    Ok((250, "250-a\n250 b".into())),
                    Err(WireError::Eof),
                ],
            ),
            (
                b"220 cr\r\r\n".to_vec(),
                2048,
                vec![Ok((220, "220 cr".into())), Err(WireError::Eof)],
            ),
            (b"220 partial".to_vec(), 2048, vec![Err(WireError::Eof)]),
            (
                long.into_bytes(),
                20,
                vec![
                    Ok((250, format!("250 {}", "x".repeat(16)))),
                    Ok((220, "220 next".into())),
                    Err(WireError::Eof),
                ],
            ),
        ];
        for (input, limit, want) in table {
            let got: Vec<_> = replies(&input, limit)
                .await
                .into_iter()
                .map(|r| r.map(|r| (r.code, r.text)))
                .collect();
            assert_eq!(
                got,
                want,
                "{}",
                String::from_utf8_lossy(&input[..input.len().min(40)])
            );
        }
    }

    #[tokio::test]
    async fn endless_reply_hits_the_cap() {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let writer = tokio::spawn(async move {
            let chunk = vec![b'x'; 1 << 16];
            for _ in 0..(2 * REPLY_BYTES_CAP / chunk.len()) {
                if a.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let mut w = Wire::new(b);
        let r = w.read_reply(2048, Duration::from_secs(5)).await;
        assert_eq!(r, Err(WireError::Eof));
        drop(w);
        writer.await.expect("writer");
    }

    #[tokio::test]
    async fn silence_times_out() {
        let (_a, b) = tokio::io::duplex(64);
        let mut w = Wire::new(b);
        let r = w.read_reply(2048, Duration::from_millis(50)).await;
        assert_eq!(r, Err(WireError::Timeout));
    }
}
