//! Fuzz target `smtp_data`: see tern_fuzzcheck::smtp::data.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::smtp::data(data));
