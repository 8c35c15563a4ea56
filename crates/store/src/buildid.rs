//! Where binaries are kept by build ID: `<namespace>/.buildid/<build-id>/executable` (and
//! `debuginfo`), beside the namespace's cores. Scoped per namespace, so a tenant can never put
//! a file under a build ID that another tenant's debugger fetches; counted in the namespace's
//! usage like its cores; a dot-name, so the GC's walk over pod directories passes it by.

use crate::BlobPath;

/// Pod segment of the per-namespace binary store.
pub const BUILDID_DIR: &str = ".buildid";
/// File name of an executable or library.
pub const EXECUTABLE: &str = "executable";
/// File name of separate debug information.
pub const DEBUGINFO: &str = "debuginfo";

/// Whether `build_id` is a build ID as debuggers spell it: 2 to 128 lowercase hex digits.
pub fn is_build_id(build_id: &str) -> bool {
    (2..=128).contains(&build_id.len())
        && build_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The blob of `file` (`executable` or `debuginfo`) for `build_id` in `namespace`; `None` for
/// anything that is not a build ID or a valid namespace.
pub fn buildid_path(namespace: &str, build_id: &str, file: &str) -> Option<BlobPath> {
    if !is_build_id(build_id) {
        return None;
    }
    BlobPath::new(namespace, BUILDID_DIR, build_id, file).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn build_ids_name_only_hex_paths() {
        assert!(buildid_path("ns", "0a1b", EXECUTABLE).is_some());
        for bad in ["", "a", "../x", "ABCD", "0a1b/..", "zz"] {
            assert!(buildid_path("ns", bad, EXECUTABLE).is_none(), "{bad:?}");
        }
        let p = buildid_path("ns", "0a1b", DEBUGINFO).unwrap();
        assert_eq!(p.relative(), Path::new("ns/.buildid/0a1b/debuginfo"));
    }
}
