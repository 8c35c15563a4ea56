//! Analysis benchmark: time and peak RSS of `coredump-detector analyze` on a 1 GiB core
//! (targets: <= 1 s, <= 64 MiB), against baselines measured in the same run.
//!
//! The core is the crasher's (1 GiB of mixed content: random, text-like and zero pages) taken
//! from the live, waiting process with gdb's `gcore`, reordered to the kernel's layout (notes
//! first) and compressed twice: as seekable zstd (what captures write now) and as one zstd
//! stream (what they wrote before). The binaries it maps are put into a blob store by build ID,
//! as the agent keeps them. Baseline: `zstd -dc` of the same core to /dev/null, the least any
//! analysis of a single-stream core must spend to reach its last pages.
//!
//! `cargo bench -p coredump-detector --bench analysis [-- --mib 1024 --runs 3]`

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn detector() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coredump-detector"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Rewrites gdb's core (notes last) in the kernel's order (notes first), streaming.
fn kernel_layout(from: &Path, to: &Path) {
    let mut input = std::fs::File::open(from).unwrap();
    let mut head = vec![0u8; 64];
    input.read_exact(&mut head).unwrap();
    let phoff = u64_at(&head, 0x20) as usize;
    let phentsize = u16::from_le_bytes([head[0x36], head[0x37]]) as usize;
    let phnum = u16::from_le_bytes([head[0x38], head[0x39]]) as usize;
    let mut headers = vec![0u8; phoff + phnum * phentsize];
    input.seek(SeekFrom::Start(0)).unwrap();
    input.read_exact(&mut headers).unwrap();
    let kind = |h: &[u8], i: usize| {
        u32::from_le_bytes(h[phoff + i * phentsize..][..4].try_into().unwrap())
    };
    let mut order: Vec<usize> = (0..phnum).collect();
    order.sort_by_key(|&i| if kind(&headers, i) == 4 { 0 } else { 1 });
    let mut next = headers.len() as u64;
    let mut plan = Vec::new();
    for i in order {
        let ph = phoff + i * phentsize;
        let (offset, size) = (u64_at(&headers, ph + 8), u64_at(&headers, ph + 32));
        headers[ph + 8..ph + 16].copy_from_slice(&next.to_le_bytes());
        plan.push((offset, size));
        next += size;
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(to).unwrap());
    out.write_all(&headers).unwrap();
    for (offset, size) in plan {
        input.seek(SeekFrom::Start(offset)).unwrap();
        std::io::copy(&mut (&mut input).take(size), &mut out).unwrap();
    }
    out.flush().unwrap();
}

/// (milliseconds, peak RSS KiB) that `analyze` reports, and its JSON.
fn analyze(core: &Path, data: &Path) -> (f64, u64, serde_json::Value) {
    analyze_sized(core, data, None)
}

