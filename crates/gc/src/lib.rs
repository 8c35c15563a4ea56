//! `coredump-detector gc`: the garbage collector.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
