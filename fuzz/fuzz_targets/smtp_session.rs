//! Fuzz target `smtp_session`: see tern_fuzzcheck::smtp::session.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::smtp::session(data));
