//! A `regexp:` table never panics on any file content or key: the input's first line is the
//! key, the rest the table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tern_maps::{Map, regexp};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (key, table) = text.split_once('\n').unwrap_or((&text, ""));
    let map = regexp::RegexpMap::parse("/fuzz", table, &|_| {});
    let _ = map.lookup(key);
    let _ = map.lookup(table);
});
