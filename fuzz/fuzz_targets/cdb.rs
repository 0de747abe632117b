//! Fuzz target `cdb`: see tern_fuzzcheck::maps::cdb.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::maps::cdb(data));
