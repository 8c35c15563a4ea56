//! Test helpers over the real filesystem blob store.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;

use coredump_store::fs_blob::FsBlobStore;
use coredump_store::{BlobPath, BlobStore};

/// The store crate's filesystem blob store plus direct-write helpers for test setup.
pub struct DirBlobStore {
    pub root: PathBuf,
    pub store: std::sync::Arc<FsBlobStore>,
    scratch: tempfile::TempDir,
}

impl DirBlobStore {
    pub fn new(root: PathBuf) -> Self {
        std::fs::create_dir_all(&root).unwrap();
        Self {
            store: std::sync::Arc::new(FsBlobStore::new(root.clone()).unwrap()),
            root,
            scratch: tempfile::tempdir().unwrap(),
        }
    }

    /// Stores `data` at `p` through the store's own atomic write.
    pub fn put_bytes(&self, p: &BlobPath, data: &[u8]) {
        let src = self.scratch.path().join("upload");
        std::fs::write(&src, data).unwrap();
        self.store.put_file(p, &src).unwrap();
    }

    pub fn exists(&self, p: &BlobPath) -> bool {
        self.store.size(p).unwrap().is_some()
    }
}
