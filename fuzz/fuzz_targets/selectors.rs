//! Fuzz target `selectors`: see `coredump_fuzzcheck::selectors` for the parser and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| coredump_fuzzcheck::selectors(data));
