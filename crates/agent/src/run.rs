//! The `agent` role from start to SIGTERM: connect to the API, install the handler, take over
//! `core_pattern` (repairing what a killed agent left), start the informers, the metrics
//! endpoint and the ingest; on SIGTERM or SIGINT put the previous `core_pattern` back first,
//! then let the ingest finish its pass.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use coredump_capture::kernel::{KernelPaths, PatternGuard, PatternLock, read_setting};
use coredump_capture::spool::Spool;
use coredump_common::BackendKind;
use coredump_common::health;
use coredump_common::kube_client::{self, Credentials, Fallback};
use coredump_ingest::{Ingest, IngestConfig};
use coredump_store::BlobStore;
use coredump_store::fs_blob::FsBlobStore;
use tokio_util::sync::CancellationToken;

use crate::args::Args;
use crate::http::AgentHealth;
use crate::install::{HostLayout, forward_target, install_binary, write_config};
use crate::metrics::Metrics;
use crate::policy::AgentPolicy;
use crate::resolver::KubeResolver;
use crate::retry::RetryPolicy;
use crate::sink::KubeSink;

/// Runs the agent until SIGTERM or SIGINT (the binary sets up logging first).
pub fn run(args: Args) -> anyhow::Result<()> {
    coredump_common::runtime()?.block_on(run_async(args))
}

