//! main.cf parsing and the `postconf -e/-X` edits never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_config::maincf::{self, MainCf};

fuzz_target!(|data: &[u8]| {
    let _ = MainCf::parse(data, "main.cf");
    let _ = maincf::edit_set(data, &[("myhostname".into(), "x".into())]);
    let _ = maincf::edit_remove(data, &["myhostname".into()]);
    let _ = maincf::edit_comment_out(data, &["myhostname".into()]);
});
