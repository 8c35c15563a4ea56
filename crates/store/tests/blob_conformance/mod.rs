//! The checks every [`BlobStore`] backend must pass (the filesystem store here, the object
//! store in `crates/objstore/tests`, which includes this file by path), through the trait only:
//! layout-independent behaviour of puts, reads, listings, deletes, enumeration and quota
//! accounting. Test code only (it panics), like the metadata suite in `tests/conformance`: it
//! does not ship in the library. Each check takes a store it may fill freely (one namespace per
//! check, so several checks may share a bucket) and a scratch directory for source files, and
//! panics with a message naming the check when the store misbehaves.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use coredump_store::{BlobPath, BlobStore, StoreError};

/// The value of a store call, or the check fails naming what it was doing.
fn ok<T>(result: Result<T, StoreError>, check: &str, doing: &str) -> T {
    result.unwrap_or_else(|e| panic!("conformance {check}: {doing} failed: {e} ({e:?})"))
}

/// Runs every blob check, each on a store fresh from `make`, sources written under `scratch`.
pub fn run_all_blob<S, F>(make: F, scratch: &Path)
where
    S: BlobStore,
    F: Fn() -> S,
{
    check_blob_round_trip(&make(), scratch);
    check_blob_idempotent_put(&make(), scratch);
    check_blob_put_bytes_replaces(&make(), scratch);
    check_blob_missing(&make(), scratch);
    check_blob_listing(&make(), scratch);
    check_blob_deletes(&make(), scratch);
    check_blob_invalid_paths(&make(), scratch);
    check_blob_seekable(&make(), scratch);
    check_blob_concurrent_puts(&make(), scratch);
    check_blob_enumeration(&make(), scratch);
}

/// `len` bytes that differ for every `seed` and do not repeat within a block (xorshift64).
pub fn blob_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `bytes` to `<scratch>/<name>` and returns the path.
fn source(scratch: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch.join(name);
    if let Err(e) = std::fs::write(&path, bytes) {
        panic!("conformance: writing the source {}: {e}", path.display());
    }
    path
}

fn path(namespace: &str, pod: &str, container: &str, file: &str) -> BlobPath {
    ok(
        BlobPath::new(namespace, pod, container, file),
        "blob",
        "BlobPath::new",
    )
}

/// The whole blob, read through `open`.
fn read_all(store: &dyn BlobStore, at: &BlobPath, check: &str) -> Vec<u8> {
    let mut reader = ok(store.open(at), check, "open");
    let mut out = Vec::new();
    if let Err(e) = reader.read_to_end(&mut out) {
        panic!("conformance {check}: reading {at:?}: {e}");
    }
    out
}

/// A multi-MiB blob comes back byte for byte, with its size, in the listing.
pub fn check_blob_round_trip(store: &dyn BlobStore, scratch: &Path) {
    const CHECK: &str = "blob_round_trip";
    let bytes = blob_bytes(3 * 1024 * 1024 + 17, 1);
    let at = path("conf-rt", "uid-1", "app", "crash-1.core.zst");
    let src = source(scratch, "rt", &bytes);
    assert_eq!(
        ok(store.put_file(&at, &src), CHECK, "put_file"),
        bytes.len() as u64,
        "conformance {CHECK}: put_file's size"
    );
    assert!(
        read_all(store, &at, CHECK) == bytes,
        "conformance {CHECK}: bytes read back differ"
    );
    assert_eq!(
        ok(store.size(&at), CHECK, "size"),
        Some(bytes.len() as u64),
        "conformance {CHECK}: size"
    );
    let listed = ok(store.list("conf-rt", "uid-1", None), CHECK, "list");
    assert_eq!(listed.len(), 1, "conformance {CHECK}: listing {listed:?}");
    assert_eq!(listed[0].path, at, "conformance {CHECK}");
    assert_eq!(listed[0].size, bytes.len() as u64, "conformance {CHECK}");
    // Adopting gives the same result for readers.
    let adopted = path("conf-rt", "uid-1", "app", "adopted.core.zst");
    let src = source(scratch, "rt-adopt", &bytes[..1000]);
    ok(store.adopt_file(&adopted, &src), CHECK, "adopt_file");
    assert!(
        read_all(store, &adopted, CHECK) == bytes[..1000],
        "conformance {CHECK}: adopted"
    );
}

