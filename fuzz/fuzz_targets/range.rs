//! Fuzz target `range`: see `coredump_fuzzcheck::range` for the parser and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| coredump_fuzzcheck::range(data));
