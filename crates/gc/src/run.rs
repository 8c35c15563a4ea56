//! The `gc` role: one collection every `--interval` until SIGTERM (or one with `--once`). A
//! collection reads the blob volume and our objects first and the pods and namespaces last (so
//! every core it saw belonged to a pod that existed before the pod list was taken), computes
//! the [`crate::plan`], carries it out (or logs it with `--dry-run`) and saves the state.
//!
//! Safety: if any list fails, in particular the pods or namespaces, the cycle deletes nothing
//! and leaves the state as it was.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use coredump_common::BackendKind;
use coredump_common::health;
use coredump_common::kube_client::{self, Credentials, Fallback};
use coredump_store::BlobStore;
use coredump_store::fs_blob::FsBlobStore;
use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::args::Args;
use crate::cluster;
use crate::inventory;
use crate::metrics::Metrics;
use crate::plan::{GoneState, Observed, Plan, Rules, plan};
use crate::state;

/// Runs the GC until SIGTERM or SIGINT (or for one collection with `--once`); the binary
/// sets up logging first.
pub fn run(args: Args) -> anyhow::Result<()> {
    coredump_common::runtime()?.block_on(run_async(args))
}

/// What the HTTP endpoint reports on: ready after the first complete collection.
struct GcHealth {
    metrics: Arc<Metrics>,
    collected: Arc<AtomicBool>,
}

impl health::Health for GcHealth {
    fn metrics(&self) -> String {
        self.metrics.encode()
    }

