//! Replaying a transcript (tern_smtp::transcript) over loopback against a live SMTP
//! server: Debian's Postfix now, Tern's smtpd once it runs. [`replay_against`] sends
//! each client item whole and reads the replies the transcript expects for it (a
//! first item that comes before any reply line is sent on connect, before the
//! greeting is read);
//! [`mismatches`] compares them with the expectation line by line.
//!
//! The client connects from [`OUTSIDE_CLIENT`] (127.0.0.2), outside the instances'
//! `mynetworks`, so that relay and bare-newline policies apply to it. Every read is
//! bounded in time; the server is trusted to be a test peer, its replies are not.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tern_smtp::transcript::{Item, Transcript, line_matches};

pub use crate::postfix::OUTSIDE_CLIENT;

/// How long a group that expects replies waits for them.
const REPLY_WAIT: Duration = Duration::from_secs(15);
/// How long a group that expects no reply waits to see that none comes.
const SILENCE_WAIT: Duration = Duration::from_millis(300);

/// What a live server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveReplay {
    /// The greeting group, then one group per client item. A group that the server
    /// answered with the transcript's `S|` alternative is given as the group's
    /// `S:`/`S!` lines (both answers are legal), so that it compares equal with
    /// [`expected_groups`]; [`LiveReplay::alternatives`] names those groups.
    pub groups: Vec<Vec<String>>,
    /// The indices (into `groups`) of the groups answered with their `S|` lines.
    pub alternatives: Vec<usize>,
    /// The client's local address (for finding its session in the mail log).
    pub local: SocketAddr,
}

/// Expected reply lines: the greeting group, then one group per client item.
pub fn expected_groups(t: &Transcript) -> Vec<Vec<String>> {
    groups_of(t, |item| match item {
        Item::Server(s) | Item::Policy(s) => Some(s),
        _ => None,
    })
}

/// The `S|` lines, grouped as [`expected_groups`]: each group's other legal answer
/// (empty: none).
pub fn alternative_groups(t: &Transcript) -> Vec<Vec<String>> {
    groups_of(t, |item| match item {
        Item::Alternative(s) => Some(s),
        _ => None,
    })
}

fn groups_of(t: &Transcript, pick: impl Fn(&Item) -> Option<&String>) -> Vec<Vec<String>> {
    let mut groups = vec![Vec::new()];
    for item in &t.items {
        if matches!(item, Item::Client(_)) {
            groups.push(Vec::new());
        } else if let (Some(s), Some(g)) = (pick(item), groups.last_mut()) {
            g.push(s.clone());
        }
    }
    groups
}

/// The transcript's expected `disconnect from` statistics, if it gives them.
pub fn expected_log(t: &Transcript) -> Option<&str> {
    t.items.iter().find_map(|i| match i {
        Item::Log(l) => Some(l.as_str()),
        _ => None,
    })
}

/// Replays `t`'s client items against the server at `addr`, from 127.0.0.2.
pub fn replay_against(addr: SocketAddr, t: &Transcript) -> Result<LiveReplay, String> {
    let want = expected_groups(t);
    let alt = alternative_groups(t);
    let mut conn = crate::postfix::connect_from(OUTSIDE_CLIENT, addr)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let local = conn.local_addr().map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let mut pending = Vec::new();
    // An early talker (tern_smtp::transcript::Transcript::talks_first) sends its first
    // item at once: no greeting group is read before it.
    let mut groups = if t.talks_first() {
        vec![Vec::new()]
    } else {
        vec![read_group(&mut conn, &mut pending, &want[0], &alt[0])]
    };
    for (i, item) in t
        .items
        .iter()
        .filter(|i| matches!(i, Item::Client(_)))
        .enumerate()
    {
        let Item::Client(bytes) = item else { continue };
        // The server may have hung up after a 421/521/221: go on, the comparison
        // reports what is missing.
        let _ = conn.write_all(bytes);
        groups.push(read_group(
            &mut conn,
            &mut pending,
            &want[i + 1],
            &alt[i + 1],
        ));
    }
    let mut alternatives = Vec::new();
    for (i, g) in groups.iter_mut().enumerate() {
        if answers(&alt[i], g) && !answers(&want[i], g) {
            g.clone_from(&want[i]);
            alternatives.push(i);
        }
    }
    Ok(LiveReplay {
        groups,
        alternatives,
        local,
    })
}

