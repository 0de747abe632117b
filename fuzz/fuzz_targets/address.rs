//! Fuzz target `address`: see tern_fuzzcheck::message::address.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::message::address(data));
