//! `coredump-detector standalone`: the one-machine mode. Installs this binary as the kernel's
//! core pipe handler, ingests every crash into the data directory, and (with the API server)
//! serves them to kubectl. The previous `core_pattern` is restored on SIGINT/SIGTERM, and by
//! the next start if this process was killed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use coredump_agent::args::CaptureFlags;
use coredump_apiserver::Registry;
use coredump_capture::handler::PATTERN_SPECIFIERS;
use coredump_capture::kernel::KernelPaths;
use coredump_capture::socket::{self as capture_socket, CaptureMode, InstallOptions};
use coredump_capture::spool::{Spool, create_private_dir_all};
use coredump_capture::{HandlerConfig, NonPodPolicy};
use coredump_ingest::{Ingest, IngestConfig, NoResolver};
use tokio_util::sync::CancellationToken;

/// Where standalone keeps everything unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/coredump-detector";

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The data directory.
    pub root: PathBuf,
    /// The installed handler binary (what `core_pattern` names).
    pub handler_bin: PathBuf,
    /// Its configuration.
    pub handler_config: PathBuf,
    /// Spool of finished captures.
    pub spool: PathBuf,
    /// Blob store root (`<namespace>/<podUID>/<container>/...`).
    pub blobs: PathBuf,
    /// Embedded metadata store (redb).
    pub metadata: PathBuf,
    /// Certificates: CA, serving, admin client.
    pub pki: PathBuf,
    /// kubeconfig for kubectl.
    pub kubeconfig: PathBuf,
}

impl Layout {
    /// The layout of `root`.
    pub fn new(root: &Path) -> Layout {
        let bin = root.join("bin");
        Layout {
            root: root.to_path_buf(),
            handler_bin: bin.join("coredump-detector"),
            handler_config: bin.join(coredump_capture::config::HANDLER_CONFIG),
            spool: root.join("spool"),
            blobs: root.join("blobs"),
            metadata: root.join("metadata.redb"),
            pki: root.join("pki"),
            kubeconfig: root.join("kubeconfig"),
        }
    }
}

/// Arguments of `standalone`.
#[derive(Debug, clap::Args)]
pub struct StandaloneArgs {
    /// Where cores, records, certificates and the kubeconfig live.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Namespace recorded for crashes of processes outside any pod.
    #[arg(long, default_value = "host")]
    pub host_namespace: String,
    /// The crash path: kernel settings, limits, compression.
    #[command(flatten)]
    pub capture_flags: CaptureFlags,
    /// How crashes reach us: `socket` (the kernel's coredump socket, Linux >= 6.17: no process
    /// per crash, refusals before any byte), `pipe` (a handler process per crash), or `auto`
    /// (socket when the kernel supports it).
    #[arg(long, default_value_t = CaptureMode::Auto)]
    pub capture: CaptureMode,
    /// Where the kernel lists its core_pattern modes (tests point it at a fake file).
    #[arg(long, default_value = capture_socket::CORE_MODES, hide = true)]
    pub core_modes: PathBuf,
    /// Address of the API server (loopback by default; `host:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:9443")]
    pub listen: String,
    /// Cores kept per crash signature of each pod: `FIRST,LAST` (the others' records stay,
    /// state Evicted), or `off`.
    #[arg(long, default_value = "5,5")]
    pub keep_per_signature: coredump_apiserver::registry::retention::KeepFlag,
}

/// Runs standalone until SIGINT or SIGTERM.
pub fn run(args: StandaloneArgs) -> anyhow::Result<()> {
    crate::init_tracing();
    if !rustix::process::geteuid().is_root() {
        bail!("standalone needs root: it sets kernel.core_pattern (run it with sudo)");
    }
    let root = std::path::absolute(&args.data_dir)
        .with_context(|| format!("resolving {}", args.data_dir.display()))?;
    let layout = Layout::new(&root);
    for dir in [&layout.root, &layout.spool, &layout.blobs] {
        create_private_dir_all(dir)?;
    }
    install_handler(&layout, &args)?;
    let pattern = format!(
        "|{} handle {PATTERN_SPECIFIERS}",
        layout.handler_bin.display()
    );
    let capture = capture_socket::install(InstallOptions {
        mode: args.capture,
        core_modes: args.core_modes.clone(),
        kernel: KernelPaths::default(),
        pipe_pattern: pattern,
        pipe_limit: args.capture_flags.pipe_limit,
        owner: root.to_string_lossy().into_owned(),
        handler: HandlerConfig::load(&layout.handler_config)?,
    })?;
    let previous = capture.previous_pattern().to_string();
    tracing::info!(
        mode = %capture.mode(),
        core_pattern = %capture.pattern(),
        previous = %previous,
        data_dir = %root.display(),
        "capturing crashes"
    );
    let served = coredump_common::runtime()?.block_on(serve(&layout, &args));
    // Restores core_pattern first, then lets the socket server finish what is in flight.
    let restored = capture.shutdown();
    tracing::info!(core_pattern = %previous, ?restored, "restored core_pattern");
    served.and(restored.map(drop).map_err(Into::into))
}

async fn serve(layout: &Layout, args: &StandaloneArgs) -> anyhow::Result<()> {
    let spool = Spool::open(&layout.spool)?;
    let meta = Arc::new(
        coredump_store::redb_store::RedbStore::open(&layout.metadata)
            .with_context(|| format!("opening {}", layout.metadata.display()))?,
    );
    let blobs = Arc::new(coredump_store::fs_blob::FsBlobStore::new(
        layout.blobs.clone(),
    )?);
    let registry =
        Registry::new(meta, blobs.clone()).with_signature_retention(args.keep_per_signature.0);
    let stop = CancellationToken::new();
    let server = crate::api::start(layout, &args.listen, registry.clone(), stop.clone()).await?;
    let ingest = Ingest::new(
        spool,
        blobs,
        Arc::new(crate::api::RegistrySink(registry)),
        Arc::new(NoResolver),
        IngestConfig {
            host_namespace: args.host_namespace.clone(),
            zstd_level: args.capture_flags.zstd_level,
            ..IngestConfig::default()
        },
    );
    let on_signal = {
        let stop = stop.clone();
        async move {
            coredump_common::shutdown_signal(
                "stop with SIGKILL and restart to repair core_pattern",
            )
            .await;
            stop.cancel();
        }
    };
    tokio::join!(on_signal, ingest.run(stop.clone().cancelled_owned()));
    server.await.context("API server task")?;
    Ok(())
}

/// Copies this binary to `bin/coredump-detector` (atomically: a handler already running keeps
/// its old file, the next crash gets the new one whole) and writes its config.
fn install_handler(layout: &Layout, args: &StandaloneArgs) -> anyhow::Result<()> {
    let bin_dir = layout.handler_bin.parent().unwrap_or(&layout.root);
    create_private_dir_all(bin_dir)?;
    let me = std::env::current_exe().context("locating this binary")?;
    if me != layout.handler_bin {
        coredump_common::atomic_file::copy(&me, &layout.handler_bin, 0o755)
            .with_context(|| format!("installing {} as the handler", me.display()))?;
    }
    let flags = &args.capture_flags;
    let min_free = flags.floor_bytes(flags.min_free, &layout.root, false);
    let config = flags.handler_config(layout.spool.clone(), NonPodPolicy::Record, None, min_free);
    config.store(&layout.handler_config)?;
    Ok(())
}
