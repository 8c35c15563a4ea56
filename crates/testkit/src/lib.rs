//! Test support shared by the real-kernel and end-to-end tests:
//!
//! * [`archive`]: reading a downloaded `dump` (`tar.gz`) back, entry by entry.
//! * [`kernel_lock`]: the machine-wide lock every test that touches `core_pattern` (or other
//!   sysctls) takes, which restores the old values on every exit path, including panics,
//!   Ctrl-C and SIGKILL of the test binary.
//! * [`content`]: deterministic memory content (random, text-like, zero pages) that the
//!   `crasher` program puts in its memory and tests find again in the core.
//! * [`bins`]: locating workspace binaries (the crasher, the detector) from any test crate.
//! * [`native`]: C, Rust (`panic = "abort"`) and Go crashers built from source for the analysis
//!   tests.
//! * [`poll`]: waiting for a condition with a deadline instead of sleeping.
//! * [`scratch`]: directories of fixtures that live as long as the test binary, removed after it.
#![deny(missing_docs)]

pub mod archive;
pub mod bins;
pub mod content;
pub mod kernel_lock;
pub mod native;
pub mod poll;
pub mod scratch;
