//! Fuzz target `lmdb`: see tern_fuzzcheck::maps::lmdb.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::maps::lmdb(data));
