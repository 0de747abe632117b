//! Fuzz target `pcre`: see tern_fuzzcheck::maps::pcre.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::maps::pcre(data));
