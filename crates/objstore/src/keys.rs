//! Object keys of blobs: `<prefix>/<namespace>/<podUID>/<container>/<file>`, the filesystem
//! store's layout under a key prefix. Each component is one key segment; the few characters
//! object stores advise against (`%`, `\`, `{`, `#`, ...) are percent-encoded by
//! `object_store`, and decoded again when a listing is read back, so every valid
//! [`BlobPath`] round-trips.

use coredump_store::{BlobPath, StoreError};
use object_store::path::{Path as Key, PathPart};
use percent_encoding::percent_decode_str;

/// Where a store's blobs live in its bucket: the (possibly empty) key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: Key,
}

impl Layout {
    /// Blobs under `prefix` (`a/b`, no leading or trailing `/`; empty for the bucket's root).
    pub fn new(prefix: &str) -> Result<Self, StoreError> {
        let trimmed = prefix.trim_matches('/');
        let prefix = Key::parse(trimmed).map_err(|_| StoreError::Invalid {
            what: "object key prefix",
            value: prefix.to_owned(),
        })?;
        Ok(Self { prefix })
    }

    /// The prefix itself.
    pub fn prefix(&self) -> &Key {
        &self.prefix
    }

    /// The key of one blob (validated first).
    pub fn key(&self, path: &BlobPath) -> Result<Key, StoreError> {
        path.validate()?;
        Ok(self.join(&[&path.namespace, &path.pod_uid, &path.container, &path.file]))
    }

    /// The key prefix of a namespace, a pod or a container: `segments` below the prefix.
    pub fn dir(&self, segments: &[&str]) -> Key {
        self.join(segments)
    }

    fn join(&self, segments: &[&str]) -> Key {
        segments
            .iter()
            .fold(self.prefix.clone(), |key, s| key.join(PathPart::from(*s)))
    }

    /// The blob a listed key names, `None` for keys that are not blobs of ours (another
    /// depth, an invalid component, a name the filesystem store would keep apart such as a
    /// dot-file).
    pub fn blob_of(&self, key: &Key) -> Option<BlobPath> {
        let rest: Vec<String> = key
            .prefix_match(&self.prefix)?
            .map(|part| {
                percent_decode_str(part.as_ref())
                    .decode_utf8()
                    .ok()
                    .map(|s| s.into_owned())
            })
            .collect::<Option<_>>()?;
        match rest.as_slice() {
            [namespace, pod_uid, container, file] => {
                BlobPath::new(namespace, pod_uid, container, file).ok()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp(ns: &str, pod: &str, c: &str, f: &str) -> BlobPath {
        BlobPath::new(ns, pod, c, f).expect("valid path")
    }

    #[test]
    fn keys_mirror_the_filesystem_layout() {
        let layout = Layout::new("cores/prod").expect("prefix");
        let key = layout
            .key(&bp("ns", "uid-1", "app", "c.core.zst"))
            .expect("key");
        assert_eq!(key.as_ref(), "cores/prod/ns/uid-1/app/c.core.zst");
        let root = Layout::new("").expect("empty prefix");
        assert_eq!(
            root.key(&bp("ns", "p", "c", "f")).expect("key").as_ref(),
            "ns/p/c/f"
        );
        assert_eq!(
            Layout::new("/a/b/").expect("slashes").prefix().as_ref(),
            "a/b"
        );
        assert!(Layout::new("a//b").is_err());
    }

    #[test]
    fn every_valid_path_round_trips_through_a_listing() {
        let layout = Layout::new("p").expect("prefix");
        for path in [
            bp("ns", ".buildid", "0a1b", "executable"),
            bp("host", "host", "my prog {1}%#?", "x.core.zst"),
            bp("ns", "pod", "\u{e9}t\u{e9}", "back\\slash"),
        ] {
            let key = layout.key(&path).expect("key");
            // A listing hands back keys parsed from the raw string the server stored.
            let listed = Key::parse(key.as_ref()).expect("listed key");
            assert_eq!(layout.blob_of(&listed), Some(path));
        }
    }

    #[test]
    fn foreign_keys_are_not_blobs() {
        let layout = Layout::new("p").expect("prefix");
        for raw in [
            "p/ns/pod/c",
            "p/ns/pod/c/f/g",
            "q/ns/pod/c/f",
            "p/ns/pod/c/.tmp",
        ] {
            let key = Key::parse(raw).expect("key");
            assert_eq!(layout.blob_of(&key), None, "{raw}");
        }
        assert!(
            layout
                .key(&BlobPath {
                    namespace: "..".into(),
                    pod_uid: "p".into(),
                    container: "c".into(),
                    file: "f".into(),
                })
                .is_err()
        );
    }
}
