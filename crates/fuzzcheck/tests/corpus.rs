//! Replays every committed fuzz input (`fuzz/corpus/<target>/`, and the findings kept in
//! `fuzz/regressions/<target>/`) through the check its target runs, so a parser change that
//! panics on one of them or breaks an invariant fails the normal test suite.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `dir`, sorted; none when it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("reading a corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let (_, check) = coredump_fuzzcheck::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a known target");
    let corpus = inputs(&fuzz_dir().join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target}/ has no seed inputs"
    );
    let regressions = inputs(&fuzz_dir().join("regressions").join(target));
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("reading a corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} fails its check",
            path.display()
        );
    }
}

#[test]
fn every_target_has_a_corpus_and_a_fuzz_target() {
    for (name, _) in coredump_fuzzcheck::TARGETS {
        let target = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(target.is_file(), "{} is missing", target.display());
    }
}

#[test]
fn cgroup() {
    replay("cgroup");
}

#[test]
fn corefile() {
    replay("corefile");
}

#[test]
fn spool_meta() {
    replay("spool_meta");
}

#[test]
fn api_body() {
    replay("api_body");
}

#[test]
fn selectors() {
    replay("selectors");
}

#[test]
fn range() {
    replay("range");
}

#[test]
fn socket() {
    replay("socket");
}
