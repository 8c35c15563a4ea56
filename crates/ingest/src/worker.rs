//! The ingest loop: one published spool entry at a time, idempotent at every step.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use coredump_api::Coredump;
use coredump_capture::record::{CORE_RAW, CORE_ZST, META_JSON};
use coredump_capture::spool::Spool;
use coredump_capture::{CaptureError, CoreEncoding, CrashRecord};
use coredump_store::{BlobPath, BlobStore, StoreError};

use crate::backoff::EntryBackoff;
use crate::naming::{core_file, record_file};
use crate::object::{self, IdentityResolver};
use crate::policy::{
    CoreDecision, CorePolicy, KeepAll, PolicyInput, RESOLUTION_JSON, Resolution, load_resolution,
};

/// Settings of the ingest.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// This node's name, recorded in every `Coredump`.
    pub node_name: String,
    /// Namespace for crashes whose pod namespace is unknown (host processes in standalone).
    pub host_namespace: String,
    /// zstd level for cores the crash path left raw.
    pub zstd_level: i32,
    /// How often the spool is scanned.
    pub poll_interval: Duration,
    /// How long after the crash a core waits in the spool for room on a full blob volume, or
    /// for an unreachable or refusing blob store, before the crash is recorded without it
    /// (state `Failed`, reason `StoreUnavailable`), freeing the node's disk.
    pub max_blob_wait: Duration,
    /// kubelet's pod log directory (`/var/log/pods`), for the tail of a crashed container's
    /// log kept beside its core; `None` keeps no logs (standalone: no pods).
    pub pod_log_dir: Option<PathBuf>,
    /// Free bytes a core may not take from the blob volume (when the store can tell): below
    /// it the volume counts as full, so cores wait in the spool as on a full volume. The blob
    /// volume is often the node's disk too.
    pub min_free_blob_bytes: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            node_name: rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
            host_namespace: "host".into(),
            zstd_level: 1,
            poll_interval: Duration::from_millis(100),
            max_blob_wait: Duration::from_secs(600),
            pod_log_dir: None,
            min_free_blob_bytes: 0,
        }
    }
}

/// Why a sink refused a `Coredump`.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The object exists already (a retried ingest): success for the ingest.
    #[error("coredump {0} already exists")]
    AlreadyExists(String),
    /// Anything else; the entry stays in the spool and is retried.
    #[error("recording coredump {name} failed: {message}")]
    Failed {
        /// Object name.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// Where `Coredump` objects go.
#[async_trait]
pub trait CoredumpSink: Send + Sync + 'static {
    /// Records one crash.
    async fn record(&self, coredump: Coredump) -> Result<(), SinkError>;
}

