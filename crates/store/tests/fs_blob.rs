//! The filesystem blob store on a real filesystem: layout, atomic and idempotent writes,
//! streaming reads, listing, deletion, quota accounting, concurrency, and symlinks planted
//! under the root that must never redirect a write or a read outside it.
// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod blob_conformance;

use coredump_store::fs_blob::FsBlobStore;
use coredump_store::{BlobPath, BlobStore, StoreError};

/// Deterministic, non-repeating-looking bytes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

fn source(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn read_all(store: &FsBlobStore, path: &BlobPath) -> Vec<u8> {
    let mut out = Vec::new();
    store.open(path).unwrap().read_to_end(&mut out).unwrap();
    out
}

fn bp(ns: &str, pod: &str, c: &str, f: &str) -> BlobPath {
    BlobPath::new(ns, pod, c, f).unwrap()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    src: PathBuf,
    outside: PathBuf,
    store: FsBlobStore,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("blobs");
    let src = tmp.path().join("src");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let store = FsBlobStore::new(root.clone()).unwrap();
    Fixture {
        _tmp: tmp,
        root,
        src,
        outside,
        store,
    }
}

/// Names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn put_stores_seed_layout_and_open_streams_the_same_bytes() {
    let f = fixture();
    let bytes = pattern(3 * 1024 * 1024 + 17, 1);
    let path = bp("default", "uid-1", "app", "crash-1.core.zst");
    let size = f
        .store
        .put_file(&path, &source(&f.src, "a", &bytes))
        .unwrap();
    assert_eq!(size, bytes.len() as u64);
    // The seed layout on disk, byte for byte.
    let on_disk = std::fs::read(f.root.join("default/uid-1/app/crash-1.core.zst")).unwrap();
    assert_eq!(on_disk, bytes);
    assert_eq!(read_all(&f.store, &path), bytes);
    assert_eq!(f.store.size(&path).unwrap(), Some(bytes.len() as u64));
    assert_eq!(
        names(&f.root.join("default/uid-1/app")),
        ["crash-1.core.zst"],
        "temp file left"
    );
    // Memory images of other tenants: readable by the store's owner only.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(f.root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("default/uid-1/app/crash-1.core.zst"), 0o600);
    for dir in ["default", "default/uid-1", "default/uid-1/app"] {
        assert_eq!(mode(dir), 0o700, "{dir}");
    }
}

/// The agent (root) stores for an unprivileged API server and GC: with an owner, every
/// directory and blob it writes, copied or linked, belongs to that user, modes unchanged, and
/// a directory written before the owner was set is taken over on the next write through it.
#[test]
fn an_owner_gets_every_directory_and_blob_it_writes() {
    use coredump_store::fs_blob::Owner;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        0,
        "this test needs root (chown); run the suite as root like scripts/test.sh does"
    );
    let f = fixture();
    let early = bp("ns", "pod", "c", "early.core.zst");
    f.store
        .put_file(&early, &source(&f.src, "e", b"before"))
        .unwrap();
    let owner: Owner = "65532:65533".parse().unwrap();
    let store = FsBlobStore::new(f.root.clone())
        .unwrap()
        .with_owner(owner)
        .unwrap();
    store
        .put_file(
            &bp("ns", "pod", "c", "copied.core.zst"),
            &source(&f.src, "a", b"copied"),
        )
        .unwrap();
    store
        .adopt_file(
            &bp("ns", "pod", "d", "linked.core.zst"),
            &source(&f.src, "b", b"linked"),
        )
        .unwrap();
    for (rel, mode) in [
        ("", 0o755),
        ("ns", 0o700),
        ("ns/pod", 0o700),
        ("ns/pod/c", 0o700),
        ("ns/pod/d", 0o700),
        ("ns/pod/c/copied.core.zst", 0o600),
        ("ns/pod/d/linked.core.zst", 0o600),
    ] {
        let md = std::fs::metadata(f.root.join(rel)).unwrap();
        assert_eq!((md.uid(), md.gid()), (65532, 65533), "{rel:?}");
        if !rel.is_empty() {
            assert_eq!(md.permissions().mode() & 0o777, mode, "{rel:?}");
        }
    }
    let untouched = std::fs::metadata(f.root.join("ns/pod/c/early.core.zst")).unwrap();
    assert_eq!(
        untouched.uid(),
        0,
        "blobs are not rewritten, only new ones owned"
    );
    assert!("65532".parse::<Owner>().is_err());
    assert!("a:1".parse::<Owner>().is_err());
}

