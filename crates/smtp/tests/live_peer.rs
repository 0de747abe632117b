//! Replays the transcripts over loopback against a live SMTP server (Debian's
//! Postfix, later Tern's smtpd), comparing reply lines exactly.
//!
//! Run with `TERN_SMTP_PEER=127.0.0.1:PORT cargo test -p tern-smtp --test live_peer
//! -- --ignored`; `TERN_SMTP_TRANSCRIPTS=a.txt,b.txt` limits the files (the peer must
//! be configured as their `!` lines say, with myhostname = mx.example.test and
//! mynetworks covering 127.0.0.1, and a hold or discard for the test messages). The
//! test fails, never skips, when the peer is missing. Every read is bounded in time.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tern_smtp::transcript::{Item, line_matches};

#[test]
#[ignore = "needs a live peer: set TERN_SMTP_PEER and run with --ignored"]
fn transcripts_replay_against_a_live_peer() {
    let peer = std::env::var("TERN_SMTP_PEER").expect("TERN_SMTP_PEER=127.0.0.1:PORT");
    assert!(peer.starts_with("127.0.0.1:"), "loopback only");
    let only: Option<Vec<String>> = std::env::var("TERN_SMTP_TRANSCRIPTS")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let mut failures = Vec::new();
    for (path, t) in common::load_all() {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if only.as_ref().is_some_and(|o| !o.contains(&name)) {
            continue;
        }
        let want = common::expected_groups(&t);
        let mut conn = TcpStream::connect(&peer).expect("connect to peer");
        conn.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut pending = Vec::new();
        let mut groups = vec![read_lines(&mut conn, &mut pending, want[0].len())];
        let mut g = 1;
        for item in &t.items {
            if let Item::Client(bytes) = item {
                // The peer may have hung up after a 421/521/221: keep going, the
                // comparison reports it.
                let _ = conn.write_all(bytes);
                groups.push(read_lines(&mut conn, &mut pending, want[g].len()));
                g += 1;
            }
        }
        for (i, (w, got)) in want.iter().zip(&groups).enumerate() {
            let ok = w.len() == got.len() && w.iter().zip(got).all(|(w, g)| line_matches(w, g));
            if !ok {
                failures.push(format!(
                    "{name} after client item {i}:\n  want {w:?}\n  got  {got:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Reads until `n` complete lines arrived (or 5 s passed); with `n == 0`, waits 300
/// ms to see that nothing comes.
fn read_lines(conn: &mut TcpStream, pending: &mut Vec<u8>, n: usize) -> Vec<String> {
    let deadline = Instant::now()
        + if n == 0 {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(5)
        };
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        while let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = pending.drain(..i + 2).collect();
            lines.push(String::from_utf8_lossy(&line[..i]).into_owned());
        }
        if n > 0 && lines.len() >= n {
            break;
        }
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => pending.extend_from_slice(&buf[..k]),
            Err(_) => {}
        }
    }
    lines
}
