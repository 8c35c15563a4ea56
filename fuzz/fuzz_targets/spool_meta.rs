//! Fuzz target `spool_meta`: see `coredump_fuzzcheck::spool_meta` for the parser and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| coredump_fuzzcheck::spool_meta(data));