#[test]
fn put_is_idempotent_for_the_same_size_and_replaces_otherwise() {
    let f = fixture();
    let path = bp("ns", "pod", "c", "core");
    let a = pattern(1000, 2);
    let b = pattern(1000, 3);
    let c = pattern(1500, 4);
    f.store.put_file(&path, &source(&f.src, "a", &a)).unwrap();
    assert_eq!(
        f.store.put_file(&path, &source(&f.src, "b", &b)).unwrap(),
        1000
    );
    assert_eq!(read_all(&f.store, &path), a, "same size must be left alone");
    assert_eq!(
        f.store.put_file(&path, &source(&f.src, "c", &c)).unwrap(),
        1500
    );
    assert_eq!(read_all(&f.store, &path), c);
}

#[test]
fn missing_blobs_and_sources() {
    let f = fixture();
    let path = bp("ns", "pod", "c", "nothing");
    assert_eq!(f.store.size(&path).unwrap(), None);
    let err = f.store.open(&path).err().unwrap();
    assert!(err.is_not_found(), "{err:?}");
    let err = f.store.put_file(&path, &f.src.join("missing")).unwrap_err();
    match &err {
        StoreError::Io { path, source } => {
            assert_eq!(path, &f.src.join("missing"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        names(&f.root).is_empty(),
        "a failed put left directories behind"
    );
    assert!(f.store.list("ns", "pod", None).unwrap().is_empty());
    assert_eq!(f.store.namespace_usage("ns").unwrap(), 0);
    f.store.delete(&path).unwrap();
    assert_eq!(f.store.delete_pod("ns", "pod").unwrap(), 0);
}

/// Order, scoping and usage are the blob conformance suite's (`check_blob_listing`, run below);
/// here what only a filesystem has: temporary files and symlinks are never listed or counted.
#[test]
fn list_skips_temp_files_and_symlinks() {
    let f = fixture();
    let blob = bp("ns", "pod", "a", "9");
    f.store
        .put_file(&blob, &source(&f.src, "a9", &pattern(30, 30)))
        .unwrap();
    std::fs::write(f.root.join("ns/pod/a/.9.tmp-0123456789abcdef"), b"partial").unwrap();
    std::fs::write(f.outside.join("secret"), b"secret").unwrap();
    symlink(f.outside.join("secret"), f.root.join("ns/pod/a/link")).unwrap();
    symlink(&f.outside, f.root.join("ns/pod/linked-container")).unwrap();
    let listed = f.store.list("ns", "pod", None).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((&listed[0].path, listed[0].size), (&blob, 30));
    assert_eq!(f.store.namespace_usage("ns").unwrap(), 30);
}

#[test]
fn delete_removes_the_blob_and_empty_parents_only() {
    let f = fixture();
    let keep = bp("ns", "pod", "a", "keep");
    let gone = bp("ns", "pod", "b", "gone");
    f.store
        .put_file(&keep, &source(&f.src, "k", b"keep"))
        .unwrap();
    f.store
        .put_file(&gone, &source(&f.src, "g", b"gone"))
        .unwrap();
    f.store.delete(&gone).unwrap();
    assert_eq!(f.store.size(&gone).unwrap(), None);
    assert!(
        !f.root.join("ns/pod/b").exists(),
        "empty container directory kept"
    );
    assert_eq!(read_all(&f.store, &keep), b"keep");
    f.store.delete(&gone).unwrap(); // absent: fine
    f.store.delete(&keep).unwrap();
    assert!(names(&f.root).is_empty(), "empty namespace directory kept");
}

#[test]
fn delete_pod_counts_blobs_and_leaves_other_pods() {
    let f = fixture();
    for (pod, c, file) in [
        ("p1", "a", "1"),
        ("p1", "a", "2"),
        ("p1", "b", "3"),
        ("p2", "a", "1"),
    ] {
        f.store
            .put_file(
                &bp("ns", pod, c, file),
                &source(&f.src, "s", &pattern(100, 5)),
            )
            .unwrap();
    }
    std::fs::write(f.root.join("ns/p1/a/.1.tmp-00"), b"stale").unwrap();
    assert_eq!(f.store.namespace_usage("ns").unwrap(), 400);
    assert_eq!(f.store.delete_pod("ns", "p1").unwrap(), 3);
    assert!(!f.root.join("ns/p1").exists());
    assert_eq!(f.store.list("ns", "p2", None).unwrap().len(), 1);
    assert_eq!(f.store.namespace_usage("ns").unwrap(), 100);
}

#[test]
fn invalid_paths_are_rejected_before_touching_the_disk() {
    let f = fixture();
    let s = source(&f.src, "s", b"x");
    for bad in [
        BlobPath {
            namespace: "..".into(),
            pod_uid: "p".into(),
            container: "c".into(),
            file: "f".into(),
        },
        BlobPath {
            namespace: "n".into(),
            pod_uid: "a/b".into(),
            container: "c".into(),
            file: "f".into(),
        },
        BlobPath {
            namespace: "n".into(),
            pod_uid: "p".into(),
            container: "c".into(),
            file: ".f.tmp-1".into(),
        },
    ] {
        assert!(
            matches!(f.store.put_file(&bad, &s), Err(StoreError::Invalid { .. })),
            "{bad:?}"
        );
        assert!(
            matches!(f.store.open(&bad), Err(StoreError::Invalid { .. })),
            "{bad:?}"
        );
        assert!(
            matches!(f.store.delete(&bad), Err(StoreError::Invalid { .. })),
            "{bad:?}"
        );
    }
    assert!(names(&f.root).is_empty());
    assert!(names(&f.outside).is_empty());
}

#[test]
fn symlinked_directories_never_redirect_writes_outside_the_root() {
    let f = fixture();
    let s = source(&f.src, "s", b"core bytes");
    // A namespace, a pod and a container directory each replaced by a symlink to outside.
    symlink(&f.outside, f.root.join("ns-link")).unwrap();
    std::fs::create_dir_all(f.root.join("ns/pod")).unwrap();
    symlink(&f.outside, f.root.join("ns/pod-link")).unwrap();
    symlink(&f.outside, f.root.join("ns/pod/c-link")).unwrap();
    for path in [
        bp("ns-link", "pod", "c", "f"),
        bp("ns", "pod-link", "c", "f"),
        bp("ns", "pod", "c-link", "f"),
    ] {
        let err = f.store.put_file(&path, &s).unwrap_err();
        assert!(matches!(err, StoreError::Io { .. }), "{path:?}: {err:?}");
    }
    assert!(
        names(&f.outside).is_empty(),
        "a write escaped the root: {:?}",
        names(&f.outside)
    );
}

#[test]
fn symlinks_never_expose_files_outside_the_root() {
    let f = fixture();
    std::fs::create_dir_all(f.outside.join("pod/c")).unwrap();
    std::fs::write(f.outside.join("pod/c/f"), b"secret").unwrap();
    std::fs::write(f.outside.join("secret"), b"secret").unwrap();
    symlink(&f.outside, f.root.join("evil-ns")).unwrap();
    std::fs::create_dir_all(f.root.join("ns/pod/c")).unwrap();
    symlink(f.outside.join("secret"), f.root.join("ns/pod/c/f")).unwrap();

    // Through a symlinked namespace directory.
    let via_dir = bp("evil-ns", "pod", "c", "f");
    assert!(f.store.open(&via_dir).is_err());
    assert!(f.store.size(&via_dir).is_err());
    assert!(f.store.list("evil-ns", "pod", None).is_err());
    // A symlink as the blob itself.
    let via_file = bp("ns", "pod", "c", "f");
    let err = f.store.open(&via_file).err().unwrap();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert!(f.store.size(&via_file).is_err());
    assert!(f.store.list("ns", "pod", None).unwrap().is_empty());
    // Writing over it replaces the link, not its target.
    f.store
        .put_file(&via_file, &source(&f.src, "s", b"mine"))
        .unwrap();
    assert_eq!(read_all(&f.store, &via_file), b"mine");
    assert_eq!(std::fs::read(f.outside.join("secret")).unwrap(), b"secret");
    // Deleting through a symlinked directory touches nothing outside.
    assert!(f.store.delete(&via_dir).is_err());
    assert!(f.store.delete_pod("evil-ns", "pod").is_err());
    assert_eq!(std::fs::read(f.outside.join("pod/c/f")).unwrap(), b"secret");
}

#[test]
fn a_planted_fifo_does_not_hang_a_read() {
    let f = fixture();
    std::fs::create_dir_all(f.root.join("ns/pod/c")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(f.root.join("ns/pod/c/f"))
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let err = f.store.open(&bp("ns", "pod", "c", "f")).err().unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    match err {
        StoreError::Io { source, .. } => assert_eq!(source.kind(), std::io::ErrorKind::InvalidData),
        other => panic!("{other:?}"),
    }
}

#[test]
fn concurrent_puts_of_one_path_leave_one_whole_blob() {
    let f = fixture();
    let a = pattern(2 * 1024 * 1024, 7);
    let b = pattern(3 * 1024 * 1024 + 1, 8);
    let sa = source(&f.src, "a", &a);
    let sb = source(&f.src, "b", &b);
    let store = Arc::new(f.store);
    let path = bp("ns", "pod", "c", "core");
    let deadline = Instant::now() + Duration::from_secs(20);
    std::thread::scope(|s| {
        for i in 0..6 {
            let (store, path, src) = (&store, &path, if i % 2 == 0 { &sa } else { &sb });
            s.spawn(move || {
                for _ in 0..5 {
                    // Delete first so every put really writes instead of taking the size shortcut.
                    store.delete(path).unwrap();
                    store.put_file(path, src).unwrap();
                }
            });
        }
        s.spawn(|| {
            let mut checked = 0;
            while checked < 40 && Instant::now() < deadline {
                match store.open(&path) {
                    Ok(mut r) => {
                        let mut got = Vec::new();
                        r.read_to_end(&mut got).unwrap();
                        assert!(got == a || got == b, "torn blob of {} bytes", got.len());
                        checked += 1;
                    }
                    Err(e) if e.is_not_found() => std::thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
        });
    });
    let got = read_all(&store, &path);
    assert!(got == a || got == b);
    assert_eq!(names(&f.root.join("ns/pod/c")), ["core"], "temp files left");
}

#[test]
fn puts_survive_concurrent_deletes_removing_their_directories() {
    let f = fixture();
    let store = Arc::new(f.store);
    let src = source(&f.src, "s", &pattern(4096, 9));
    std::thread::scope(|s| {
        for name in ["x", "y", "z"] {
            let (store, src) = (&store, &src);
            s.spawn(move || {
                let path = bp("ns", "pod", "c", name);
                for _ in 0..100 {
                    assert_eq!(store.put_file(&path, src).unwrap(), 4096);
                    assert_eq!(store.size(&path).unwrap(), Some(4096));
                    store.delete(&path).unwrap();
                }
            });
        }
    });
    assert!(
        names(&f.root).is_empty(),
        "left behind: {:?}",
        names(&f.root)
    );
}

/// An adopted source on the store's filesystem is stored by hard link: no second copy of the
/// bytes (a nearly full disk that holds a core once must not need room for two), same mode as
/// a copy (owner only). A source behind a symlink is linked as the file it names, never as the
/// symlink. `put_file` still copies: its caller may reuse the source.
#[test]
fn an_adopted_source_on_the_same_filesystem_is_linked_not_copied() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let f = fixture();
    let bytes = pattern(300_000, 9);
    let src = source(&f.src, "spooled", &bytes);
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o600)).unwrap();
    let copied = bp("ns", "pod", "c", "copied.core.zst");
    f.store.put_file(&copied, &src).unwrap();
    let copy_meta = std::fs::metadata(f.root.join("ns/pod/c/copied.core.zst")).unwrap();
    assert_ne!(
        copy_meta.ino(),
        std::fs::metadata(&src).unwrap().ino(),
        "put_file copies"
    );
    let path = bp("ns", "pod", "c", "linked.core.zst");
    assert_eq!(f.store.adopt_file(&path, &src).unwrap(), 300_000);
    let blob = f.root.join("ns/pod/c/linked.core.zst");
    let (b, s) = (
        std::fs::metadata(&blob).unwrap(),
        std::fs::metadata(&src).unwrap(),
    );
    assert_eq!((b.dev(), b.ino()), (s.dev(), s.ino()), "same inode");
    assert_eq!(b.nlink(), 2, "the source and the blob, nothing else");
    assert_eq!(b.mode() & 0o777, 0o600);
    assert_eq!(read_all(&f.store, &path), bytes);
    // The spool entry goes away; the blob stays.
    std::fs::remove_file(&src).unwrap();
    assert_eq!(read_all(&f.store, &path), bytes);

    let target = source(&f.src, "target", &pattern(1000, 10));
    let link = f.src.join("link");
    symlink(&target, &link).unwrap();
    let via = bp("ns", "pod", "c", "via-symlink");
    f.store.adopt_file(&via, &link).unwrap();
    let meta = std::fs::symlink_metadata(f.root.join("ns/pod/c/via-symlink")).unwrap();
    assert!(meta.file_type().is_file(), "a regular file, not a symlink");
    assert_eq!(meta.ino(), std::fs::metadata(&target).unwrap().ino());
}

/// An adopted source on another filesystem (here /dev/shm, a tmpfs, when the store is
/// elsewhere) is copied, with the same result for readers.
#[test]
fn an_adopted_source_on_another_filesystem_is_copied() {
    use std::os::unix::fs::MetadataExt;
    let f = fixture();
    let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
        eprintln!("no /dev/shm here: nothing to compare against");
        return;
    };
    let root_dev = std::fs::metadata(&f.root).unwrap().dev();
    if std::fs::metadata(shm.path()).unwrap().dev() == root_dev {
        eprintln!("/dev/shm is the store's filesystem here: nothing to compare against");
        return;
    }
    let bytes = pattern(200_000, 11);
    let src = source(shm.path(), "elsewhere", &bytes);
    let path = bp("ns", "pod", "c", "copied");
    assert_eq!(f.store.adopt_file(&path, &src).unwrap(), 200_000);
    let blob = std::fs::metadata(f.root.join("ns/pod/c/copied")).unwrap();
    assert_eq!(blob.nlink(), 1, "a copy of its own");
    assert_eq!(read_all(&f.store, &path), bytes);
}

/// The blob conformance suite every backend passes (object stores run it too).
#[test]
fn the_filesystem_store_passes_the_blob_conformance_suite() {
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path().join("sources");
    std::fs::create_dir_all(&scratch).unwrap();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    blob_conformance::run_all_blob(
        || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            FsBlobStore::new(tmp.path().join(format!("blobs-{n}"))).unwrap()
        },
        &scratch,
    );
}
