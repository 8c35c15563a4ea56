//! Writes the synthetic cores of `support` into the `corefile` fuzz corpus
//! (`fuzz/corpus/corefile/`), whole and cut short: an explicit command, not part of the suite.
//!
//! `cargo test -p coredump-corefile --test fuzz_seeds -- --ignored`

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use support::fixtures::x86_64_fixture;

#[test]
#[ignore = "updates the committed fuzz corpus"]
fn write_fuzz_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/corefile");
    std::fs::create_dir_all(&dir).unwrap();
    let (bytes, _) = x86_64_fixture();
    std::fs::write(dir.join("synthetic-x86_64.core"), &bytes).unwrap();
    // Cut inside the program headers, inside the notes, and inside the memory.
    for cut in [100, 600, bytes.len() / 2] {
        let cut = cut.min(bytes.len());
        std::fs::write(
            dir.join(format!("synthetic-x86_64-cut-{cut}.core")),
            &bytes[..cut],
        )
        .unwrap();
    }
}
