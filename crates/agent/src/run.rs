//! The `agent` role from start to SIGTERM: connect to the API, install the handler, take over
//! `core_pattern` (repairing what a killed agent left) with the pipe handler or, in socket
//! mode, the coredump socket server feeding the same spool, start the informers, the metrics
//! endpoint and the ingest; on SIGTERM or SIGINT hand `core_pattern` over to the pipe handler
//! or put the previous one back ([`crate::handover`]) before the socket server stops, then let
//! the ingest finish its pass.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use coredump_capture::kernel::{KernelPaths, PatternLock};
use coredump_capture::socket::{InstallOptions, Installed, install_locked};
use coredump_capture::spool::Spool;
use coredump_common::BackendKind;
use coredump_common::health;
use coredump_common::kube_client::{self, Credentials, Fallback};
use coredump_ingest::{Ingest, IngestConfig};
use coredump_store::BlobStore;
use coredump_store::fs_blob::FsBlobStore;
use tokio_util::sync::CancellationToken;

use crate::args::Args;
use crate::handover::Stopping;
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
/// The kernel-settings locks come first: a second agent on the node (the same host directory,
/// or another install's: the machine-wide owner lock) is refused before it replaces the live
/// agent's handler binary, rewrites its `handler.json` or touches `core_pattern`.
/// The handler and its configuration are installed in socket mode too: the pipe handler is
/// what the kernel calls while no agent listens (a restart hands over to it).
fn capture(args: &Args, layout: &HostLayout) -> anyhow::Result<Installed> {
    let kernel = KernelPaths {
        core_pattern: args.proc_sys_kernel.join("core_pattern"),
        core_pipe_limit: args.proc_sys_kernel.join("core_pipe_limit"),
        run_dir: layout.run.clone(),
        owner_lock: args.owner_lock.clone(),
    };
    let owner = format!("coredump-detector agent ({})", layout.root.display());
    let lock = PatternLock::acquire(kernel.clone(), &owner)
        .context("another coredump-detector owns core_pattern on this node")?;
    layout.create()?;
    let me = std::env::current_exe().context("locating this binary")?;
    install_binary(&me, layout)?;
    // The config must exist before the pattern names the handler (or the socket server reads
    // it), with what the kernel had before any agent as the pattern to forward to.
    let previous = lock.previous_pattern()?;
    let min_free = args
        .capture
        .floor_bytes(args.capture.min_free, &layout.spool, true);
    let mut config = args.capture.handler_config(
        layout.spool.clone(),
        args.non_pod,
        forward_target(&previous, &layout.handler_bin),
        min_free,
    );
    config.limits = Some(args.limits.crash_limits(layout.limits_dir()));
    write_config(layout, &config)?;
    let installed = install_locked(
        lock,
        InstallOptions {
            mode: args.capture_mode,
            core_modes: args.core_modes.clone(),
            kernel,
            pipe_pattern: layout.pattern(),
            pipe_limit: args.capture.pipe_limit,
            owner,
            handler: config.clone(),
        },
    )?;
    tracing::info!(
        mode = %installed.mode(),
        requested = %args.capture_mode,
        fallback = ?installed.fallback_reason(),
        core_pattern = %installed.pattern(),
        previous = %installed.previous_pattern(),
        non_pod = ?args.non_pod,
        forward_to = ?config.forward_pattern,
        min_free_bytes = config.min_free_bytes,
        kubelet_thresholds = ?args.capture.kubelet_config.thresholds(Path::new("/proc")),
        "capturing crashes"
    );
    Ok(installed)
}

/// Gives the kernel up as `stopping` says: a restart hands it over to the pipe handler (it
/// spools until the next agent), an uninstall restores the previous pattern. Either way the
/// socket server (socket mode) stops only after `core_pattern` no longer names it.
fn release(installed: Installed, stopping: &Stopping, pipe_pattern: &str) -> anyhow::Result<()> {
    let mode = installed.mode();
    let (result, core_pattern, what) = match stopping {
        Stopping::Restart => (
            installed.hand_over(),
            pipe_pattern.to_string(),
            "restarting: left core_pattern to the pipe handler for the next agent".to_string(),
        ),
        Stopping::Uninstall(reason) => {
            let previous = installed.previous_pattern().to_string();
            let what = format!("uninstalling ({reason}): restored the previous core_pattern");
            (installed.shutdown(), previous, what)
        }
    };
    match &result {
        Ok(stats) => tracing::info!(%core_pattern, %mode, socket = ?stats, "{what}"),
        Err(e) => tracing::error!(error = %e, "{what}: failed"),
    }
    result
        .map(drop)
        .with_context(|| format!("releasing core_pattern ({what})"))
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
    let installed = capture(&args, &layout)?;
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
        let pipe_pattern = layout.pattern();
        let result =
            tokio::task::spawn_blocking(move || release(installed, &stopping, &pipe_pattern))
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("releasing core_pattern: {e}")));
        capturing.store(false, Ordering::Release);
        stop.cancel();
        result
    };
    let (restored, ()) = tokio::join!(on_signal, ingest.run(stop.clone().cancelled_owned()));
    let _ = http_task.await;
    let _ = limits_task.await;
    restored
}
