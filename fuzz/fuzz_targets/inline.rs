//! Fuzz target `inline`: see tern_fuzzcheck::maps::inline.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::maps::inline(data));
