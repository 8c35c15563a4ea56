//! The durable half of "gone longer than the threshold": when each pod and namespace was first
//! seen gone ([`GoneState`]), kept in a small JSON file on the blob volume (the one volume the
//! GC Deployment mounts, and the one whose contents the state is about), written atomically
//! (temp file, fsync, rename) after every cycle. A restarted GC resumes the clocks instead of
//! starting them over, so the threshold holds even for a GC that restarts more often than it.
//!
//! Deriving the time instead was the alternative: Kubernetes keeps no record of deleted pods,
//! and file times on the volume say when a crash was stored, not when its pod went away.

use std::path::{Path, PathBuf};

use crate::plan::GoneState;

/// Failure to read or write the state file.
#[derive(Debug, thiserror::Error)]
#[error("{action} GC state {path}: {source}")]
pub struct StateError {
    /// `read`, `parse`, `write`.
    pub action: &'static str,
    /// The state file.
    pub path: PathBuf,
    /// Cause.
    #[source]
    pub source: std::io::Error,
}

/// Largest state file read (a million pods fit easily).
const MAX_STATE: u64 = 64 << 20;

/// Reads the state; a missing file is an empty state.
pub fn load(path: &Path) -> Result<GoneState, StateError> {
    let err = |action, source| StateError {
        action,
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(GoneState::default()),
        Err(e) => return Err(err("read", e)),
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_STATE), &mut bytes)
        .map_err(|e| err("read", e))?;
    serde_json::from_slice(&bytes).map_err(|e| err("parse", e.into()))
}

/// Writes the state atomically ([`coredump_common::atomic_file`]).
pub fn store(path: &Path, state: &GoneState) -> Result<(), StateError> {
    let err = |source| StateError {
        action: "write",
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let json = serde_json::to_vec_pretty(state).map_err(|e| err(e.into()))?;
    coredump_common::atomic_file::write(path, &json, 0o644).map_err(|e| err(e.source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(".coredump-gc/state.json");
        assert_eq!(load(&path).unwrap(), GoneState::default());
        let mut s = GoneState::default();
        s.pods.insert(
            "a/0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11".into(),
            1_700_000_000,
        );
        s.namespaces.insert("gone".into(), 1_700_000_100);
        store(&path, &s).unwrap();
        assert_eq!(load(&path).unwrap(), s);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        std::fs::write(&path, b"{not json").unwrap();
        let e = load(&path).unwrap_err();
        assert_eq!(e.action, "parse");
    }
}
