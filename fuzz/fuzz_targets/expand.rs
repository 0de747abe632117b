//! Fuzz target `expand`: see tern_fuzzcheck::config::expand.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::config::expand(data));
