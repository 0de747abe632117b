//! Fuzz target `queuefile`: see tern_fuzzcheck::queue::queuefile.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::queue::queuefile(data));
