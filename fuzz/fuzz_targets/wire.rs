//! Fuzz target `wire`: see tern_fuzzcheck::delivery::wire.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::delivery::wire(data));