    fn ready(&self) -> Result<(), String> {
        if self.collected.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err("no complete collection yet".into())
        }
    }
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    let client = kube_client::client(Credentials::new(
        args.kubeconfig.as_deref(),
        Fallback::Infer,
    ))
    .await?;
    let store = args.blob_store.open_or_else(|| match args.backend_kind {
        BackendKind::Local => anyhow::Ok(Arc::new(
            FsBlobStore::new(args.local_path.clone())
                .with_context(|| format!("opening --local-path {}", args.local_path.display()))?,
        ) as Arc<dyn BlobStore>),
    })?;
    let state_path = args.state_path();
    let mut gone = match state::load(&state_path) {
        Ok(s) => s,
        // Starting over only delays collection; it never deletes early.
        Err(e) => {
            tracing::warn!(error = %e, "ignoring an unreadable GC state");
            GoneState::default()
        }
    };
    let metrics = Arc::new(Metrics::new());
    let collected = Arc::new(AtomicBool::new(false));
    let stop = CancellationToken::new();
    let gc_health = Arc::new(GcHealth {
        metrics: Arc::clone(&metrics),
        collected: Arc::clone(&collected),
    });
    let (_, http) = health::serve(args.metrics_bind_address, gc_health, stop.clone())
        .await
        .with_context(|| format!("binding {}", args.metrics_bind_address))?;
    let signal = coredump_common::shutdown_signal("stop the GC with SIGKILL");
    tokio::pin!(signal);
    // After a failed collection (typically at install, before our API is Available) the next
    // try comes sooner than `--interval`: 2 s, doubling up to it. Readiness waits on a success.
    let mut retry = RETRY_FIRST;
    loop {
        let wait = match collect(&client, &store, &args, &gone, &metrics).await {
            Ok(next) => {
                if !args.dry_run
                    && let Err(e) = state::store(&state_path, &next)
                {
                    tracing::error!(error = %e, "saving the GC state failed");
                }
                gone = next;
                collected.store(true, Ordering::Release);
                retry = RETRY_FIRST;
                args.interval
            }
            Err(e) => {
                let wait = retry.min(args.interval);
                tracing::warn!(error = %e, retry_in = ?wait, "collection skipped; nothing deleted");
                retry = retry.saturating_mul(2);
                wait
            }
        };
        if args.once {
            break;
        }
        tokio::select! {
            _ = &mut signal => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    stop.cancel();
    let _ = http.await;
    Ok(())
}

/// The first retry after a failed collection.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(2);

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// One collection; returns the next state, or why nothing was done.
async fn collect(
    client: &Client,
    store: &Arc<dyn BlobStore>,
    args: &Args,
    gone: &GoneState,
    metrics: &Metrics,
) -> anyhow::Result<GoneState> {
    let root = args.local_path.clone();
    let scanned = {
        let store = Arc::clone(store);
        tokio::task::spawn_blocking(move || inventory::scan(&root, store.as_ref()))
            .await
            .context("blob scan task")?
    };
    let inventory::Inventory {
        pods: blobs,
        binaries,
    } = match scanned {
        Ok(b) => b,
        Err(e) => {
            metrics.cycle("error");
            return Err(e).context("scanning the blob volume");
        }
    };
    let objects = tokio::try_join!(cluster::coredumps(client), cluster::endpoints(client));
    let (coredumps, endpoints) = match objects {
        Ok(o) => o,
        Err(e) => {
            metrics.cycle("error");
            return Err(e).context("listing Coredumps and CoredumpEndpoints");
        }
    };
    let live = tokio::try_join!(cluster::live_pods(client), cluster::live_namespaces(client));
    let (live_pods, live_namespaces): (HashSet<String>, HashSet<String>) = match live {
        Ok(l) => l,
        Err(e) => {
            metrics.cycle("api_unreachable");
            return Err(e).context("listing pods and namespaces (the pod API is unreachable)");
        }
    };
    let now = now_unix();
    let rules = Rules {
        threshold: args.gc_threshold,
        max_age: args.max_age.filter(|age| !age.is_zero()),
        max_namespace_bytes: args.max_namespace_size,
    };
    let planned = plan(
        Observed {
            now,
            live_pods: &live_pods,
            live_namespaces: &live_namespaces,
            blobs: &blobs,
            coredumps: &coredumps,
            endpoints: &endpoints,
            binaries: &binaries,
        },
        gone,
        rules,
    );
    execute(client, store, &planned, args.dry_run, metrics).await;
    metrics.cycle("ok");
    metrics.succeeded(
        now,
        planned.state.pods.len(),
        planned.state.namespaces.len(),
    );
    Ok(planned.state)
}

/// Carries out a plan: objects through the API first, then the blobs, skipping the blobs of a
/// pod whose objects could not be deleted (they would point at nothing until the next cycle).
async fn execute(
    client: &Client,
    store: &Arc<dyn BlobStore>,
    plan: &Plan,
    dry_run: bool,
    metrics: &Metrics,
) {
    let verb = if dry_run { "would delete" } else { "deleting" };
    let mut failed_pods: HashSet<(String, String)> = HashSet::new();
    let mut failed_objects: HashSet<(String, String)> = HashSet::new();
    for (e, reason) in &plan.endpoints {
        tracing::info!(namespace = %e.namespace, endpoint = %e.name, pod_uid = %e.pod_uid, reason = reason.as_str(), "{verb} CoredumpEndpoint");
        if dry_run {
            continue;
        }
        match cluster::delete(client, true, &e.namespace, &e.name).await {
            Ok(()) => metrics.deleted("endpoint", *reason, 0),
            Err(err) => {
                tracing::warn!(error = %err, "delete failed; retried next cycle");
                failed_pods.insert((e.namespace.clone(), e.pod_uid.clone()));
            }
        }
    }
    for (c, reason) in &plan.coredumps {
        tracing::info!(namespace = %c.namespace, coredump = %c.name, reason = reason.as_str(), "{verb} Coredump");
        if dry_run {
            continue;
        }
        match cluster::delete(client, false, &c.namespace, &c.name).await {
            Ok(()) => metrics.deleted("coredump", *reason, 0),
            Err(err) => {
                tracing::warn!(error = %err, "delete failed; retried next cycle");
                if let Some(uid) = &c.pod_uid {
                    failed_pods.insert((c.namespace.clone(), uid.clone()));
                }
                failed_objects.insert((c.namespace.clone(), c.name.clone()));
            }
        }
    }
    for (ns, pod, bytes, reason) in &plan.pod_dirs {
        tracing::info!(namespace = %ns, pod = %pod, bytes, reason = reason.as_str(), "{verb} the pod's cores");
        if dry_run || failed_pods.contains(&(ns.clone(), pod.clone())) {
            continue;
        }
        let (store, ns2, pod2) = (Arc::clone(store), ns.clone(), pod.clone());
        match tokio::task::spawn_blocking(move || store.delete_pod(&ns2, &pod2)).await {
            Ok(Ok(_)) => metrics.deleted("pod_dir", *reason, *bytes),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "deleting blobs failed; retried next cycle")
            }
            Err(err) => tracing::warn!(error = %err, "blob delete task failed"),
        }
    }
    for (paths, bytes, reason) in &plan.binaries {
        let Some(first) = paths.first() else { continue };
        tracing::info!(namespace = %first.namespace, build_id = %first.container, bytes, reason = reason.as_str(), "{verb} the binaries of a build ID");
        if dry_run {
            continue;
        }
        let (store, paths2) = (Arc::clone(store), paths.clone());
        let deleted =
            tokio::task::spawn_blocking(move || paths2.iter().try_for_each(|p| store.delete(p)))
                .await;
        match deleted {
            Ok(Ok(())) => metrics.deleted("binary", *reason, *bytes),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "deleting binaries failed; retried next cycle")
            }
            Err(err) => tracing::warn!(error = %err, "blob delete task failed"),
        }
    }
    for (path, bytes, reason) in &plan.files {
        let owner = path
            .file
            .strip_suffix(".core.zst")
            .or_else(|| path.file.strip_suffix(".json"))
            .unwrap_or(&path.file);
        tracing::info!(file = %path.relative().display(), bytes, reason = reason.as_str(), "{verb} blob");
        if dry_run || failed_objects.contains(&(path.namespace.clone(), owner.to_string())) {
            continue;
        }
        let (store, p) = (Arc::clone(store), path.clone());
        match tokio::task::spawn_blocking(move || store.delete(&p)).await {
            Ok(Ok(())) => metrics.deleted("file", *reason, *bytes),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "deleting blob failed; retried next cycle")
            }
            Err(err) => tracing::warn!(error = %err, "blob delete task failed"),
        }
    }
}

#[cfg(test)]
mod tests;
