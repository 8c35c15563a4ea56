//! Fuzz target `cgroup`: see `coredump_fuzzcheck::cgroup` for the parser and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| coredump_fuzzcheck::cgroup(data));