/// The differences between expected and actual reply groups, one message each.
pub fn mismatches(want: &[Vec<String>], got: &[Vec<String>]) -> Vec<String> {
    let mut out = Vec::new();
    if want.len() != got.len() {
        out.push(format!("{} reply groups, want {}", got.len(), want.len()));
    }
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        let ok = w.len() == g.len() && w.iter().zip(g).all(|(w, g)| line_matches(w, g));
        if !ok {
            out.push(format!(
                "after client item {i}:\n  want {w:?}\n  got  {g:?}"
            ));
        }
    }
    out
}

/// The statistics of the `disconnect from NAME[ADDR]:PORT` line of the session whose
/// client was `local` (Postfix logs the port with `smtpd_client_port_logging = yes`).
pub fn disconnect_stats(maillog: &str, local: SocketAddr) -> Option<String> {
    disconnect_stats_nth(maillog, local, 0)
}

/// The statistics of the `nth` (from 0) session whose client was `local`: a run of many
/// sessions may be given the same ephemeral port twice, and their lines come in the order
/// of the sessions.
pub fn disconnect_stats_nth(maillog: &str, local: SocketAddr, nth: usize) -> Option<String> {
    let needle = format!("[{}]:{} ", local.ip(), local.port());
    maillog
        .lines()
        .filter(|l| l.contains(": disconnect from "))
        .filter_map(|l| l.split_once(&needle).map(|(_, rest)| rest.to_string()))
        .nth(nth)
}

/// Whether `got` is the non-empty answer `expected`, line by line.
fn answers(expected: &[String], got: &[String]) -> bool {
    !expected.is_empty()
        && expected.len() == got.len()
        && expected.iter().zip(got).all(|(e, g)| line_matches(e, g))
}

/// Reads one group's replies: until they are the expected answer or its alternative,
/// or as many lines as the longer of the two arrived, or the server hung up (or
/// [`REPLY_WAIT`] passed); when neither expects a line, waits [`SILENCE_WAIT`] to see
/// that nothing comes.
fn read_group(
    conn: &mut std::net::TcpStream,
    pending: &mut Vec<u8>,
    want: &[String],
    alt: &[String],
) -> Vec<String> {
    let n = want.len().max(alt.len());
    let deadline = Instant::now() + if n == 0 { SILENCE_WAIT } else { REPLY_WAIT };
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        while let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = pending.drain(..i + 2).collect();
            lines.push(String::from_utf8_lossy(&line[..i]).into_owned());
        }
        let done = answers(want, &lines) || answers(alt, &lines);
        if (n > 0 && (lines.len() >= n || done)) || Instant::now() >= deadline {
            return lines;
        }
        match conn.read(&mut buf) {
            Ok(0) => return lines,
            Ok(k) => pending.extend_from_slice(&buf[..k]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return lines,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_stats() {
        let t = Transcript::parse("S: 220 x\nC: NOOP\nS: 250 2.0.0 Ok\nS! 554 5.7.1 no\nL: a=1\n")
            .unwrap();
        assert_eq!(
            expected_groups(&t),
            vec![
                vec!["220 x".to_string()],
                vec!["250 2.0.0 Ok".into(), "554 5.7.1 no".into()]
            ]
        );
        assert_eq!(expected_log(&t), Some("a=1"));
        let log = "Nov 1 postfix/smtpd[1]: ABC: disconnect from unknown[127.0.0.2]:4000 ehlo=1 commands=1\n";
        let local: SocketAddr = "127.0.0.2:4000".parse().unwrap();
        assert_eq!(
            disconnect_stats(log, local).as_deref(),
            Some("ehlo=1 commands=1")
        );
        assert!(mismatches(&[vec!["a".into()]], &[vec!["b".into()]]).len() == 1);
        let t = Transcript::parse("C: EHLO x\nS: 554 no\nS| 220 x\nS| 250 y\n").unwrap();
        assert!(t.talks_first());
        assert_eq!(
            expected_groups(&t),
            vec![vec![], vec!["554 no".to_string()]]
        );
        assert_eq!(
            alternative_groups(&t),
            vec![vec![], vec!["220 x".to_string(), "250 y".into()]]
        );
        let lines = |l: &[&str]| l.iter().map(ToString::to_string).collect::<Vec<_>>();
        for (expected, got, want) in [
            (&["250 *"][..], &["250 Ok: queued as A"][..], true),
            (&["220 x", "250 y"], &["220 x"], false),
            (&[], &[], false),
        ] {
            assert_eq!(answers(&lines(expected), &lines(got)), want, "{expected:?}");
        }
    }
}
