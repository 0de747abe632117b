//! Shared by the transcript tests: loading files and grouping expected replies.

use std::path::PathBuf;

use tern_smtp::transcript::{Item, Transcript};

/// All transcript files, sorted, with their parsed contents.
pub fn load_all() -> Vec<(PathBuf, Transcript)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("transcripts directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no transcripts in {}", dir.display());
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read transcript");
            let t = Transcript::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, t)
        })
        .collect()
}

/// Expected reply lines: the greeting group, then one group per client item. The `S|`
/// alternatives are left out: they are for live servers, whose timing varies; the
/// state machine must give the `S:`/`S!` lines.
#[allow(dead_code)] // used by transcripts.rs, not by postfix_side_by_side.rs
pub fn expected_groups(t: &Transcript) -> Vec<Vec<String>> {
    let mut groups = vec![Vec::new()];
    for item in &t.items {
        match item {
            Item::Client(_) => groups.push(Vec::new()),
            Item::Server(s) | Item::Policy(s) => groups
                .last_mut()
                .expect("one group at least")
                .push(s.clone()),
            Item::Alternative(_) | Item::Log(_) => {}
        }
    }
    groups
}

/// The expected `disconnect from` statistics, if the transcript gives them.
#[allow(dead_code)] // used by transcripts.rs, not by postfix_side_by_side.rs
pub fn expected_log(t: &Transcript) -> Option<String> {
    t.items.iter().find_map(|i| match i {
        Item::Log(l) => Some(l.clone()),
        _ => None,
    })
}
