//! Fuzz target `smtp_command`: see tern_fuzzcheck::smtp::command.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::smtp::command(data));
