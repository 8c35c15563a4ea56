//! What each fuzz target does with one input: run a parser of untrusted input and check the
//! invariants its result must keep. A violated invariant panics, which is what libFuzzer
//! reports as a finding.
//!
//! The targets in `fuzz/` (a workspace of their own, built by `cargo fuzz`) are one line each
//! over these functions, and `tests/corpus.rs` replays every committed corpus file through the
//! same functions in the normal test suite, so a fixed finding stays fixed without nightly.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod api_body;
mod cgroup;
mod corefile;
mod range;
mod selectors;
mod socket;
mod spool_meta;

pub use api_body::api_body;
pub use cgroup::cgroup;
pub use corefile::corefile;
pub use range::range;
pub use selectors::selectors;
pub use socket::socket;
pub use spool_meta::spool_meta;

/// The check of one target, run on one input.
pub type Check = fn(&[u8]);

/// Every target: its name (the `fuzz/fuzz_targets/<name>.rs` file and the
/// `fuzz/corpus/<name>/` directory) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("cgroup", cgroup),
    ("corefile", corefile),
    ("spool_meta", spool_meta),
    ("api_body", api_body),
    ("selectors", selectors),
    ("range", range),
    ("socket", socket),
];
