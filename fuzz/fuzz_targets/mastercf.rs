//! Fuzz target `mastercf`: see tern_fuzzcheck::config::mastercf.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::config::mastercf(data));
