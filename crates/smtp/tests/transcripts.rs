//! Replays every tests/transcripts/*.txt against the session state machine, with no
//! sockets: the driver accepts every policy decision and queues messages as QUEUEID.

mod common;

use tern_smtp::transcript::{line_matches, replay};

#[test]
fn transcripts_replay_against_the_state_machine() {
    let mut failures = Vec::new();
    for (path, t) in common::load_all() {
        let want = common::expected_groups(&t);
        let replayed = replay(&t).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Some(log) = common::expected_log(&t).filter(|l| *l != replayed.stats) {
            failures.push(format!(
                "{}: log want {log:?}\n  got {:?}",
                path.display(),
                replayed.stats
            ));
        }
        let got = replayed.groups;
        assert_eq!(want.len(), got.len(), "{}", path.display());
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            let ok = w.len() == g.len() && w.iter().zip(g).all(|(w, g)| line_matches(w, g));
            if !ok {
                failures.push(format!(
                    "{} after client item {i}:\n  want {w:?}\n  got  {g:?}",
                    path.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