/// A blob of the same size is left alone; another size replaces it.
pub fn check_blob_idempotent_put(store: &dyn BlobStore, scratch: &Path) {
    const CHECK: &str = "blob_idempotent_put";
    let at = path("conf-idem", "pod", "c", "core");
    let (a, b, c) = (
        blob_bytes(1000, 2),
        blob_bytes(1000, 3),
        blob_bytes(1500, 4),
    );
    ok(
        store.put_file(&at, &source(scratch, "idem-a", &a)),
        CHECK,
        "put a",
    );
    let again = ok(
        store.put_file(&at, &source(scratch, "idem-b", &b)),
        CHECK,
        "put b",
    );
    assert_eq!(again, 1000, "conformance {CHECK}");
    assert!(
        read_all(store, &at, CHECK) == a,
        "conformance {CHECK}: same size must be left alone"
    );
    let replaced = ok(
        store.put_file(&at, &source(scratch, "idem-c", &c)),
        CHECK,
        "put c",
    );
    assert_eq!(replaced, 1500, "conformance {CHECK}");
    assert!(
        read_all(store, &at, CHECK) == c,
        "conformance {CHECK}: another size replaces"
    );
}

/// `put_bytes` replaces even a blob of the same size.
pub fn check_blob_put_bytes_replaces(store: &dyn BlobStore, _scratch: &Path) {
    const CHECK: &str = "blob_put_bytes_replaces";
    let at = path("conf-bytes", "pod", "c", "rec.json");
    assert_eq!(ok(store.put_bytes(&at, b"first"), CHECK, "put_bytes"), 5);
    assert_eq!(ok(store.put_bytes(&at, b"again"), CHECK, "put_bytes"), 5);
    assert_eq!(read_all(store, &at, CHECK), b"again", "conformance {CHECK}");
}

/// Absent blobs and sources: `None`, `NotFound` by type, and no-op deletes.
pub fn check_blob_missing(store: &dyn BlobStore, scratch: &Path) {
    const CHECK: &str = "blob_missing";
    let at = path("conf-missing", "pod", "c", "nothing");
    assert_eq!(
        ok(store.size(&at), CHECK, "size"),
        None,
        "conformance {CHECK}"
    );
    match store.open(&at) {
        Err(e) => assert!(e.is_not_found(), "conformance {CHECK}: open gave {e:?}"),
        Ok(_) => panic!("conformance {CHECK}: opened an absent blob"),
    }
    let missing = scratch.join("missing-source");
    match store.put_file(&at, &missing) {
        Err(StoreError::Io { path, source }) => {
            assert_eq!(path, missing, "conformance {CHECK}: error names the source");
            assert_eq!(
                source.kind(),
                std::io::ErrorKind::NotFound,
                "conformance {CHECK}"
            );
        }
        other => panic!("conformance {CHECK}: put of a missing source gave {other:?}"),
    }
    assert!(ok(store.list("conf-missing", "pod", None), CHECK, "list").is_empty());
    assert_eq!(ok(store.namespace_usage("conf-missing"), CHECK, "usage"), 0);
    ok(store.delete(&at), CHECK, "delete of an absent blob");
    assert_eq!(
        ok(store.delete_pod("conf-missing", "pod"), CHECK, "delete_pod"),
        0
    );
}

/// Listings are sorted, of one pod (and container) only; usage sums a namespace.
pub fn check_blob_listing(store: &dyn BlobStore, scratch: &Path) {
    const CHECK: &str = "blob_listing";
    let ns = "conf-list";
    for (c, file, len) in [
        ("b", "2", 20),
        ("a", "9", 30),
        ("b", "1", 10),
        ("a", "10", 40),
    ] {
        let src = source(
            scratch,
            &format!("list-{c}{file}"),
            &blob_bytes(len, len as u64),
        );
        ok(
            store.put_file(&path(ns, "pod", c, file), &src),
            CHECK,
            "put_file",
        );
    }
    let other = source(scratch, "list-other", b"zz");
    ok(
        store.put_file(&path(ns, "pod-2", "a", "x"), &other),
        CHECK,
        "put_file",
    );
    ok(
        store.put_file(&path("conf-list-2", "pod", "a", "x"), &other),
        CHECK,
        "put_file",
    );
    let all: Vec<_> = ok(store.list(ns, "pod", None), CHECK, "list")
        .into_iter()
        .map(|i| (i.path.container, i.path.file, i.size))
        .collect();
    let want = [
        ("a", "10", 40),
        ("a", "9", 30),
        ("b", "1", 10),
        ("b", "2", 20),
    ]
    .map(|(c, f, s)| (c.to_owned(), f.to_owned(), s as u64));
    assert_eq!(all, want, "conformance {CHECK}: sorted listing of one pod");
    let one: Vec<_> = ok(store.list(ns, "pod", Some("b")), CHECK, "list")
        .into_iter()
        .map(|i| i.path)
        .collect();
    assert_eq!(
        one,
        [path(ns, "pod", "b", "1"), path(ns, "pod", "b", "2")],
        "conformance {CHECK}"
    );
    assert_eq!(
        ok(store.namespace_usage(ns), CHECK, "usage"),
        100 + 2,
        "conformance {CHECK}"
    );
    assert!(
        matches!(
            store.list("..", "pod", None),
            Err(StoreError::Invalid { .. })
        ),
        "conformance {CHECK}: an invalid namespace is refused"
    );
}

