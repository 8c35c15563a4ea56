//! `list` and `export`: read crashes straight from a data directory's blob volume (the JSON
//! record the ingest stores beside each core), so they work whether or not a server runs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use coredump_api::Coredump;
use sha2::{Digest, Sha256};

use crate::standalone::{DEFAULT_DATA_DIR, Layout};

/// Arguments of `list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Data directory of a standalone instance.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

/// Output formats of `list`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

/// Arguments of `export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Data directory of a standalone instance.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Name of the crash (first column of `list`).
    id: String,
    /// File to write the decompressed core to.
    #[arg(short = 'o', long)]
    output: PathBuf,
}

/// Every crash recorded under `blobs`, oldest first.
pub fn records(blobs: &Path) -> anyhow::Result<Vec<Coredump>> {
    let mut out = Vec::new();
    if !blobs.exists() {
        return Ok(out);
    }
    // <namespace>/<pod>/<container>/<name>.json: exactly three directory levels.
    for ns in read_dirs(blobs)? {
        for pod in read_dirs(&ns)? {
            for container in read_dirs(&pod)? {
                for entry in std::fs::read_dir(&container)
                    .with_context(|| format!("listing {}", container.display()))?
                {
                    let path = entry?.path();
                    if path.extension().is_some_and(|e| e == "json") {
                        let bytes = std::fs::read(&path)
                            .with_context(|| format!("reading {}", path.display()))?;
                        match serde_json::from_slice::<Coredump>(&bytes) {
                            Ok(c) => out.push(c),
                            Err(e) => eprintln!("skipping unreadable {}: {e}", path.display()),
                        }
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.spec.crash_time, &a.metadata.name).cmp(&(&b.spec.crash_time, &b.metadata.name))
    });
    Ok(out)
}

fn read_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() && !entry.file_name().to_string_lossy().starts_with('.') {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// `coredump-detector list`.
pub fn list(args: ListArgs) -> anyhow::Result<()> {
    let records = records(&Layout::new(&args.data_dir).blobs)?;
    let mut out = std::io::stdout().lock();
    match args.output {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &records)?;
            writeln!(out)?;
        }
        Format::Table => {
            writeln!(
                out,
                "{:<40} {:<10} {:<20} {:>8} {:<8} {:<24} {:<36} {:<14} {:>12} {:>12} STATE",
                "NAME",
                "NAMESPACE",
                "TIME",
                "PID",
                "SIGNAL",
                "EXE",
                "POD-UID",
                "CONTAINER-ID",
                "RAW",
                "STORED"
            )?;
            for c in &records {
                let container = c
                    .spec
                    .container_id
                    .as_deref()
                    .and_then(|id| id.rsplit('/').next())
                    .map(|id| id.chars().take(12).collect::<String>())
                    .unwrap_or_else(|| "-".into());
                writeln!(
                    out,
                    "{:<40} {:<10} {:<20} {:>8} {:<8} {:<24} {:<36} {:<14} {:>12} {:>12} {:?}",
                    c.metadata.name,
                    c.metadata.namespace,
                    c.spec.crash_time,
                    c.spec.pid,
                    c.spec.signal_name,
                    c.spec.executable,
                    c.spec.pod_uid.as_deref().unwrap_or("-"),
                    container,
                    c.status.raw_size,
                    c.status.stored_size,
                    c.status.state,
                )?;
            }
        }
    }
    Ok(())
}

/// `coredump-detector export`: decompresses, checks the SHA-256 recorded at capture, and only
/// then renames the output into place.
pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let layout = Layout::new(&args.data_dir);
    let records = records(&layout.blobs)?;
    let Some(record) = records.iter().find(|c| c.metadata.name == args.id) else {
        bail!("no crash named {:?} in {}", args.id, layout.blobs.display());
    };
    if record.status.blob_path.is_empty() {
        bail!(
            "crash {} has no stored core (state {:?}: {})",
            args.id,
            record.status.state,
            record.status.message
        );
    }
    // The record on the volume names its blob; like the API server, take only a path that
    // stays inside the blob root.
    let relative = coredump_store::BlobPath::parse_relative(&record.status.blob_path)
        .with_context(|| format!("crash {} names a malformed blob path", args.id))?;
    let blob = layout.blobs.join(relative.relative());
    let tmp = args.output.with_file_name(format!(
        ".{}.partial",
        args.output
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let written = decompress(&blob, &tmp, &record.status.sha256)
        .with_context(|| format!("exporting {} from {}", args.id, blob.display()));
    match written {
        Ok(_) => std::fs::rename(&tmp, &args.output)
            .with_context(|| format!("renaming into {}", args.output.display())),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn decompress(blob: &Path, out: &Path, sha256: &str) -> anyhow::Result<u64> {
    let input = std::fs::File::open(blob)?;
    let mut decoder = zstd::stream::Decoder::new(input)?;
    // A core is another process's memory: readable by its owner only, as the plugin saves it.
    let _ = std::fs::remove_file(out);
    let mut output = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out)?
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = decoder
            .read(&mut buf)
            .context("corrupt or truncated core blob")?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n])?;
        total += n as u64;
    }
    output.sync_all()?;
    let got = hex::encode(hasher.finalize());
    if !sha256.is_empty() && got != sha256 {
        bail!("checksum mismatch: stored core hashes to {got}, capture recorded {sha256}");
    }
    Ok(total)
}
