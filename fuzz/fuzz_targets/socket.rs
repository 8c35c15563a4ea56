//! Fuzz target `socket`: see `coredump_fuzzcheck::socket` for the parser and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| coredump_fuzzcheck::socket(data));
