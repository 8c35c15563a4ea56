//! The tail of the crashed container's log is kept beside its core, read from a pod log
//! directory laid out as kubelet's (`<namespace>_<pod>_<uid>/<container>/<n>.log`, CRI format).
//! The directory is the test's own (no kubelet runs here); the resolver is a fixed answer.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use coredump_capture::CrashRecord;
use coredump_capture::spool::Spool;
use coredump_ingest::{IdentityResolver, Ingest, IngestConfig, ResolvedIdentity};
use coredump_store::BlobStore;
use coredump_store::fs_blob::FsBlobStore;

use common::{MemorySink, publish_at};

const POD_UID: &str = "0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11";

struct Fixed;

#[async_trait]
impl IdentityResolver for Fixed {
    async fn resolve(&self, _record: &CrashRecord) -> Option<ResolvedIdentity> {
        Some(ResolvedIdentity {
            namespace: "team-a".into(),
            pod_name: "web-0".into(),
            container_name: Some("app".into()),
            image: None,
        })
    }
}

#[tokio::test]
async fn the_containers_last_log_lines_are_kept_beside_its_core() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("pods");
    let dir = logs.join(format!("team-a_web-0_{POD_UID}/app"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("0.log"),
        "2024-05-01T10:00:00Z stdout F starting\n2024-05-01T10:00:01Z stderr F fatal: bad config\n",
    )
    .unwrap();
    let spool = Spool::open(tmp.path().join("spool")).unwrap();
    let blobs = Arc::new(FsBlobStore::new(tmp.path().join("blobs")).unwrap());
    let sink = Arc::new(MemorySink::default());
    let ingest = Ingest::new(
        spool.clone(),
        blobs.clone(),
        sink.clone(),
        Arc::new(Fixed),
        IngestConfig {
            pod_log_dir: Some(logs),
            ..IngestConfig::default()
        },
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    publish_at(&spool, &[7u8; 10_000], Some(now));
    ingest.ingest_ready().await.unwrap();
    let name = sink.objects.lock().unwrap()[0].metadata.name.clone();
    let files: Vec<String> = blobs
        .list("team-a", POD_UID, None)
        .unwrap()
        .into_iter()
        .map(|b| b.path.file)
        .collect();
    let log = format!("{name}.log");
    assert!(files.contains(&log), "{files:?}");
    let path = coredump_store::BlobPath::new("team-a", POD_UID, "app", &log).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut blobs.open(&path).unwrap(), &mut text).unwrap();
    assert_eq!(text, "starting\nfatal: bad config\n");
}
