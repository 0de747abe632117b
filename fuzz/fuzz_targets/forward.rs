//! Fuzz target `forward`: see tern_fuzzcheck::delivery::forward.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::delivery::forward(data));
