//! Shared by the ingest's integration tests: a sink that keeps objects in memory (and can be
//! told to fail), and publishing a spool entry the way the crash path does.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use coredump_api::Coredump;
use coredump_capture::CrashRecord;
use coredump_capture::spool::Spool;
use coredump_ingest::{CoredumpSink, SinkError};

/// Records objects; fails the first `fail_first` calls; counts calls.
#[derive(Default)]
pub struct MemorySink {
    pub objects: Mutex<Vec<Coredump>>,
    pub fail_first: AtomicUsize,
    pub calls: AtomicUsize,
}

#[async_trait]
impl CoredumpSink for MemorySink {
    async fn record(&self, coredump: Coredump) -> Result<(), SinkError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SinkError::Failed {
                name: coredump.metadata.name,
                message: "API unreachable".into(),
            });
        }
        self.objects.lock().unwrap().push(coredump);
        Ok(())
    }
}

/// Publishes one entry with a zstd core of `core` into `spool`; returns its id.
pub fn publish(spool: &Spool, core: &[u8]) -> String {
    publish_at(spool, core, None)
}

/// [`publish`] of a crash at `time` (Unix seconds; default: the recorded sample's time).
pub fn publish_at(spool: &Spool, core: &[u8], time: Option<i64>) -> String {
    let mut record: CrashRecord = serde_json::from_str(include_str!("../data/meta.json")).unwrap();
    if let Some(time) = time {
        record.time = time;
    }
    record.id = Spool::new_id(record.time, record.pid);
    let entry = spool.begin(&record.id).unwrap();
    let zst = zstd::encode_all(core, 1).unwrap();
    std::fs::write(entry.dir().join("core.zst"), &zst).unwrap();
    record.raw_size = core.len() as u64;
    record.kept_size = core.len() as u64;
    record.stored_size = zst.len() as u64;
    spool.publish(entry, &record).unwrap();
    record.id
}
