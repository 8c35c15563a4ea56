//! Fuzz target `api_body`: see `coredump_fuzzcheck::api_body` for the parser and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| coredump_fuzzcheck::api_body(data));
