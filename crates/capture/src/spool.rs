//! The spool: where the crash path leaves finished captures for the ingest.
//!
//! Layout under the spool directory:
//! * `<id>.tmp/` an entry being written; its `lock` file is flocked by the writer for its life.
//! * `<id>/` a published entry: `meta.json` and `core.zst` or `core.raw`. Publication is a
//!   rename, so a reader never sees a half entry. The ingest may add files of its own (the
//!   object store's upload record `core.zst.upload`); they go when the entry is removed.
//! * `slots/` lock files bounding how many handlers run and compress at once.
//! * `.reserve` a file of zeros the agent keeps ([`Spool::keep_reserve`]): on a filesystem full
//!   to the last byte the crash path deletes it and writes the crash's record in its room, so a
//!   crash on a full node is still recorded (without its core) instead of lost.
//!
//! An `<id>.tmp/` whose lock is free belongs to a writer that died: [`Spool::reap_abandoned`]
//! turns it into a `Failed` record so the crash is still counted.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::fsutil::{fsync_dir, write_atomic};
use crate::record::{CaptureState, CoreEncoding, CrashRecord, META_JSON};
use crate::{CaptureError, sys};

const TMP_SUFFIX: &str = ".tmp";
const LOCK: &str = "lock";
const SLOTS: &str = "slots";
const RESERVE: &str = ".reserve";

/// Size of the spool's reserve: room for the records of many refused crashes.
pub const RESERVE_BYTES: u64 = 1 << 20;

/// A spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// An entry being written, owned by one writer; its lock is held until publication or drop.
#[derive(Debug)]
pub struct PendingEntry {
    id: String,
    dir: PathBuf,
    _lock: File,
}

impl PendingEntry {
    /// Directory to write the core into.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// Entry id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A held concurrency slot; released on drop (or when the process dies).
#[derive(Debug)]
pub struct Slot {
    _file: File,
}

/// Which pool of slots to take from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// Any running capture.
    Handler,
    /// A capture compressing inline.
    Compress,
}

