//! Fuzz target `hashdb`: see tern_fuzzcheck::maps::hashdb.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::maps::hashdb(data));
