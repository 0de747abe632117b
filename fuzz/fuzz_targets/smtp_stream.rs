//! Fuzz target `smtp_stream`: see tern_fuzzcheck::smtp::stream.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::smtp::stream(data));
