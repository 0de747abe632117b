//! Fuzz target `cidr`: see tern_fuzzcheck::maps::cidr.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern_fuzzcheck::maps::cidr(data));
