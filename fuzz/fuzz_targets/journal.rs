//! Fuzz target `journal`: see tern_fuzzcheck::queue::journal.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::queue::journal(data));
