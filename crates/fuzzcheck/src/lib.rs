//! The bodies of Tern's fuzz targets, one plain function per target, shared by the
//! cargo-fuzz entry points in `fuzz/fuzz_targets/` (libFuzzer, nightly or
//! `RUSTC_BOOTSTRAP=1`) and by `tests/corpus.rs`, which replays every file committed
//! under `fuzz/corpus/<target>/` on the stable toolchain.
//!
//! Each target asserts only that its parser does not panic, does not hang and stays in
//! bounded memory on any input (libFuzzer's `-timeout` and `-rss_limit_mb` watch the
//! last two), plus a few invariants that are cheap to state: a documented size bound
//! (SMTP content records never exceed line_length_limit) or a round trip (a maildrop
//! envelope that reads is written back to the same envelope).
//!
//! Modules: [`smtp`] (command line, session machine, DATA/BDAT content, reply text),
//! [`message`] (RFC 5322 addresses and header fields), [`config`] (main.cf, master.cf,
//! `$name` expansion), [`maps`] (every table format whose reader is Tern's own code),
//! [`queue`] (queue files, commit-journal segments and maildrop files; postcat's reader with the `postcat`
//! feature), [`delivery`] (`.forward` and `:include:` contents, the delivery helper's wire frames).
//!
//! Security: every input is hostile by construction. The table-file targets write the
//! input to a scratch file under the system temporary directory (the readers take a
//! path); nothing else touches the file system, the network or the environment.

pub mod config;
pub mod delivery;
pub mod maps;
pub mod message;
pub mod queue;
pub mod smtp;

use std::path::PathBuf;

/// A target: its name (the cargo-fuzz binary and the corpus directory) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order the smoke script runs them.
pub const TARGETS: &[Target] = &[
    ("smtp_command", smtp::command),
    ("smtp_session", smtp::session),
    ("smtp_stream", smtp::stream),
    ("smtp_data", smtp::data),
    ("address", message::address),
    ("header", message::header),
    ("maincf", config::maincf),
    ("mastercf", config::mastercf),
    ("expand", config::expand),
    ("regexp", maps::regexp),
    ("pcre", maps::pcre),
    ("cidr", maps::cidr),
    ("texthash", maps::texthash),
    ("inline", maps::inline),
    ("cdb", maps::cdb),
    ("lmdb", maps::lmdb),
    ("hashdb", maps::hashdb),
    ("aliases", maps::aliases),
    ("queuefile", queue::queuefile),
    ("journal", queue::journal),
    ("maildrop", queue::maildrop),
    ("forward", delivery::forward),
    ("wire", delivery::wire),
    #[cfg(feature = "postcat")]
    ("postcat", queue::postcat),
];

/// The input cut at its first LF: the first line (a key to look up) and the rest (a
/// table), both as text with invalid UTF-8 replaced, as the table readers see files.
pub(crate) fn key_and_table(data: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(data);
    let (key, table) = text.split_once('\n').unwrap_or((&text, ""));
    (key.to_owned(), table.to_owned())
}

/// A scratch path for this process and thread (the corpus test runs targets on several
/// threads at once; libFuzzer runs one per process).
pub(crate) fn scratch_path(suffix: &str) -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    let dir = std::env::temp_dir().join(format!("tern-fuzz-{}", std::process::id()));
    // A failure shows up as an open error in the target, which is not a finding.
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("t{thread}{suffix}"))
}
