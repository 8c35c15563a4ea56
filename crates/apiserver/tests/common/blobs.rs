//! A directory-backed blob store for tests (the seed layout), until the store crate's own
//! filesystem store is used here.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use coredump_store::{BlobInfo, BlobPath, BlobStore, StoreError};

pub struct DirBlobStore {
    pub root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

impl DirBlobStore {
    pub fn new(root: PathBuf) -> Self {
        fs::create_dir_all(&root).unwrap();
        Self { root }
    }

    fn file(&self, p: &BlobPath) -> PathBuf {
        self.root
            .join(&p.namespace)
            .join(&p.pod_uid)
            .join(&p.container)
            .join(&p.file)
    }

    /// Writes a blob directly (test setup).
    pub fn put_bytes(&self, p: &BlobPath, data: &[u8]) {
        let f = self.file(p);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, data).unwrap();
    }

    pub fn exists(&self, p: &BlobPath) -> bool {
        self.file(p).exists()
    }
}

impl BlobStore for DirBlobStore {
    fn put_file(&self, path: &BlobPath, source: &Path) -> Result<u64, StoreError> {
        let data = fs::read(source).map_err(io(source))?;
        self.put_bytes(path, &data);
        Ok(data.len() as u64)
    }

    fn open(&self, path: &BlobPath) -> Result<Box<dyn Read + Send>, StoreError> {
        let f = self.file(path);
        Ok(Box::new(fs::File::open(&f).map_err(io(&f))?))
    }

    fn size(&self, path: &BlobPath) -> Result<Option<u64>, StoreError> {
        Ok(fs::metadata(self.file(path)).ok().map(|m| m.len()))
    }

    fn list(
        &self,
        namespace: &str,
        pod_uid: &str,
        container: Option<&str>,
    ) -> Result<Vec<BlobInfo>, StoreError> {
        let pod = self.root.join(namespace).join(pod_uid);
        let mut out = Vec::new();
        let Ok(containers) = fs::read_dir(&pod) else {
            return Ok(out);
        };
        for c in containers {
            let c = c.unwrap();
            let cname = c.file_name().to_string_lossy().into_owned();
            if container.is_some_and(|want| want != cname) {
                continue;
            }
            for f in fs::read_dir(c.path()).unwrap() {
                let f = f.unwrap();
                out.push(BlobInfo {
                    path: BlobPath {
                        namespace: namespace.to_owned(),
                        pod_uid: pod_uid.to_owned(),
                        container: cname.clone(),
                        file: f.file_name().to_string_lossy().into_owned(),
                    },
                    size: f.metadata().unwrap().len(),
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn delete(&self, path: &BlobPath) -> Result<(), StoreError> {
        let _ = fs::remove_file(self.file(path));
        Ok(())
    }

    fn delete_pod(&self, namespace: &str, pod_uid: &str) -> Result<usize, StoreError> {
        let n = self.list(namespace, pod_uid, None)?.len();
        let _ = fs::remove_dir_all(self.root.join(namespace).join(pod_uid));
        Ok(n)
    }

    fn namespace_usage(&self, _namespace: &str) -> Result<u64, StoreError> {
        Ok(0)
    }
}
