//! What the load generators (smtp-load, smtp-tls-load) share: reading an SMTP reply and
//! sending a command that must get a given code. Benchmark tools for loopback: nothing
//! here verifies who answers.
//!
//! Security: the server's bytes are bounded: every read waits at most `WAIT`, every reply
//! line is capped at `LINE_MAX` bytes and every reply at `REPLY_LINES_MAX` lines.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::time::timeout;

/// The longest wait for a connect or a reply.
pub const WAIT: Duration = Duration::from_secs(30);
/// The longest reply line taken.
const LINE_MAX: usize = 4096;
/// The most lines one reply may have.
const REPLY_LINES_MAX: usize = 100;

/// Reads one SMTP reply (all its lines); returns its code.
pub async fn reply<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> Result<u16, String> {
    let mut line = String::new();
    for _ in 0..REPLY_LINES_MAX {
        line.clear();
        let n = timeout(WAIT, r.read_line(&mut line))
            .await
            .map_err(|_| "reply timeout".to_owned())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".to_owned());
        }
        if line.len() > LINE_MAX || line.len() < 4 {
            return Err(format!("bad reply line: {}", line.trim_end()));
        }
        let code: u16 = line[..3].parse().map_err(|_| "bad reply code".to_owned())?;
        if line.as_bytes()[3] != b'-' {
            return Ok(code);
        }
    }
    Err("reply too long".to_owned())
}

/// Writes `text` (a command line with its CRLF) and reads the reply, which must be `want`.
pub async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    text: &str,
    want: u16,
) -> Result<(), String> {
    s.get_mut()
        .write_all(text.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let got = reply(s).await?;
    if got == want {
        Ok(())
    } else {
        Err(format!("{} -> {got}", text.trim_end()))
    }
}