/// [`analyze`] with `--size` (a single-stream core's decompressed size).
fn analyze_sized(core: &Path, data: &Path, size: Option<u64>) -> (f64, u64, serde_json::Value) {
    let mut cmd = Command::new(detector());
    cmd.arg("analyze").arg(core).arg("--data-dir").arg(data);
    if let Some(size) = size {
        cmd.arg("--size").arg(size.to_string());
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "analyze failed: {err}");
    let line = err.lines().find(|l| l.starts_with("analysis: ")).unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    let ms: f64 = words[1].parse().unwrap();
    let rss: u64 = words[5].parse().unwrap();
    (ms, rss, serde_json::from_slice(&out.stdout).unwrap())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut mib = 1024usize;
    let mut runs = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mib" => mib = args.next().and_then(|v| v.parse().ok()).unwrap(),
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap(),
            _ => {}
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("cdd-bench-analysis-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let d = dir.path();

    // A live crasher holding `mib` MiB, cored by gdb.
    let mut crasher = Command::new(coredump_testkit::bins::crasher())
        .args([
            "--mib",
            &mib.to_string(),
            "--content",
            "mixed",
            "--wait-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(crasher.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: u32 = line.trim().strip_prefix("ready ").unwrap().parse().unwrap();
    let gcore = d.join("gcore");
    let made = Command::new("gdb")
        .args(["-nx", "-batch", "-p", &pid.to_string(), "-ex"])
        .arg(format!("gcore {}", gcore.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let _ = crasher.kill();
    let _ = crasher.wait();
    assert!(
        made.success() && gcore.exists(),
        "gdb could not core the crasher"
    );
    let raw = d.join("core");
    kernel_layout(&gcore, &raw);
    std::fs::remove_file(&gcore).unwrap();
    let raw_len = std::fs::metadata(&raw).unwrap().len();

    // Seekable (what captures write now) and one stream (what they wrote before).
    let seekable = d.join("core.seekable.zst");
    let started = Instant::now();
    let mut w =
        coredump_seekable::SeekableWriter::new(std::fs::File::create(&seekable).unwrap(), 1, 2)
            .unwrap();
    std::io::copy(&mut std::fs::File::open(&raw).unwrap(), &mut w).unwrap();
    w.finish().unwrap();
    let seekable_s = started.elapsed().as_secs_f64();
    let stream = d.join("core.stream.zst");
    let started = Instant::now();
    let status = Command::new("zstd")
        .args(["-q", "-1", "-T2", "-f", "-o"])
        .arg(&stream)
        .arg(&raw)
        .status()
        .unwrap();
    assert!(status.success());
    let stream_s = started.elapsed().as_secs_f64();

    // The binaries, by build ID, as the agent keeps them.
    let data = d.join("data");
    let blobs = coredump_store::fs_blob::FsBlobStore::new(data.join("blobs")).unwrap();
    let (_, _, probe) = analyze(&raw, &data);
    for m in probe["analysis"]["modules"].as_array().unwrap() {
        let (Some(path), Some(id)) = (m["path"].as_str(), m["buildID"].as_str()) else {
            continue;
        };
        if let Some(blob) = coredump_store::buildid::buildid_path("host", id, "executable") {
            use coredump_store::BlobStore;
            let _ = blobs.put_file(&blob, Path::new(path));
        }
    }

    let mut baseline = Vec::new();
    let mut seek_ms = Vec::new();
    let mut seek_rss = 0;
    let mut stream_ms = Vec::new();
    let mut stream_rss = 0;
    let mut result = serde_json::Value::Null;
    for _ in 0..runs {
        let started = Instant::now();
        let status = Command::new("zstd")
            .args(["-q", "-d", "-c"])
            .arg(&seekable)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        baseline.push(started.elapsed().as_secs_f64() * 1000.0);
        let (ms, rss, json) = analyze(&seekable, &data);
        seek_ms.push(ms);
        seek_rss = seek_rss.max(rss);
        result = json;
        // A single-stream core, decoded forward by the analysis (the fallback path).
        let (ms, rss, _) = analyze_sized(&stream, &data, Some(raw_len));
        stream_ms.push(ms);
        stream_rss = stream_rss.max(rss);
    }
    let frames = result["analysis"]["threads"][0]["frames"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert!(frames > 0, "no frames: {result:#}");
    let base = median(baseline);
    let seek = median(seek_ms);
    let streamed = median(stream_ms);
    println!(
        "core {:.0} MiB raw; seekable {:.0} MiB ({:.1} s to write), one stream {:.0} MiB ({:.1} s, zstd -1 -T2)",
        raw_len as f64 / (1 << 20) as f64,
        std::fs::metadata(&seekable).unwrap().len() as f64 / (1 << 20) as f64,
        seekable_s,
        std::fs::metadata(&stream).unwrap().len() as f64 / (1 << 20) as f64,
        stream_s,
    );
    println!("medians of {runs}; crashing thread: {frames} frames");
    println!("| what | time | ratio to baseline | peak RSS |");
    println!("|---|---|---|---|");
    println!("| baseline: zstd -dc of the whole core | {base:.0} ms | 1.00 | - |");
    println!(
        "| analyze, seekable core | {seek:.0} ms | {:.3} | {:.1} MiB |",
        seek / base,
        seek_rss as f64 / 1024.0
    );
    println!(
        "| analyze, single-stream core | {streamed:.0} ms | {:.3} | {:.1} MiB |",
        streamed / base,
        stream_rss as f64 / 1024.0
    );
    println!(
        "targets: <= 1000 ms and <= 64 MiB on the seekable core: {}",
        if seek <= 1000.0 && seek_rss <= 64 << 10 {
            "met"
        } else {
            "NOT met"
        }
    );
}
