//! `coredump-detector agent`: the node DaemonSet.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
