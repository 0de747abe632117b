//! The SMTP transcript corpus (crates/smtp/tests/transcripts, checked step by step against
//! Debian's Postfix) replayed against Tern's daemon over loopback from 127.0.0.2: every
//! reply line (code, enhanced code, text) of every dialog must be what Postfix answered.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use tern_smtp::transcript::Transcript;
use tern_testkit::replay::{expected_groups, mismatches, replay_against};
use tern_testkit::tern::Tern;

/// Settings every instance gets, as the Postfix side of the corpus has them.
const BASE: &str = "mydomain = example.test\nmydestination = $myhostname, localhost\n\
                    mynetworks = 127.0.0.1/32\nsmtpd_error_sleep_time = 0s\n";

/// A transcript's `!` lines: the key that groups transcripts onto one instance.
type Settings = Vec<(String, String)>;

fn load_all() -> Vec<(String, Transcript)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../smtp/tests/transcripts");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("transcripts directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read transcript");
            let t = Transcript::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (
                p.file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned(),
                t,
            )
        })
        .collect()
}

#[test]
fn transcripts_agree_with_tern() {
    let mut by_settings: BTreeMap<Settings, Vec<(String, Transcript)>> = BTreeMap::new();
    for (name, t) in load_all() {
        by_settings
            .entry(t.settings.clone())
            .or_default()
            .push((name, t));
    }
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let mut passed = 0usize;
    for (settings, files) in &by_settings {
        let mut extra = String::from(BASE);
        for (n, v) in settings {
            let _ = writeln!(extra, "{n} = {v}");
        }
        let tern = Tern::start(&extra).unwrap_or_else(|e| panic!("cannot start Tern: {e}"));
        let addr: SocketAddr = tern.addr().parse().expect("socket address");
        for (name, t) in files {
            let outcome = match replay_against(addr, t) {
                Ok(live) => mismatches(&expected_groups(t), &live.groups),
                Err(e) => vec![e],
            };
            if outcome.is_empty() {
                passed += 1;
            } else {
                failed.insert(name.clone(), outcome.join("\n    "));
            }
        }
    }
    let mut report = String::new();
    for (name, why) in &failed {
        let _ = writeln!(report, "{name}:\n    {why}");
    }
    assert!(
        report.is_empty(),
        "{} of {} dialogs differ from Postfix:\n{report}",
        failed.len(),
        failed.len() + passed
    );
}
