//! `analyze`: the analysis of one core file after the fact, with the binaries a data
//! directory's store keeps by build ID. Prints the `Coredump.status.analysis` JSON (and the
//! signature) on stdout, and on stderr how long the analysis took and the process's peak RSS,
//! which the analysis benchmark reads.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::standalone::{DEFAULT_DATA_DIR, Layout};

/// Arguments of `analyze`.
#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// The core: raw, zstd, or seekable zstd.
    core: PathBuf,
    /// Data directory whose blob store holds the binaries by build ID.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Namespace whose binaries to use.
    #[arg(long, default_value = "host")]
    namespace: String,
    /// Decompressed size of a zstd core written as one stream (before seekable cores): it is
    /// then decoded forward as needed (`status.coreSize` of its record).
    #[arg(long, value_name = "BYTES")]
    size: Option<u64>,
}

/// Runs `analyze`.
pub fn run(args: AnalyzeArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let layout = Layout::new(&args.data_dir);
    let blobs = coredump_store::fs_blob::FsBlobStore::new(layout.blobs)?;
    let file = std::fs::File::open(&args.core)
        .with_context(|| format!("opening {}", args.core.display()))?;
    let mut magic = [0u8; 4];
    std::io::Read::read_exact(&mut &file, &mut magic).context("reading the core")?;
    let binaries = coredump_ingest::analyze::StoredBinaries {
        namespace: &args.namespace,
        blobs: &blobs,
    };
    let limits = coredump_analysis::Limits::default();
    let outcome = if magic == [0x28, 0xb5, 0x2f, 0xfd] {
        let reader =
            coredump_seekable::SeekableReader::new(std::io::BufReader::new(file), args.size)?;
        anyhow::ensure!(
            reader.is_indexed() || args.size.is_some(),
            "{} is a zstd stream without seek table: give its decompressed --size",
            args.core.display()
        );
        coredump_analysis::analyze(reader, &binaries, &limits)?
    } else {
        coredump_analysis::analyze(std::io::BufReader::new(file), &binaries, &limits)?
    };
    let elapsed = started.elapsed();
    let json = serde_json::json!({
        "signature": outcome.signature,
        "analysis": outcome.analysis,
    });
    println!("{}", serde_json::to_string_pretty(&json)?);
    eprintln!(
        "analysis: {:.1} ms, peak RSS {} KiB",
        elapsed.as_secs_f64() * 1000.0,
        peak_rss_kib()
    );
    Ok(())
}

/// `VmHWM` of this process.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