impl Spool {
    /// A spool at `dir`, created (mode 0700) if missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Spool, CaptureError> {
        let dir = dir.into();
        create_private_dir_all(&dir)?;
        create_private_dir_all(&dir.join(SLOTS))?;
        Ok(Spool { dir })
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Builds a new entry id: crash time, pid and a nanosecond stamp, so ids sort by time and
    /// never collide even under pid reuse.
    pub fn new_id(time: i64, pid: u32) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{time}-{pid}-{nanos:08x}")
    }

    /// Starts an entry: creates `<id>.tmp/` and locks it.
    pub fn begin(&self, id: &str) -> Result<PendingEntry, CaptureError> {
        let dir = self.dir.join(format!("{id}{TMP_SUFFIX}"));
        self.or_reserve(|| {
            std::fs::create_dir(&dir).map_err(|e| CaptureError::io("create", &dir, e))
        })?;
        let lock_path = dir.join(LOCK);
        let lock = crate::fsutil::create_new_nofollow(&lock_path)?;
        sys::lock(&lock).map_err(|e| CaptureError::io("lock", &lock_path, e))?;
        Ok(PendingEntry {
            id: id.to_string(),
            dir,
            _lock: lock,
        })
    }

    /// Publishes an entry: writes `meta.json`, then renames `<id>.tmp/` to `<id>/`, fsyncing so
    /// the entry survives a power loss once this returns.
    pub fn publish(
        &self,
        entry: PendingEntry,
        record: &CrashRecord,
    ) -> Result<PathBuf, CaptureError> {
        let json = serde_json::to_vec_pretty(record).map_err(|source| CaptureError::Config {
            path: entry.dir.join(META_JSON),
            source,
        })?;
        self.or_reserve(|| write_atomic(&entry.dir.join(META_JSON), &json))?;
        let _ = std::fs::remove_file(entry.dir.join(LOCK));
        let final_dir = self.dir.join(&entry.id);
        std::fs::rename(&entry.dir, &final_dir)
            .map_err(|e| CaptureError::io("publish", &final_dir, e))?;
        fsync_dir(&self.dir)?;
        Ok(final_dir)
    }

    /// Runs `f`; when it fails because the filesystem is full and the reserve was there,
    /// deletes the reserve and runs `f` once more in the room it leaves.
    pub fn or_reserve<T>(
        &self,
        mut f: impl FnMut() -> Result<T, CaptureError>,
    ) -> Result<T, CaptureError> {
        match f() {
            Err(e) if e.is_storage_full() && self.release_reserve() => f(),
            other => other,
        }
    }

    /// Deletes the reserve; whether there was one.
    pub fn release_reserve(&self) -> bool {
        std::fs::remove_file(self.dir.join(RESERVE)).is_ok()
    }

    /// Keeps the reserve of `bytes` (zeros, really written: a sparse file would reserve
    /// nothing): when it is missing or short, writes it, but only while at least
    /// `free_after` bytes stay free besides, so it never takes the last room of a filling
    /// disk. Returns whether it wrote one.
    pub fn keep_reserve(&self, bytes: u64, free_after: u64) -> Result<bool, CaptureError> {
        let path = self.dir.join(RESERVE);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() >= bytes) {
            return Ok(false);
        }
        let free =
            sys::free_bytes_at(&self.dir).map_err(|e| CaptureError::io("statvfs", &self.dir, e))?;
        if free < bytes.saturating_add(free_after) {
            return Ok(false);
        }
        write_atomic(&path, &vec![0u8; bytes as usize])?;
        Ok(true)
    }

    /// Takes a free slot of `kind` among `count`, or `None` if all are held.
    pub fn try_slot(&self, kind: SlotKind, count: u32) -> Option<Slot> {
        let prefix = match kind {
            SlotKind::Handler => "handler",
            SlotKind::Compress => "compress",
        };
        (0..count).find_map(|i| {
            let path = self.dir.join(SLOTS).join(format!("{prefix}-{i}"));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .ok()?;
            sys::try_lock(&file).then_some(Slot { _file: file })
        })
    }

    /// Like [`Spool::try_slot`], retrying every 10 ms for at most `wait`.
    pub fn wait_slot(&self, kind: SlotKind, count: u32, wait: std::time::Duration) -> Option<Slot> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            if let Some(slot) = self.try_slot(kind, count) {
                return Some(slot);
            }
            if std::time::Instant::now() >= deadline || count == 0 {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Ids of published entries, oldest first.
    pub fn ready(&self) -> Result<Vec<String>, CaptureError> {
        let mut ids: Vec<String> = self
            .entries()?
            .filter(|name| !name.ends_with(TMP_SUFFIX) && name != SLOTS)
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Reads the record of a published entry.
    pub fn record(&self, id: &str) -> Result<CrashRecord, CaptureError> {
        let path = self.dir.join(id).join(META_JSON);
        let bytes = crate::fsutil::read_bounded(&path, 1 << 20)?;
        serde_json::from_slice(&bytes).map_err(|source| CaptureError::Config { path, source })
    }

    /// Path of a published entry's directory.
    pub fn entry_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Removes a published entry once the ingest has stored it.
    pub fn remove(&self, id: &str) -> Result<(), CaptureError> {
        let dir = self.dir.join(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CaptureError::io("remove", dir, e)),
        }
    }

    /// Publishes a `Failed` record for every `<id>.tmp/` whose writer died (its lock is free),
    /// dropping its partial core. Returns the ids reaped.
    pub fn reap_abandoned(&self) -> Result<Vec<String>, CaptureError> {
        let mut reaped = Vec::new();
        for name in self.entries()?.filter(|n| n.ends_with(TMP_SUFFIX)) {
            let dir = self.dir.join(&name);
            let lock_path = dir.join(LOCK);
            let Ok(lock) = File::open(&lock_path) else {
                // No lock file yet: the writer is between mkdir and lock, or died there.
                // Only reap if it is old enough not to be a live writer.
                if is_older_than(&dir, 60) {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                continue;
            };
            if !sys::try_lock(&lock) {
                continue; // writer alive
            }
            let id = name.trim_end_matches(TMP_SUFFIX).to_string();
            for f in [crate::record::CORE_ZST, crate::record::CORE_RAW] {
                let _ = std::fs::remove_file(dir.join(f));
            }
            let record = abandoned_record(&id);
            let entry = PendingEntry {
                id: id.clone(),
                dir,
                _lock: lock,
            };
            self.publish(entry, &record)?;
            reaped.push(id);
        }
        Ok(reaped)
    }

    fn entries(&self) -> Result<impl Iterator<Item = String>, CaptureError> {
        let read =
            std::fs::read_dir(&self.dir).map_err(|e| CaptureError::io("list", &self.dir, e))?;
        Ok(read.filter_map(|e| {
            let e = e.ok()?;
            if !e.file_type().ok()?.is_dir() {
                return None;
            }
            let name = e.file_name().into_string().ok()?;
            (!name.starts_with('.')).then_some(name)
        }))
    }
}

fn is_older_than(path: &Path, secs: u64) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() > secs)
}

/// The record left for a writer that died mid-capture: what the id tells, and why.
fn abandoned_record(id: &str) -> CrashRecord {
    let mut parts = id.splitn(3, '-');
    let time = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
    let pid = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    CrashRecord {
        id: id.to_string(),
        pid,
        tid: pid,
        signal: 0,
        time,
        uid: 0,
        gid: 0,
        hostname: String::new(),
        comm: String::new(),
        exe: String::new(),
        cmdline: Vec::new(),
        cgroup: String::new(),
        pod: None,
        raw_size: 0,
        kept_size: 0,
        stored_size: 0,
        sha256: String::new(),
        encoding: CoreEncoding::None,
        state: CaptureState::Failed,
        cause: Some(coredump_api::CoredumpReason::CaptureDied),
        reason: "the capture process died before finishing; the partial core was discarded".into(),
        held_ms: 0,
        done_ms: 0,
        suppressed: 0,
    }
}