/// `delete` removes one blob; `delete_pod` counts what it removed and leaves other pods.
pub fn check_blob_deletes(store: &dyn BlobStore, scratch: &Path) {
    const CHECK: &str = "blob_deletes";
    let ns = "conf-delete";
    let src = source(scratch, "del", &blob_bytes(100, 5));
    for (pod, c, file) in [
        ("p1", "a", "1"),
        ("p1", "a", "2"),
        ("p1", "b", "3"),
        ("p2", "a", "1"),
    ] {
        ok(
            store.put_file(&path(ns, pod, c, file), &src),
            CHECK,
            "put_file",
        );
    }
    assert_eq!(
        ok(store.namespace_usage(ns), CHECK, "usage"),
        400,
        "conformance {CHECK}"
    );
    let gone = path(ns, "p1", "b", "3");
    ok(store.delete(&gone), CHECK, "delete");
    assert_eq!(
        ok(store.size(&gone), CHECK, "size"),
        None,
        "conformance {CHECK}"
    );
    assert_eq!(
        ok(store.delete_pod(ns, "p1"), CHECK, "delete_pod"),
        2,
        "conformance {CHECK}"
    );
    assert!(
        ok(store.list(ns, "p1", None), CHECK, "list").is_empty(),
        "conformance {CHECK}"
    );
    assert_eq!(
        ok(store.list(ns, "p2", None), CHECK, "list").len(),
        1,
        "conformance {CHECK}"
    );
    assert_eq!(
        ok(store.namespace_usage(ns), CHECK, "usage"),
        100,
        "conformance {CHECK}"
    );
}

/// Invalid paths are refused by every operation before anything is touched.
pub fn check_blob_invalid_paths(store: &dyn BlobStore, scratch: &Path) {
    const CHECK: &str = "blob_invalid_paths";
    let src = source(scratch, "invalid", b"x");
    let bad = [
        ("..", "p", "c", "f"),
        ("n", "a/b", "c", "f"),
        ("n", "p", "c", ".f.tmp-1"),
    ];
    for (namespace, pod_uid, container, file) in bad {
        let p = BlobPath {
            namespace: namespace.into(),
            pod_uid: pod_uid.into(),
            container: container.into(),
            file: file.into(),
        };
        let invalid = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Invalid { .. }));
        assert!(
            invalid(store.put_file(&p, &src).map(drop)),
            "conformance {CHECK}: put {p:?}"
        );
        assert!(
            invalid(store.open(&p).map(drop)),
            "conformance {CHECK}: open {p:?}"
        );
        assert!(
            invalid(store.delete(&p)),
            "conformance {CHECK}: delete {p:?}"
        );
        assert!(
            invalid(store.size(&p).map(drop)),
            "conformance {CHECK}: size {p:?}"
        );
    }
}

/// A seekable reader (when the store has one) reads any range, including after seeking back.
pub fn check_blob_seekable(store: &dyn BlobStore, scratch: &Path) {
    const CHECK: &str = "blob_seekable";
    let bytes = blob_bytes(2 * 1024 * 1024 + 333, 6);
    let at = path("conf-seek", "pod", "c", "core");
    ok(
        store.put_file(&at, &source(scratch, "seek", &bytes)),
        CHECK,
        "put_file",
    );
    let Some(mut reader) = ok(store.open_seekable(&at), CHECK, "open_seekable") else {
        return; // a streaming-only store
    };
    let mut read_at = |from: SeekFrom, len: usize| {
        let pos = match reader.seek(from) {
            Ok(p) => p,
            Err(e) => panic!("conformance {CHECK}: seek {from:?}: {e}"),
        };
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        // Bounded: every round reads at least one byte or ends the loop.
        while filled < len {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => panic!("conformance {CHECK}: read at {pos}: {e}"),
            }
        }
        buf.truncate(filled);
        (pos as usize, buf)
    };
    for (from, len) in [
        (SeekFrom::Start(1_000_000), 70_000),
        (SeekFrom::End(-100), 1000),
        (SeekFrom::Start(5), 10),
        (SeekFrom::Current(3), 400_000),
        (SeekFrom::Start(0), 2_500_000),
    ] {
        let (pos, got) = read_at(from, len);
        let end = (pos + len).min(bytes.len());
        assert!(
            got == bytes[pos..end],
            "conformance {CHECK}: {len} bytes at {from:?} ({pos}) differ"
        );
    }
}

