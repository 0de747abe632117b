//! Fuzz target `texthash`: see tern_fuzzcheck::maps::texthash.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::maps::texthash(data));