/// Installs the handler and takes over the kernel settings.
/// The kernel-settings lock comes first: a second agent on the same host directory (a second
/// install, one started by hand) is refused before it replaces the live agent's handler binary
/// or rewrites its `handler.json` with its own flags.
fn capture(args: &Args, layout: &HostLayout) -> anyhow::Result<PatternGuard> {
    let kernel = KernelPaths {
        core_pattern: args.proc_sys_kernel.join("core_pattern"),
        core_pipe_limit: args.proc_sys_kernel.join("core_pipe_limit"),
        run_dir: layout.run.clone(),
    };
    let owner = format!("coredump-detector agent ({})", layout.root.display());
    let lock = PatternLock::acquire(kernel.clone(), &owner)
        .context("another agent runs on this node's host directory")?;
    layout.create()?;
    let me = std::env::current_exe().context("locating this binary")?;
    install_binary(&me, layout)?;
    // The config must exist before the pattern names the handler. Our best guess of the
    // previous pattern now is the current one (wrong only after a killed agent, and then it
    // names our own handler, which forward_target refuses); the guard knows for sure below.
    let current = read_setting(&kernel.core_pattern)?;
    let min_free = args
        .capture
        .floor_bytes(args.capture.min_free, &layout.spool, true);
    let mut config = args.capture.handler_config(
        layout.spool.clone(),
        args.non_pod,
        forward_target(&current, &layout.handler_bin),
        min_free,
    );
    config.limits = Some(args.limits.crash_limits(layout.limits_dir()));
    write_config(layout, &config)?;
    let guard = lock.install(&layout.pattern(), args.capture.pipe_limit)?;
    config.forward_pattern = forward_target(&guard.record().previous_pattern, &layout.handler_bin);
    write_config(layout, &config)?;
    tracing::info!(
        core_pattern = %guard.record().installed_pattern,
        previous = %guard.record().previous_pattern,
        non_pod = ?args.non_pod,
        forward_to = ?config.forward_pattern,
        min_free_bytes = config.min_free_bytes,
        kubelet_thresholds = ?args.capture.kubelet_config.thresholds(Path::new("/proc")),
        "capturing crashes"
    );
    Ok(guard)
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    let client = kube_client::client(Credentials::new(
        args.kubeconfig.as_deref(),
        Fallback::Infer,
    ))
    .await?;
    let blobs =
        args.blob_store.open_or_else(|| match args.backend_kind {
            BackendKind::Local => {
                let open = || {
                    let store = FsBlobStore::new(args.local_path.clone())?;
                    match args.blob_owner {
                        Some(owner) => store.with_owner(owner),
                        None => Ok(store),
                    }
                };
                anyhow::Ok(Arc::new(open().with_context(|| {
                    format!("opening --local-path {}", args.local_path.display())
                })?) as Arc<dyn BlobStore>)
            }
        })?;
    let root = std::path::absolute(&args.host_dir)
        .with_context(|| format!("resolving {}", args.host_dir.display()))?;
    let layout = HostLayout::new(&root);
    let guard = capture(&args, &layout)?;
    let capturing = Arc::new(AtomicBool::new(true));

    let stop = CancellationToken::new();
    let metrics = Arc::new(Metrics::new());
    let caches = crate::informer::start(client.clone(), &args.node_name, stop.clone());
    let health = Arc::new(AgentHealth {
        metrics: Arc::clone(&metrics),
        caches: caches.clone(),
        capturing: Arc::clone(&capturing),
    });
    let (_, http_task) = health::serve(args.metrics_bind_address, health, stop.clone())
        .await
        .with_context(|| format!("binding {}", args.metrics_bind_address))?;

    let retry = RetryPolicy {
        grace: Duration::from_millis(args.resolve_grace_ms),
        max_wait: Duration::from_millis(args.resolve_max_wait_ms),
        ..RetryPolicy::default()
    };
    let ingest = Ingest::new(
        Spool::open(&layout.spool)?,
        blobs.clone(),
        Arc::new(KubeSink::new(
            client.clone(),
            args.node_name.clone(),
            Arc::clone(&metrics),
        )),
        Arc::new(KubeResolver::new(caches.clone(), retry)),
        IngestConfig {
            node_name: args.node_name.clone(),
            host_namespace: args.host_namespace.clone(),
            zstd_level: args.capture.zstd_level,
            poll_interval: Duration::from_millis(args.spool_poll_ms),
            max_blob_wait: Duration::from_secs(args.max_blob_wait_secs),
            pod_log_dir: Some(args.pod_log_dir.clone()),
            min_free_blob_bytes: args.capture.floor_bytes(
                args.min_free_blobs,
                &args.local_path,
                true,
            ),
        },
    )
    .with_policy(Arc::new(AgentPolicy::new(
        caches.clone(),
        blobs.clone(),
        args.ns_disk_quota,
    )));
    let limits = crate::limits::LimitsLoop {
        limits: args.limits.crash_limits(layout.limits_dir()),
        spool: Spool::open(&layout.spool)?,
        caches,
        interval: Duration::from_secs(args.limits.limits_interval_secs),
        quiet: Duration::from_secs(args.limits.suppressed_quiet_secs),
        max_delay: Duration::from_secs(args.limits.suppressed_max_secs),
    };
    let limits_task = tokio::spawn(limits.run(stop.clone()));

    let on_signal = async {
        coredump_common::shutdown_signal("the next agent takes core_pattern over").await;
        // Decided before anything else: a restart leaves the kernel to the pipe handler (it
        // spools until the next agent), an uninstall stops the kernel from calling a handler
        // whose install is going away.
        let stopping =
            crate::handover::why_stopping(&client, &args.pod_namespace, args.pod_name.as_deref())
                .await;
        let previous = guard.record().previous_pattern.clone();
        let mut guard = guard;
        let result = match &stopping {
            crate::handover::Stopping::Restart => {
                let handed = guard.hand_over(&layout.pattern());
                match &handed {
                    Ok(()) => tracing::info!(
                        core_pattern = %layout.pattern(),
                        "restarting: left core_pattern to the pipe handler for the next agent"
                    ),
                    Err(e) => tracing::error!(error = %e, "handing core_pattern over failed"),
                }
                handed
            }
            crate::handover::Stopping::Uninstall(reason) => {
                let restored = guard.restore();
                match &restored {
                    Ok(()) => tracing::info!(
                        core_pattern = %previous,
                        %reason,
                        "restored the previous core_pattern"
                    ),
                    Err(e) => tracing::error!(error = %e, "restoring core_pattern failed"),
                }
                restored
            }
        };
        capturing.store(false, Ordering::Release);
        stop.cancel();
        result
    };
    let (restored, ()) = tokio::join!(on_signal, ingest.run(stop.clone().cancelled_owned()));
    let _ = http_task.await;
    let _ = limits_task.await;
    restored.context("restoring core_pattern")
}
