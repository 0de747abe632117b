//! Fuzz target `header`: see tern_fuzzcheck::message::header.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::message::header(data));