/// `mkdir -p` with mode 0700 for directories we create.
pub fn create_private_dir_all(dir: &Path) -> Result<(), CaptureError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CaptureError::io("create", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_kept_and_gives_its_room_to_a_write_that_found_the_disk_full() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path().join("spool")).unwrap();
        assert!(spool.keep_reserve(4096, 0).unwrap(), "written");
        assert!(!spool.keep_reserve(4096, 0).unwrap(), "kept, not rewritten");
        assert_eq!(
            std::fs::metadata(spool.dir().join(RESERVE)).unwrap().len(),
            4096
        );
        assert!(spool.ready().unwrap().is_empty(), "not an entry");
        assert!(
            !spool.keep_reserve(8192, u64::MAX / 2).unwrap(),
            "never takes the last room"
        );
        let full = || {
            CaptureError::io(
                "write",
                "meta.json",
                std::io::Error::from(std::io::ErrorKind::StorageFull),
            )
        };
        let mut calls = 0;
        let written = spool.or_reserve(|| {
            calls += 1;
            if calls == 1 { Err(full()) } else { Ok(calls) }
        });
        assert_eq!(written.unwrap(), 2, "retried once the reserve was deleted");
        assert!(!spool.dir().join(RESERVE).exists());
        assert!(
            spool
                .or_reserve(|| -> Result<(), _> { Err(full()) })
                .is_err(),
            "no reserve left: the failure stands"
        );
    }

    #[test]
    fn begin_publish_ready_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path().join("spool")).unwrap();
        let entry = spool.begin("100-7-0000abcd").unwrap();
        std::fs::write(entry.dir().join("core.zst"), b"x").unwrap();
        assert!(
            spool.ready().unwrap().is_empty(),
            "pending entries are not ready"
        );
        let mut record = abandoned_record("100-7-0000abcd");
        record.state = CaptureState::Stored;
        spool.publish(entry, &record).unwrap();
        assert_eq!(spool.ready().unwrap(), vec!["100-7-0000abcd".to_string()]);
        assert_eq!(spool.record("100-7-0000abcd").unwrap(), record);
        // The object store's upload record beside the core (`core.zst.upload`) is no entry of
        // its own and goes with the entry.
        let dir = spool.entry_dir("100-7-0000abcd");
        std::fs::write(dir.join("core.zst.upload"), b"{}\n").unwrap();
        assert_eq!(spool.ready().unwrap(), vec!["100-7-0000abcd".to_string()]);
        spool.remove("100-7-0000abcd").unwrap();
        assert!(spool.ready().unwrap().is_empty());
        assert!(!dir.exists(), "the entry and its upload record are removed");
    }

    #[test]
    fn abandoned_entries_become_failed_records_but_live_ones_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let live = spool.begin("1-10-00000001").unwrap();
        // A dead writer: its lock file exists but nobody holds it.
        let dead = spool.begin("2-20-00000002").unwrap();
        std::fs::write(dead.dir().join("core.zst"), b"partial").unwrap();
        let dead_dir = dead.dir().to_path_buf();
        drop(dead);
        let reaped = spool.reap_abandoned().unwrap();
        assert_eq!(reaped, vec!["2-20-00000002".to_string()]);
        let record = spool.record("2-20-00000002").unwrap();
        assert_eq!(
            (record.state, record.pid, record.time),
            (CaptureState::Failed, 20, 2)
        );
        assert!(!dead_dir.exists());
        assert!(!spool.entry_dir("2-20-00000002").join("core.zst").exists());
        assert!(live.dir().exists(), "a live writer's entry is left alone");
    }

    #[test]
    fn slots_are_bounded_and_released_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let a = spool.try_slot(SlotKind::Compress, 2).unwrap();
        let _b = spool.try_slot(SlotKind::Compress, 2).unwrap();
        assert!(spool.try_slot(SlotKind::Compress, 2).is_none());
        assert!(
            spool.try_slot(SlotKind::Handler, 1).is_some(),
            "pools are separate"
        );
        drop(a);
        assert!(spool.try_slot(SlotKind::Compress, 2).is_some());
    }

    #[test]
    fn waiting_for_a_slot_succeeds_when_one_frees_up_and_gives_up_after_the_wait() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let held = spool.try_slot(SlotKind::Handler, 1).unwrap();
        let start = std::time::Instant::now();
        assert!(
            spool
                .wait_slot(SlotKind::Handler, 1, std::time::Duration::from_millis(50))
                .is_none()
        );
        assert!(start.elapsed() >= std::time::Duration::from_millis(50));
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(30));
            drop(held);
        });
        assert!(
            spool
                .wait_slot(SlotKind::Handler, 1, std::time::Duration::from_secs(10))
                .is_some()
        );
        releaser.join().unwrap();
    }
}
