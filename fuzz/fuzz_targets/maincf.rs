//! Fuzz target `maincf`: see tern_fuzzcheck::config::maincf.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::config::maincf(data));
