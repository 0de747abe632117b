//! Fuzz target `aliases`: see tern_fuzzcheck::maps::aliases.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::maps::aliases(data));
