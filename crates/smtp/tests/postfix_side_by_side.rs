//! Replays every tests/transcripts/*.txt side by side against the sans-IO state
//! machine (`transcript::replay`) and a private Debian Postfix 3.7 started with the
//! transcript's `!` settings (one instance per distinct set of settings), from the
//! client address 127.0.0.2, outside the instance's `mynetworks`. Both must give
//! the transcript's reply lines (codes, enhanced codes and texts; `*` matches queue
//! ids), and Postfix's mail log the `L:` statistics.
//!
//! Needs root and Debian's postfix (`.ci/run` installs it): without them the test
//! fails, never skips. `TERN_TRANSCRIPTS=a.txt,b.txt` limits the files;
//! `TERN_TRANSCRIPT_RECORD=DIR` also writes each file as Postfix answered it into
//! DIR (for growing the corpus: write the client lines, record, review).

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tern_smtp::transcript::{Transcript, line_matches, replay};
use tern_testkit::postfix::PostfixInstance;
use tern_testkit::replay::{
    disconnect_stats_nth, expected_groups, expected_log, mismatches, replay_against,
};

/// main.cf lines every instance gets before the transcript's own: the client port in
/// the log (to find each session's `disconnect from` line) and no error sleeps (the
/// replies are the same, only later).
const BASE_MAIN_CF: &str = "smtpd_client_port_logging = yes\nsmtpd_error_sleep_time = 0s\n";

/// A transcript's `!` lines, the key that groups transcripts onto one instance.
type Settings = Vec<(String, String)>;

#[test]
fn transcripts_agree_with_the_state_machine_and_debian_postfix() {
    let only: Option<Vec<String>> = std::env::var("TERN_TRANSCRIPTS")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let record = std::env::var_os("TERN_TRANSCRIPT_RECORD").map(PathBuf::from);
    let mut by_settings: BTreeMap<Settings, Vec<(PathBuf, Transcript)>> = BTreeMap::new();
    for (path, t) in common::load_all() {
        if only
            .as_ref()
            .is_some_and(|o| !o.contains(&file_name(&path)))
        {
            continue;
        }
        by_settings
            .entry(t.settings.clone())
            .or_default()
            .push((path, t));
    }
    let mut failures = Vec::new();
    for (settings, files) in &by_settings {
        let mut extra = String::new();
        for (n, v) in settings {
            let _ = writeln!(extra, "{n} = {v}");
        }
        let pf = PostfixInstance::start(&format!("{BASE_MAIN_CF}{extra}")).unwrap_or_else(|e| {
            panic!("cannot start Debian's Postfix (needs root and the postfix package): {e}")
        });
        let mut sessions = Vec::new();
        for (path, t) in files {
            let name = file_name(path);
            let want = expected_groups(t);
            match replay(t) {
                Ok(sm) => {
                    for m in mismatches(&want, &sm.groups) {
                        failures.push(format!("{name}: state machine {m}"));
                    }
                    if let Some(log) = expected_log(t).filter(|l| *l != sm.stats) {
                        failures.push(format!(
                            "{name}: state machine log want {log:?}\n  got {:?}",
                            sm.stats
                        ));
                    }
                }
                Err(e) => failures.push(format!("{name}: state machine: {e}")),
            }
            match replay_against(pf.addr(), t) {
                Ok(live) => {
                    for m in mismatches(&want, &live.groups) {
                        failures.push(format!("{name}: Postfix {m}"));
                    }
                    sessions.push((path, t, live));
                }
                Err(e) => failures.push(format!("{name}: Postfix: {e}")),
            }
        }
        // Postfix logs `disconnect from` when smtpd is done with the session, a
        // little after the last reply: wait for every session's line, bounded.
        // A session's line is found by its client port; a port the kernel gave out twice
        // in this run names two sessions, in order.
        let nth: Vec<usize> = sessions
            .iter()
            .enumerate()
            .map(|(i, (_, _, l))| {
                sessions[..i]
                    .iter()
                    .filter(|(_, _, e)| e.local == l.local)
                    .count()
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut log = pf.maillog();
        while Instant::now() < deadline
            && sessions
                .iter()
                .zip(&nth)
                .any(|((_, _, l), n)| disconnect_stats_nth(&log, l.local, *n).is_none())
        {
            std::thread::sleep(Duration::from_millis(100));
            log = pf.maillog();
        }
        for ((path, t, live), n) in sessions.iter().zip(&nth) {
            let name = file_name(path);
            let got = disconnect_stats_nth(&log, live.local, *n);
            if let Some(want) = expected_log(t)
                && got.as_deref() != Some(want)
            {
                failures.push(format!("{name}: Postfix log want {want:?}\n  got {got:?}"));
            }
            if let Some(dir) = &record {
                let text = std::fs::read_to_string(path).expect("read transcript");
                let out = recorded(&text, &expected_groups(t), &live.groups, got.as_deref());
                std::fs::write(dir.join(&name), out).expect("write recording");
            }
        }
    }
    assert!(
        !by_settings.is_empty(),
        "no transcripts selected (TERN_TRANSCRIPTS?)"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string()
}

/// The transcript `text` with its `S`/`L` lines replaced by what Postfix answered:
/// an expected line that matched is kept as written (its `S!` mark and `*`), others
/// are Postfix's line, with queue ids turned into `*`.
fn recorded(text: &str, want: &[Vec<String>], got: &[Vec<String>], stats: Option<&str>) -> String {
    let marks: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("S: ") || l.starts_with("S! "))
        .collect();
    let mut mark_i = 0;
    let mut out = String::new();
    let mut group = 0;
    let emit = |g: usize, out: &mut String, mark_i: &mut usize| {
        let w = want.get(g).map_or(&[][..], Vec::as_slice);
        for (j, line) in got.get(g).map_or(&[][..], Vec::as_slice).iter().enumerate() {
            match w.get(j) {
                Some(e) if line_matches(e, line) => {
                    out.push_str(&marks[*mark_i + j][..3]);
                    out.push_str(e);
                }
                _ => match line.split_once("queued as ") {
                    Some((head, _)) => {
                        let _ = write!(out, "S: {head}queued as *");
                    }
                    None => {
                        let _ = write!(out, "S: {line}");
                    }
                },
            }
            out.push('\n');
        }
        *mark_i += w.len();
    };
    let mut greeted = false;
    for line in text.lines() {
        if line.starts_with("S: ") || line.starts_with("S! ") || line.starts_with("L: ") {
            continue;
        }
        let client = line == "C:" || line.starts_with("C: ") || line.starts_with("C~ ");
        if client && !greeted {
            emit(0, &mut out, &mut mark_i);
            greeted = true;
        }
        out.push_str(line);
        out.push('\n');
        if client {
            group += 1;
            emit(group, &mut out, &mut mark_i);
        }
    }
    if let Some(s) = stats {
        let _ = writeln!(out, "L: {s}");
    }
    out
}