/// Concurrent puts of one path all succeed and leave one whole blob; readers never see a torn
/// one.
pub fn check_blob_concurrent_puts(store: &dyn BlobStore, scratch: &Path) {
    const CHECK: &str = "blob_concurrent_puts";
    let a = blob_bytes(1024 * 1024, 7);
    let b = blob_bytes(1024 * 1024 + 1, 8);
    let (sa, sb) = (source(scratch, "conc-a", &a), source(scratch, "conc-b", &b));
    let at = path("conf-concurrent", "pod", "c", "core");
    std::thread::scope(|s| {
        for i in 0..4 {
            let (at, sa, sb) = (&at, &sa, &sb);
            s.spawn(move || {
                // Each thread alternates the two sizes, so most puts replace the blob instead
                // of finding one of their size there. (No deletes in between: a put cannot
                // vouch for its blob once another thread removed it.)
                for round in 0..4 {
                    let src = if (i + round) % 2 == 0 { sa } else { sb };
                    ok(store.put_file(at, src), CHECK, "put_file");
                }
            });
        }
        s.spawn(|| {
            for _ in 0..10 {
                match store.open(&at) {
                    Ok(mut r) => {
                        let mut got = Vec::new();
                        // A blob replaced while it is read may fail the read (object stores
                        // pin the version they opened); it must never mix two versions.
                        if r.read_to_end(&mut got).is_ok() {
                            assert!(
                                got == a || got == b,
                                "conformance {CHECK}: torn blob of {} bytes",
                                got.len()
                            );
                        }
                    }
                    Err(e) if e.is_not_found() => std::thread::yield_now(),
                    Err(e) => panic!("conformance {CHECK}: open: {e}"),
                }
            }
        });
    });
    let got = read_all(store, &at, CHECK);
    assert!(
        got == a || got == b,
        "conformance {CHECK}: final blob is neither"
    );
}

/// A store that enumerates its namespaces and pods (an object store; the filesystem store says
/// `None` and is walked instead) lists them sorted, without the binaries' dot-directory, and
/// sees a pod go when its last blob goes.
pub fn check_blob_enumeration(store: &dyn BlobStore, scratch: &Path) {
    const CHECK: &str = "blob_enumeration";
    let Some(before) = ok(store.namespaces(), CHECK, "namespaces") else {
        return; // enumerated by walking its directory
    };
    let src = source(scratch, "enum", b"x");
    for (ns, pod) in [
        ("conf-enum-b", "p2"),
        ("conf-enum-a", "p1"),
        ("conf-enum-b", "p1"),
    ] {
        ok(
            store.put_file(&path(ns, pod, "c", "f"), &src),
            CHECK,
            "put_file",
        );
    }
    let binary = coredump_store::buildid::buildid_path(
        "conf-enum-a",
        "0a1b",
        coredump_store::buildid::EXECUTABLE,
    );
    let Some(binary) = binary else {
        panic!("conformance {CHECK}: no build-ID path");
    };
    ok(store.put_file(&binary, &src), CHECK, "put_file");
    let after = ok(store.namespaces(), CHECK, "namespaces").unwrap_or_default();
    let added: Vec<_> = after.iter().filter(|n| !before.contains(n)).collect();
    assert_eq!(
        added,
        ["conf-enum-a", "conf-enum-b"],
        "conformance {CHECK}: namespaces"
    );
    let pods = |ns: &str| ok(store.pods(ns), CHECK, "pods").unwrap_or_default();
    assert_eq!(
        pods("conf-enum-a"),
        ["p1"],
        "conformance {CHECK}: pods, no dot-directory"
    );
    assert_eq!(
        pods("conf-enum-b"),
        ["p1", "p2"],
        "conformance {CHECK}: pods sorted"
    );
    ok(
        store.delete(&path("conf-enum-b", "p2", "c", "f")),
        CHECK,
        "delete",
    );
    // Servers backed by a filesystem (SeaweedFS's filer) may keep the empty "directory" a
    // while: the pod may still be named, never with blobs.
    let left = pods("conf-enum-b");
    assert!(
        left == ["p1"] || left == ["p1", "p2"],
        "conformance {CHECK}: pods after the last blob of p2 went: {left:?}"
    );
    let listed = ok(store.list("conf-enum-b", "p2", None), CHECK, "list");
    assert!(listed.is_empty(), "conformance {CHECK}: {listed:?}");
    assert!(
        pods("conf-enum-none").is_empty(),
        "conformance {CHECK}: an absent namespace"
    );
}
