//! `postconf -d` for the whole registry, side by side with Debian's postconf: every built-in
//! parameter whose default is not host-derived prints exactly what Debian prints, and both
//! know the same names. Also with a master.cf whose services imply parameters.

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::{DEBIAN_POSTCONF, our_postconf, require_debian_postconf, run};

/// Defaults read from the host or the process, which differ between two runs by nature.
const HOST_DERIVED: &[&str] = &["myhostname", "mydomain", "mynetworks", "process_id"];

fn listing(bin: &std::path::Path, dir: &std::path::Path) -> BTreeMap<String, String> {
    let args = vec![
        "-c".to_owned(),
        dir.to_string_lossy().into_owned(),
        "-d".to_owned(),
    ];
    let out = run(bin, &args, false);
    assert_eq!(
        out.status,
        "0",
        "{} -d failed: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{} -d warned: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| match l.split_once(" = ") {
            Some((n, v)) => (n.to_owned(), v.to_owned()),
            None => (l.trim_end_matches(" =").to_owned(), String::new()),
        })
        .collect()
}

fn compare(master_cf: &str) {
    require_debian_postconf();
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("main.cf"), "").expect("main.cf");
    fs::write(dir.path().join("master.cf"), master_cf).expect("master.cf");
    let debian = listing(std::path::Path::new(DEBIAN_POSTCONF), dir.path());
    let ours = listing(&our_postconf(), dir.path());
    assert!(
        debian.len() > 800,
        "Debian printed only {} parameters",
        debian.len()
    );
    let mut problems = Vec::new();
    for (name, value) in &debian {
        match ours.get(name) {
            None => problems.push(format!("missing: {name}")),
            Some(v)
                if v != value
                    && !HOST_DERIVED.contains(&name.as_str())
                    && !tern_config::registry::SAFER_DEFAULTS
                        .contains(&(name.as_str(), value.as_str())) =>
            {
                problems.push(format!("{name}: Debian `{value}`, Tern `{v}`"));
            }
            Some(_) => {}
        }
    }
    for name in ours.keys().filter(|n| !debian.contains_key(*n)) {
        problems.push(format!("extra: {name}"));
    }
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_builtin_default_matches_debian() {
    compare("");
}

#[test]
fn service_implied_defaults_match_debian() {
    compare(
        &fs::read_to_string(common::cases_dir().join("default-master.cf"))
            .expect("stock master.cf"),
    );
}
