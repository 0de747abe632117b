//! Side-by-side access-control sessions: a small SMTP client that connects from a chosen
//! loopback source address (so that the server's mynetworks sees it inside or outside),
//! sends one case's commands and keeps each reply, plus the normalisation that lets
//! Debian's Postfix and Tern be compared: reply code, enhanced status and text, and the
//! `NOQUEUE: reject: ...` log lines of that session.
//!
//! A case is one session; its commands are sent one at a time, each reply read before
//! the next command, except a command holding `\n`, whose lines go out in one write
//! (pipelining, for reject_unauth_pipelining) and whose replies are then read one per
//! line. The command `<message>` sends a short message and the final dot after a 354.
//!
//! Test-only. The peers are the test's own servers; a reply is read with a timeout, so a
//! silent server fails the case, never hangs it.

use std::io::{BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::postfix::connect_from;
use crate::smtp::read_reply;

/// How long one reply may take (Postfix's smtpd_error_sleep_time is 1s by default; a
/// tarpitting reply after many errors takes longer).
const REPLY_WAIT: Duration = Duration::from_secs(15);

/// How long the `disconnect from` line of a session may take to appear.
const LOG_WAIT: Duration = Duration::from_secs(10);

/// The command that stands for a message and its end after DATA's 354.
pub const MESSAGE: &str = "<message>";

/// Runs one session from `local` to `server`: the greeting, then a reply per command
/// line. Stops early (keeping what it has) when the server closes the connection.
pub fn converse(
    local: Ipv4Addr,
    server: SocketAddr,
    commands: &[&str],
) -> Result<Vec<String>, String> {
    let stream = connect_from(local, server).map_err(|e| format!("connect from {local}: {e}"))?;
    stream
        .set_read_timeout(Some(REPLY_WAIT))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut replies = Vec::new();
    let read = |reader: &mut BufReader<_>| -> Result<String, String> {
        read_reply(reader).map_err(|e| format!("reading a reply: {e}"))
    };
    let greeting = read(&mut reader)?;
    if greeting.is_empty() {
        return Err("no greeting".into());
    }
    replies.push(greeting);
    let in_data = |replies: &[String]| replies.last().is_some_and(|r| r.starts_with("354"));
    for command in commands {
        // After a 354 only a message may follow: anything else would become its text.
        if in_data(&replies) && *command != MESSAGE {
            break;
        }
        // A message whose DATA was refused is not sent (its lines would be commands).
        if *command == MESSAGE && !in_data(&replies) {
            continue;
        }
        let lines: Vec<&str> = command.split('\n').collect();
        let text = if *command == MESSAGE {
            "Subject: access test\r\n\r\nhello\r\n.\r\n".to_owned()
        } else {
            lines.iter().flat_map(|l| [*l, "\r\n"]).collect::<String>()
        };
        if writer.write_all(text.as_bytes()).is_err() {
            break;
        }
        let mut closed = false;
        for _ in 0..if *command == MESSAGE { 1 } else { lines.len() } {
            // After a 421 the server closes: a command written after it may meet a
            // reset instead of the end of the stream (a race of the peer's close).
            let after_421 = replies.last().is_some_and(|r| r.starts_with("421"));
            let reply = match read(&mut reader) {
                Err(_) if after_421 => String::new(),
                other => other?,
            };
            if reply.is_empty() {
                closed = true;
                break;
            }
            replies.push(reply);
        }
        if closed {
            break;
        }
    }
    if in_data(&replies) {
        // Hang up inside DATA: nothing is queued (the server logs a lost connection).
        return Ok(replies);
    }
    let _ = writer.write_all(b"QUIT\r\n");
    // Read the QUIT reply (or the close) so that the server has logged the session's
    // end by the time the caller looks at the log.
    let _ = read(&mut reader);
    Ok(replies)
}

/// A reply as compared: CRLFs dropped, lines joined by ` | `; a greeting is its code
/// alone (the banners differ by design: `(Debian/GNU)`), a multi-line 250 (EHLO) its
/// first line; `NAME[127.x.y.z]` is made `NAME[127.x.y.z]` whatever the name (Debian
/// resolves 127.0.0.1 to localhost through /etc/hosts).
pub fn normalize_reply(index: usize, raw: &str) -> String {
    let lines: Vec<&str> = raw.lines().map(|l| l.trim_end_matches('\r')).collect();
    if index == 0 && raw.starts_with("220") {
        return "220".into();
    }
    if lines.len() > 1 && raw.starts_with("250") {
        return normalize_names(lines[0].replace("250-", "250 ").as_str());
    }
    normalize_names(&lines.join(" | "))
}

/// The restriction log lines of a session in `segment` (the log text the session
/// added), each as its text after `smtpd[PID]: `, with queue ids (not `NOQUEUE`) made `QID` and client
/// names `NAME`.
pub fn restriction_lines(segment: &str) -> Vec<String> {
    const VERBS: &[&str] = &[
        "reject",
        "reject_warning",
        "warn",
        "hold",
        "discard",
        "filter",
        "redirect",
        "info",
    ];
    let mut out = Vec::new();
    for line in segment.lines() {
        let Some((_, text)) = line.split_once("]: ") else {
            continue;
        };
        let Some((id, rest)) = text.split_once(": ") else {
            continue;
        };
        let is_id =
            id == "NOQUEUE" || (id.len() >= 6 && id.chars().all(|c| c.is_ascii_alphanumeric()));
        let verb = rest.split(':').next().unwrap_or_default();
        if !is_id || !VERBS.contains(&verb) {
            continue;
        }
        let id = if id == "NOQUEUE" { id } else { "QID" };
        out.push(normalize_names(&format!("{id}: {rest}")));
    }
    out
}

/// Replaces the host name before each `[127.` with `NAME`.
pub fn normalize_names(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("[127.") {
        let head = &rest[..at];
        let start = head
            .rfind(|c: char| c.is_whitespace() || c == '<' || c == '(')
            .map_or(0, |i| i + 1);
        out.push_str(&head[..start]);
        if start < at {
            out.push_str("NAME");
        }
        out.push('[');
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out
}

/// Waits (at most [`LOG_WAIT`]) until `log()` holds more than `before` `disconnect
/// from` lines, and returns the text after byte `from`.
pub fn session_log(log: impl Fn() -> String, from: usize, before: usize) -> String {
    let start = Instant::now();
    loop {
        let text = log();
        if disconnects(&text) > before || start.elapsed() > LOG_WAIT {
            return text.get(from..).unwrap_or_default().to_owned();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How many sessions ended in `log`.
pub fn disconnects(log: &str) -> usize {
    log.matches("]: disconnect from ").count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_names() {
        for (index, raw, want) in [
            (0, "220 mx ESMTP Postfix (Debian/GNU)\r\n", "220"),
            (0, "554 5.7.1 no\r\n", "554 5.7.1 no"),
            (1, "250-mx\r\n250-PIPELINING\r\n250 DSN\r\n", "250 mx"),
            (
                2,
                "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected\r\n",
                "554 5.7.1 <NAME[127.0.0.1]>: Client host rejected",
            ),
            (2, "421-a\r\n421 b\r\n", "421-a | 421 b"),
        ] {
            assert_eq!(normalize_reply(index, raw), want, "{raw}");
        }
    }

    #[test]
    fn log_lines() {
        let log = "Jan  1 00:00:00 mx postfix/smtpd[9]: connect from localhost[127.0.0.1]\n\
            Jan  1 00:00:00 mx postfix/smtpd[9]: NOQUEUE: reject: RCPT from unknown[127.0.0.9]: \
            554 5.7.1 <a@b>: Relay access denied; from=<> to=<a@b> proto=SMTP helo=<x>\n\
            Jan  1 00:00:00 mx postfix/smtpd[9]: 4Xb2Lq0abcz1: reject: DATA from \
            localhost[127.0.0.1]: 554 5.5.0 no; from=<> to=<a@b> proto=SMTP helo=<x>\n\
            Jan  1 00:00:00 mx postfix/smtpd[9]: disconnect from localhost[127.0.0.1] quit=1\n";
        assert_eq!(
            restriction_lines(log),
            vec![
                "NOQUEUE: reject: RCPT from NAME[127.0.0.9]: 554 5.7.1 <a@b>: Relay access denied; \
                 from=<> to=<a@b> proto=SMTP helo=<x>",
                "QID: reject: DATA from NAME[127.0.0.1]: 554 5.5.0 no; from=<> to=<a@b> \
                 proto=SMTP helo=<x>",
            ]
        );
        assert_eq!(disconnects(log), 1);
    }
}
