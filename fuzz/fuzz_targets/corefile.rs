//! Fuzz target `corefile`: see `coredump_fuzzcheck::corefile` for the parser and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| coredump_fuzzcheck::corefile(data));
