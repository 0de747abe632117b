//! Fuzz target `maildrop`: see tern_fuzzcheck::queue::maildrop.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::queue::maildrop(data));
