//! Fuzz target `postcat`: see tern_fuzzcheck::queue::postcat.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::queue::postcat(data));
