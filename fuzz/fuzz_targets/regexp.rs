//! Fuzz target `regexp`: see tern_fuzzcheck::maps::regexp.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::maps::regexp(data));
