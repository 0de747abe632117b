//! Replays every seed and regression input committed under `fuzz/corpus/<target>/`
//! through the same target functions the cargo-fuzz binaries call, on the stable
//! toolchain: a crash fixed once stays fixed, and the targets keep compiling and running
//! without nightly. Also checks that the fuzz crate and [`TARGETS`] list the same targets
//! and that the corpus stays small.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tern_fuzzcheck::TARGETS;

/// The whole corpus is committed to git: keep it small.
const CORPUS_BUDGET: u64 = 1 << 20;
/// One input should take milliseconds; this is the "no hang" bound.
const PER_INPUT: Duration = Duration::from_secs(10);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("read_dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn every_corpus_file_replays() {
    let mut total = 0u64;
    for &(name, target) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        let inputs = files(&dir);
        assert!(!inputs.is_empty(), "{}: no seed inputs", dir.display());
        for path in inputs {
            let data = std::fs::read(&path).expect("read corpus file");
            total += data.len() as u64;
            let started = Instant::now();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(
                outcome.is_ok(),
                "{name}: {} panics; reproduce with: cargo test -p tern-fuzzcheck, or \
                 fuzz/run.sh {name} with the file as the only corpus",
                path.display()
            );
            let took = started.elapsed();
            assert!(took < PER_INPUT, "{name}: {} took {took:?}", path.display());
        }
    }
    assert!(
        total < CORPUS_BUDGET,
        "the corpus holds {total} bytes; keep it under {CORPUS_BUDGET}"
    );
}

#[test]
fn fuzz_crate_lists_every_target() {
    let mut bins: Vec<String> = files(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    bins.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.sort();
    assert_eq!(bins, names, "fuzz/fuzz_targets/*.rs and TARGETS differ");
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for name in &names {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
}

/// The journal seeds are real segments (checksums salted as the journal writes them), so
/// the fuzzer starts from inputs that reach the records, not only the header check.
#[test]
fn journal_seeds_hold_their_records() {
    let dir = fuzz_dir().join("corpus/journal");
    for (name, want) in [
        ("one-record", 1),
        ("three-records", 3),
        ("cut-record", 0),
        ("header-only", 0),
    ] {
        let data = std::fs::read(dir.join(name)).expect("seed");
        assert_eq!(
            tern_fuzzcheck::queue::journal_records(&data),
            want,
            "{name}"
        );
        // Unfixed, the seeds read the same: their checksums are right already.
        assert_eq!(
            tern_queue::journal::parse_records(&data).map_or(0, |(_, r)| r.len()),
            want,
            "{name}"
        );
    }
}