/// Failure to ingest one spool entry; the entry stays and is retried (or quarantined when it
/// can never succeed).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Reading or rewriting the spool entry failed.
    #[error("spool entry {id}: {source}")]
    Spool {
        /// Entry id.
        id: String,
        /// Cause.
        #[source]
        source: CaptureError,
    },
    /// Storing a blob failed.
    #[error("storing blob for spool entry {id}: {source}")]
    Blob {
        /// Entry id.
        id: String,
        /// Cause.
        #[source]
        source: StoreError,
    },
    /// The sink refused the object.
    #[error("spool entry {id}: {source}")]
    Sink {
        /// Entry id.
        id: String,
        /// Cause.
        #[source]
        source: SinkError,
    },
    /// Compressing a raw core failed.
    #[error("compressing {path}: {source}")]
    Compress {
        /// The raw core.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// The ingest of one spool.
pub struct Ingest {
    spool: Spool,
    blobs: Arc<dyn BlobStore>,
    sink: Arc<dyn CoredumpSink>,
    resolver: Arc<dyn IdentityResolver>,
    policy: Arc<dyn CorePolicy>,
    config: IngestConfig,
}

impl Ingest {
    /// An ingest from `spool` into `blobs` and `sink`.
    pub fn new(
        spool: Spool,
        blobs: Arc<dyn BlobStore>,
        sink: Arc<dyn CoredumpSink>,
        resolver: Arc<dyn IdentityResolver>,
        config: IngestConfig,
    ) -> Ingest {
        Ingest {
            spool,
            blobs,
            sink,
            resolver,
            policy: Arc::new(KeepAll),
            config,
        }
    }

    /// Lets `policy` decide, per crash, whether its core is kept (the default keeps all).
    pub fn with_policy(mut self, policy: Arc<dyn CorePolicy>) -> Ingest {
        self.policy = policy;
        self
    }

    /// Runs until `shutdown` resolves: reaps entries of dead writers, ingests ready entries,
    /// sleeps `poll_interval`. A failed entry is retried after a pause that doubles with each
    /// failure ([`crate::backoff`]), without holding back the others.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut passes: u64 = 0;
        let mut backoff = EntryBackoff::default();
        loop {
            if passes.is_multiple_of(50) {
                match self.spool.reap_abandoned() {
                    Ok(ids) if !ids.is_empty() => {
                        tracing::warn!(?ids, "recorded captures whose writer died as Failed")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "reaping abandoned spool entries"),
                }
            }
            passes += 1;
            // Room for the records of crashes on a disk that fills up (the crash path deletes
            // the reserve to write them), taken back once there is space again.
            if let Err(e) = self.spool.keep_reserve(
                coredump_capture::spool::RESERVE_BYTES,
                coredump_capture::spool::RESERVE_BYTES,
            ) && passes.is_multiple_of(50)
            {
                tracing::warn!(error = %e, "keeping the spool's reserve");
            }
            if let Err(e) = self.ingest_pass(Some(&mut backoff)).await {
                tracing::error!(error = %e, "ingest pass failed");
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    /// Ingests every ready entry once, failed ones included; returns the objects recorded. One
    /// bad entry does not stop the others.
    pub async fn ingest_ready(&self) -> Result<Vec<Coredump>, IngestError> {
        self.ingest_pass(None).await
    }

    /// One pass over the ready entries, skipping those whose retry pause (in `backoff`, if
    /// given) has not elapsed.
    async fn ingest_pass(
        &self,
        mut backoff: Option<&mut EntryBackoff>,
    ) -> Result<Vec<Coredump>, IngestError> {
        let ids = self.spool.ready().map_err(|source| IngestError::Spool {
            id: String::new(),
            source,
        })?;
        if let Some(b) = backoff.as_deref_mut() {
            b.retain_present(&ids);
        }
        let mut done = Vec::new();
        for id in &ids {
            // tokio's clock, so a test with paused time drives the schedule.
            let now = tokio::time::Instant::now().into_std();
            if backoff.as_deref().is_some_and(|b| !b.due(id, now)) {
                continue;
            }
            match self.ingest_one(id).await {
                Ok(obj) => {
                    if let Some(b) = backoff.as_deref_mut() {
                        b.succeeded(id);
                    }
                    done.push(obj);
                }
                Err(IngestError::Spool {
                    source: source @ CaptureError::Config { .. },
                    ..
                }) => {
                    tracing::error!(%id, error = %source, "unreadable spool entry; quarantined");
                    self.quarantine(id);
                }
                Err(e) => match backoff.as_deref_mut().map(|b| b.failed(id, now)) {
                    Some(f) if f.worth_logging() => tracing::warn!(
                        %id, error = %e, failures = f.failures, retry_in = ?f.pause,
                        "ingest failed; will retry"
                    ),
                    Some(_) => {}
                    None => tracing::warn!(%id, error = %e, "ingest failed; will retry"),
                },
            }
        }
        Ok(done)
    }

    /// Ingests one published entry and removes it from the spool.
    pub async fn ingest_one(&self, id: &str) -> Result<Coredump, IngestError> {
        let spool_err = |source| IngestError::Spool {
            id: id.to_string(),
            source,
        };
        let dir = self.spool.entry_dir(id);
        let mut record = self.spool.record(id).map_err(spool_err)?;
        if record.encoding == CoreEncoding::Raw {
            record = self.compress_raw(&dir, record).await?;
        } else {
            let _ = std::fs::remove_file(dir.join(CORE_RAW));
        }
        let spooled_core = record.state.has_core() && record.encoding == CoreEncoding::Zstd;
        let resolution = self.resolution(id, &dir, &record).await?;
        if resolution.decision != CoreDecision::Keep {
            // The core is not stored; it goes with the spool entry once the crash is recorded.
            record.encoding = CoreEncoding::None;
            record.sha256.clear();
        }
        let identity = resolution.identity;
        let placement = object::place(&record, identity.as_ref(), &self.config.host_namespace);
        let blob = |file: String| {
            BlobPath::new(
                &placement.namespace,
                &placement.pod_segment,
                &placement.container_segment,
                &file,
            )
            .map_err(|source| IngestError::Blob {
                id: id.to_string(),
                source,
            })
        };
        let has_core = record.state.has_core() && record.encoding == CoreEncoding::Zstd;
        let facts = if has_core {
            let zst = dir.join(CORE_ZST);
            tokio::task::spawn_blocking(move || crate::facts::read_facts(&zst))
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        let outcome = if spooled_core {
            self.analyze(&dir, &record, &placement.namespace, has_core)
                .await
        } else {
            None
        };
        let mut gave_up = None;
        let stored = if has_core {
            let path = blob(core_file(&placement.name))?;
            match self.put(id, &path, &dir.join(CORE_ZST)).await {
                Ok(size) => Some((path.relative().to_string_lossy().into_owned(), size)),
                // A full volume, an unreachable or refusing bucket: the core waits in the spool
                // (the next pass retries) until the wait limit, then the crash is recorded
                // without it, so it is never invisible and the node's disk is freed.
                Err(IngestError::Blob { source, .. }) if self.waited_too_long(&record) => {
                    let wait = self.config.max_blob_wait.as_secs();
                    let reason = if source.is_storage_full() {
                        format!(
                            "core not kept: the blob volume stayed full for {wait} s after the crash ({source})"
                        )
                    } else {
                        format!(
                            "core not kept: the blob store failed for {wait} s after the crash ({source})"
                        )
                    };
                    tracing::error!(%id, %reason, "recording the crash without its core");
                    gave_up = Some(reason);
                    record.encoding = CoreEncoding::None;
                    record.sha256.clear();
                    None
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        if stored.is_some() {
            self.keep_log(id, &dir, &record, identity.as_ref(), &placement)
                .await;
        }
        let mut coredump = object::build(
            &record,
            identity.as_ref(),
            &placement,
            &self.config.node_name,
            stored,
            facts.as_ref(),
        );
        if let Some(outcome) = outcome {
            if let Some(sig) = &outcome.signature {
                coredump
                    .metadata
                    .labels
                    .insert(crate::object::labels::SIGNATURE.into(), sig.clone());
                coredump.status.signature = sig.clone();
            }
            coredump.status.analysis = Some(outcome.analysis);
        }
        if let CoreDecision::Discard {
            state,
            cause,
            reason,
        } = resolution.decision
        {
            coredump.status.state = state;
            coredump.status.reason = cause;
            coredump.status.message = reason;
        }
        if let Some(reason) = &gave_up {
            coredump.status.state = coredump_api::CoredumpState::Failed;
            coredump.status.reason = Some(coredump_api::CoredumpReason::StoreUnavailable);
            coredump.status.message = reason.clone();
        }
        // The JSON record beside the core lets offline tools (`list`, `export`) and disaster
        // recovery work from the blob volume alone.
        // A full disk (spool or blob volume) costs the sidecar, never the crash's record.
        let sidecar = dir.join("coredump.json");
        let json = serde_json::to_vec_pretty(&coredump).map_err(|e| IngestError::Compress {
            path: sidecar.clone(),
            source: e.into(),
        })?;
        let written = match coredump_capture::fsutil::write_atomic(&sidecar, &json) {
            Ok(()) => true,
            Err(e) if e.is_storage_full() => {
                tracing::warn!(%id, error = %e, "the spool is full: no JSON record beside the core");
                false
            }
            Err(e) => return Err(spool_err(e)),
        };
        if written {
            match self
                .put(id, &blob(record_file(&placement.name))?, &sidecar)
                .await
            {
                Ok(_) => {}
                // The record itself is what counts: a full volume, or the store the core was
                // just given up on, costs only the JSON copy beside it.
                Err(IngestError::Blob { source, .. })
                    if source.is_storage_full() || gave_up.is_some() =>
                {
                    tracing::warn!(%id, error = %source, "no JSON record beside the core in the blob store")
                }
                Err(e) => return Err(e),
            }
        }
        match self.sink.record(coredump.clone()).await {
            Ok(()) | Err(SinkError::AlreadyExists(_)) => {}
            Err(source) => {
                return Err(IngestError::Sink {
                    id: id.to_string(),
                    source,
                });
            }
        }
        self.spool.remove(id).map_err(spool_err)?;
        Ok(coredump)
    }

    /// The entry's frozen identity and core decision: read back on a retry, else resolved,
    /// decided and written into the entry before anything is stored.
    async fn resolution(
        &self,
        id: &str,
        dir: &Path,
        record: &CrashRecord,
    ) -> Result<Resolution, IngestError> {
        if let Some(frozen) = load_resolution(dir) {
            return Ok(frozen);
        }
        let identity = self.resolver.resolve(record).await;
        let placement = object::place(record, identity.as_ref(), &self.config.host_namespace);
        let core_bytes = (record.state.has_core() && record.encoding == CoreEncoding::Zstd)
            .then_some(record.stored_size);
        let decision = self
            .policy
            .decide(PolicyInput {
                record,
                identity: identity.as_ref(),
                placement: &placement,
                core_bytes,
            })
            .await;
        let resolution = Resolution { identity, decision };
        let path = dir.join(RESOLUTION_JSON);
        let json = serde_json::to_vec_pretty(&resolution).map_err(|e| IngestError::Compress {
            path: path.clone(),
            source: e.into(),
        })?;
        match coredump_capture::fsutil::write_atomic(&path, &json) {
            Ok(()) => {}
            // Not frozen: a retry resolves again. A full spool must not hold the record back.
            Err(e) if e.is_storage_full() => {
                tracing::warn!(%id, error = %e, "the spool is full: resolution not frozen")
            }
            Err(source) => {
                return Err(IngestError::Spool {
                    id: id.to_string(),
                    source,
                });
            }
        }
        Ok(resolution)
    }

    /// Stores the entry's binaries by build ID (only when its core is kept: a namespace over
    /// its quota gets no binaries either) and analyses the core, off the async threads. A
    /// core that cannot be analysed is recorded without an analysis.
    async fn analyze(
        &self,
        dir: &Path,
        record: &CrashRecord,
        namespace: &str,
        store_binaries: bool,
    ) -> Option<coredump_analysis::Outcome> {
        let dir = dir.to_path_buf();
        let spool_dir = self.spool.dir().to_path_buf();
        let pod = record
            .pod
            .as_ref()
            .map(|p| p.pod_uid.clone())
            .unwrap_or_else(|| "host".to_owned());
        let namespace = namespace.to_owned();
        let size = record.kept_size;
        let blobs = Arc::clone(&self.blobs);
        let id = record.id.clone();
        let started = std::time::Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            crate::analyze::run(
                &dir,
                &spool_dir,
                &pod,
                &namespace,
                size,
                blobs.as_ref(),
                store_binaries,
            )
        })
        .await
        .ok()
        .flatten();
        match &outcome {
            Some(o) => tracing::info!(
                %id, signature = o.signature.as_deref().unwrap_or(""),
                complete = o.analysis.complete, ms = started.elapsed().as_millis() as u64,
                "analysed core"
            ),
            None => tracing::warn!(%id, "core could not be analysed"),
        }
        outcome
    }

    /// Stores the tail of the crashed container's log beside its core (best effort: a crash
    /// without a readable log is recorded all the same).
    async fn keep_log(
        &self,
        id: &str,
        dir: &Path,
        record: &CrashRecord,
        identity: Option<&object::ResolvedIdentity>,
        placement: &object::Placement,
    ) {
        let (Some(root), Some(identity), Some(pod)) =
            (&self.config.pod_log_dir, identity, record.pod.as_ref())
        else {
            return;
        };
        let Some(container) = identity.container_name.clone() else {
            return;
        };
        let (root, ns, name, uid, time) = (
            root.clone(),
            identity.namespace.clone(),
            identity.pod_name.clone(),
            pod.pod_uid.clone(),
            record.time,
        );
        let tail = tokio::task::spawn_blocking(move || {
            crate::logs::tail(&root, &ns, &name, &uid, &container, time)
        })
        .await
        .ok()
        .flatten();
        let Some(tail) = tail else { return };
        let local = dir.join("container.log");
        if coredump_capture::fsutil::write_atomic(&local, tail.as_bytes()).is_err() {
            return;
        }
        let Ok(path) = BlobPath::new(
            &placement.namespace,
            &placement.pod_segment,
            &placement.container_segment,
            &crate::naming::log_file(&placement.name),
        ) else {
            return;
        };
        if let Err(e) = self.put(id, &path, &local).await {
            tracing::warn!(%id, error = %e, "the container's log tail is not kept");
        }
    }

    /// Whether the crash happened longer than `max_blob_wait` ago.
    fn waited_too_long(&self, record: &CrashRecord) -> bool {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let waited = u64::try_from(now.saturating_sub(record.time)).unwrap_or(0);
        waited >= self.config.max_blob_wait.as_secs()
    }

    async fn put(&self, id: &str, path: &BlobPath, source: &Path) -> Result<u64, IngestError> {
        let blobs = Arc::clone(&self.blobs);
        let (path, source) = (path.clone(), source.to_path_buf());
        let floor = self.config.min_free_blob_bytes;
        // The spool's files are ours to give away: the entry is removed once recorded, and a
        // retry rewrites them by rename, never in place.
        tokio::task::spawn_blocking(move || {
            if floor > 0
                && let Some((needed, free)) = blobs.room_for(&source)
                && free < floor.saturating_add(needed)
            {
                return Err(StoreError::Io {
                    path: path.relative(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::StorageFull,
                        format!(
                            "the blob volume is below its free-space floor: {free} bytes free, \
                             this blob needs {needed}, floor {floor}"
                        ),
                    ),
                });
            }
            blobs.adopt_file(&path, &source)
        })
        .await
        .map_err(|e| IngestError::Blob {
            id: id.to_string(),
            source: StoreError::Invalid {
                what: "blob writer task",
                value: e.to_string(),
            },
        })?
        .map_err(|source| IngestError::Blob {
            id: id.to_string(),
            source,
        })
    }

    /// Compresses a raw core the crash path left (over its compression bound), then rewrites
    /// the record. Safe to repeat after a crash at any point.
    async fn compress_raw(
        &self,
        dir: &Path,
        mut record: CrashRecord,
    ) -> Result<CrashRecord, IngestError> {
        let raw = dir.join(CORE_RAW);
        let zst = dir.join(CORE_ZST);
        let level = self.config.zstd_level;
        let stored = {
            let (raw_in, zst_out) = (raw.clone(), zst.clone());
            tokio::task::spawn_blocking(move || compress_file(&raw_in, &zst_out, level))
                .await
                .map_err(|e| IngestError::Compress {
                    path: raw.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?
                .map_err(|source| IngestError::Compress {
                    path: raw.clone(),
                    source,
                })?
        };
        record.encoding = CoreEncoding::Zstd;
        record.stored_size = stored;
        let json = serde_json::to_vec_pretty(&record).map_err(|e| IngestError::Compress {
            path: dir.join(META_JSON),
            source: e.into(),
        })?;
        coredump_capture::fsutil::write_atomic(&dir.join(META_JSON), &json).map_err(|source| {
            IngestError::Spool {
                id: record.id.clone(),
                source,
            }
        })?;
        let _ = std::fs::remove_file(&raw);
        Ok(record)
    }

    fn quarantine(&self, id: &str) {
        let from = self.spool.entry_dir(id);
        let to = self.spool.dir().join(format!(".bad-{id}"));
        if let Err(e) = std::fs::rename(&from, &to) {
            tracing::error!(%id, error = %e, "cannot quarantine spool entry");
        }
    }
}

/// Compresses `raw` into `zst` (via a temp file and rename); returns the compressed size.
fn compress_file(raw: &Path, zst: &Path, level: i32) -> std::io::Result<u64> {
    let tmp = zst.with_extension("zst.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut input = std::fs::File::open(raw)?;
    let output = std::fs::File::create(&tmp)?;
    // Seekable zstd, as the crash path writes it (see coredump_seekable).
    let mut encoder = coredump_seekable::SeekableWriter::new(output, level, 0)?;
    std::io::copy(&mut input, &mut encoder)?;
    let output = encoder.finish()?;
    output.sync_all()?;
    let size = output.metadata()?.len();
    std::fs::rename(&tmp, zst)?;
    Ok(size)
}
