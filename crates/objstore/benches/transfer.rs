//! Transfer benchmark of the blob stores (`cargo bench -p coredump-objstore --bench transfer`):
//! a stored core of 1 GiB (`BENCH_CORE_MIB` to change; incompressible, as a zstd blob is) is
//! uploaded from a spool file with `put_file` (what the agent does after a crash) and read back
//! whole with `open` (what the API server streams for `core` and `dump`), through each backend
//! on loopback: S3 (SeaweedFS), Azure Blob (Azurite), GCS (fake-gcs-server, reads only: it
//! refuses `object_store`'s upload, so its object is planted through its own API). The
//! baseline, measured in the same run, is the filesystem store on the same disk: its
//! `put_file` is the ingest time of a node-local install.
//!
//! Prints, per backend, medians of `BENCH_RUNS` (default 3) runs: upload and download time,
//! their ratio to the filesystem store's, the peak RSS of this process during each (the
//! store runs in-process, as in the agent and the API server; the process is the benchmark and
//! the store, nothing else) and its CPU time during the upload. Targets of issue 13: upload
//! within 1.5x of the filesystem ingest, peak RSS at most 64 MiB.
//!
//! Server baselines, in the same run, interleaved with ours run by run: the same file sent to
//! the same server by plain clients that are not ours (S3: curl, one signed PUT, and the AWS
//! CLI's multipart `s3 cp` when installed; Azure: curl, one Put Blob signed with the account's
//! key), with their time, CPU time and our upload's ratio to theirs: the share of the upload
//! time that is the server's. Each plain client's object is read back once and compared with
//! the source (size and MD5). `BENCH_SETTINGS=8x2,8x4,16x2` compares part sizes (MiB) and
//! parts in flight of our upload in the same run.

// A benchmark is test code: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use coredump_objstore::ObjectBlobStore;
use coredump_objstore::store::{PART_SIZE, PARTS_IN_FLIGHT};
use coredump_store::fs_blob::FsBlobStore;
use coredump_store::{BlobPath, BlobStore};
use coredump_testplane::azurite::{Azurite, start_azurite};
use coredump_testplane::object_server::{BUCKET, ObjectServer};
use coredump_testplane::seaweedfs::{self, SeaweedFs, start_seaweedfs};
use md5::{Digest, Md5};

const MIB: u64 = 1024 * 1024;

/// One backend's medians.
struct Row {
    name: String,
    upload: Option<Duration>,
    upload_rss: u64,
    /// CPU time of this process (the store) during the upload.
    upload_cpu: Duration,
    download: Duration,
    download_rss: u64,
}

/// Writes `size` bytes of incompressible content (a stored core is zstd output).
fn write_source(path: &Path, size: u64) {
    let mut file =
        std::io::BufWriter::with_capacity(MIB as usize, std::fs::File::create(path).unwrap());
    let mut block = vec![0u8; MIB as usize];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut written = 0;
    while written < size {
        for word in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
        }
        let len = (size - written).min(MIB) as usize;
        file.write_all(&block[..len]).unwrap();
        written += len as u64;
    }
    file.into_inner().unwrap().sync_all().unwrap();
}

/// Runs `f` once with the peak RSS reset first: its time and the process's peak RSS during it
/// (`VmHWM` after a reset to the current resident size: what the process held before, freed
/// memory the allocator kept included, plus what `f` added).
fn measured<T>(f: impl FnOnce() -> T) -> (T, Duration, u64) {
    assert!(
        common::reset_peak_rss(),
        "cannot reset VmHWM (/proc/self/clear_refs): RSS would go unmeasured"
    );
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    (out, took, common::peak_rss())
}

/// Reads the whole blob through `open`, in the API server's 64 KiB pieces; returns the bytes read.
fn read_all(store: &dyn BlobStore, path: &BlobPath) -> u64 {
    let mut reader = store.open(path).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf).unwrap() {
            0 => return total,
            n => total += n as u64,
        }
    }
}

/// CPU time used so far by this process (all threads) and by its children waited for
/// (`/proc/self/stat`: utime + stime, cutime + cstime): the client's own cost of an upload,
/// which other work on the machine disturbs less than the wall time.
fn cpu_used() -> (Duration, Duration) {
    static TICK: OnceLock<Duration> = OnceLock::new();
    let tick = *TICK.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
        let hz: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        Duration::from_secs(1) / hz
    });
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command's `)`: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    let f: Vec<u32> = after
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|v| v.parse().unwrap())
        .collect();
    (tick * (f[0] + f[1]), tick * (f[2] + f[3]))
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn median_u64(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

/// Uploads (unless `upload` is false: the blob is already there) and reads back `runs` times.
fn bench(
    name: &'static str,
    store: &dyn BlobStore,
    source: &Path,
    size: u64,
    runs: usize,
    upload: bool,
) -> Row {
    let path = blob("big.core.zst");
    let (mut ups, mut up_rss, mut downs, mut down_rss) = (vec![], vec![], vec![], vec![]);
    let mut up_cpu = vec![];
    for run in 0..runs {
        if upload {
            let (took, rss, cpu) = upload_once(name, store, &path, source, size);
            ups.push(took);
            up_rss.push(rss);
            up_cpu.push(cpu);
        }
        let (read, took, rss) = measured(|| read_all(store, &path));
        assert_eq!(read, size, "{name}: read back {read} of {size} bytes");
        downs.push(took);
        down_rss.push(rss);
        eprintln!(
            "{name} run {}: upload {:?}, download {took:?}",
            run + 1,
            ups.last()
        );
    }
    store.delete(&path).unwrap();
    Row {
        name: name.to_owned(),
        upload: upload.then(|| median(ups)),
        upload_rss: if upload { median_u64(up_rss) } else { 0 },
        upload_cpu: if upload {
            median(up_cpu)
        } else {
            Duration::ZERO
        },
        download: median(downs),
        download_rss: median_u64(down_rss),
    }
}

/// The blob `file` of the benchmark's pod.
fn blob(file: &str) -> BlobPath {
    BlobPath::new("bench", "pod-uid", "app", file).unwrap()
}

/// One `put_file` of `source` to `path` (deleted first: a blob of the same size already there
/// would be left alone): its time, the peak RSS and the CPU time of this process during it.
fn upload_once(
    name: &str,
    store: &dyn BlobStore,
    path: &BlobPath,
    source: &Path,
    size: u64,
) -> (Duration, u64, Duration) {
    store.delete(path).unwrap();
    let (cpu_before, _) = cpu_used();
    let (stored, took, rss) = measured(|| store.put_file(path, source).unwrap());
    let cpu = cpu_used().0 - cpu_before;
    assert_eq!(stored, size, "{name}: stored {stored} of {size} bytes");
    (took, rss, cpu)
}

/// An upload setting of the object stores: part size and parts in flight.
#[derive(Clone, Copy)]
struct Setting {
    part: usize,
    in_flight: usize,
}

impl Setting {
    fn label(self) -> String {
        format!("{} MiB x{}", self.part as u64 / MIB, self.in_flight)
    }
}

/// The settings to compare, from `BENCH_SETTINGS`: a comma list of `<part MiB>x<parts in
/// flight>` (`8x2,8x4,16x2`); default the store's own `PART_SIZE` and `PARTS_IN_FLIGHT`.
fn settings() -> Vec<Setting> {
    let Ok(list) = std::env::var("BENCH_SETTINGS") else {
        return vec![Setting {
            part: PART_SIZE,
            in_flight: PARTS_IN_FLIGHT,
        }];
    };
    list.split(',')
        .map(|item| {
            let parsed = item
                .trim()
                .split_once('x')
                .and_then(|(p, f)| Some((p.parse::<usize>().ok()?, f.parse().ok()?)));
            let (part, in_flight) = parsed.unwrap_or_else(|| {
                panic!("BENCH_SETTINGS={list:?}: {item:?} is not <part MiB>x<parts in flight>")
            });
            Setting {
                part: part * MIB as usize,
                in_flight,
            }
        })
        .collect()
}

/// A client that is not ours (curl, the AWS CLI) sending the source to the same server: how
/// fast the server ingests 1 GiB from a plain client on this machine, in the same run.
struct Plain<'a> {
    name: &'static str,
    /// The command that uploads the source as the object of `blob(PLAIN_FILE)`, or why it
    /// cannot run here (printed, never a silent skip).
    command: Result<Box<dyn Fn() -> Command + 'a>, String>,
    times: Vec<Duration>,
    /// The client's CPU time (user and system) per upload.
    cpu: Vec<Duration>,
}

/// The blob the plain clients write.
const PLAIN_FILE: &str = "plain.core.zst";

/// The object key of `path` under `prefix`, as the store lays it out (`keys::Layout`).
fn key_of(prefix: &str, path: &BlobPath) -> String {
    format!(
        "{prefix}/{}/{}/{}/{}",
        path.namespace, path.pod_uid, path.container, path.file
    )
}

/// curl's `-T` PUT of `source` to `url` with `args` (signature), answer checked for `2xx`.
fn curl_put(source: &Path, url: &str, args: &[String], answer: &Path) -> Command {
    let mut command = Command::new("curl");
    command
        .args(["-sS", "--max-time", "300", "-o"])
        .arg(answer)
        .args(["-w", "%{http_code}", "-T"])
        .arg(source)
        .args(args)
        .arg(url);
    command
}

/// Runs a plain client once (the object deleted first); its time and CPU time. A failure
/// stops the bench.
fn run_plain(plain: &Plain<'_>, store: &dyn BlobStore, answer: &Path) -> (Duration, Duration) {
    let Ok(command) = &plain.command else {
        unreachable!("only runnable clients are run")
    };
    store.delete(&blob(PLAIN_FILE)).unwrap();
    let (_, cpu_before) = cpu_used();
    let started = Instant::now();
    let out = command().output().unwrap();
    let took = started.elapsed();
    let cpu = cpu_used().1 - cpu_before;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let curl_ok = stdout.is_empty() || stdout.starts_with('2');
    assert!(
        out.status.success() && curl_ok,
        "{}: {} {stdout} {}\n{}",
        plain.name,
        out.status,
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(answer).unwrap_or_default()
    );
    (took, cpu)
}

/// The MD5 and size of what `reader` gives.
fn digest(mut reader: impl Read) -> ([u8; 16], u64) {
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; MIB as usize];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf).unwrap() {
            0 => return (md5.finalize().into(), total),
            n => {
                md5.update(&buf[..n]);
                total += n as u64;
            }
        }
    }
}

/// Our upload on one server, every setting, beside its plain clients, run after run
/// (interleaved, so a slower minute of the machine slows all alike). The first run's plain
/// object is read back through the store and compared with the source (size and MD5).
#[allow(clippy::too_many_arguments)]
fn bench_server(
    name: &str,
    server: &dyn ObjectServer,
    prefix: &str,
    plains: &mut [Plain<'_>],
    source: &Path,
    size: u64,
    source_digest: ([u8; 16], u64),
    runs: usize,
    answer: &Path,
) -> Vec<Row> {
    let stores: Vec<(Setting, ObjectBlobStore)> = settings()
        .into_iter()
        .map(|s| {
            let store = common::args(server, prefix)
                .open_with_retry(common::short_retry())
                .unwrap()
                .unwrap()
                .with_part_size(s.part)
                .with_parts_in_flight(s.in_flight);
            (s, store)
        })
        .collect();
    let path = blob("big.core.zst");
    let mut ups = vec![vec![]; stores.len()];
    let mut up_rss = vec![vec![]; stores.len()];
    let mut up_cpu = vec![vec![]; stores.len()];
    let (mut downs, mut down_rss) = (vec![], vec![]);
    for run in 0..runs {
        for (i, (setting, store)) in stores.iter().enumerate() {
            let (took, rss, cpu) = upload_once(name, store, &path, source, size);
            eprintln!(
                "{name} {} run {}: upload {took:?}, cpu {cpu:?}",
                setting.label(),
                run + 1
            );
            ups[i].push(took);
            up_rss[i].push(rss);
            up_cpu[i].push(cpu);
        }
        let store = &stores[0].1;
        let (read, took, rss) = measured(|| read_all(store, &path));
        assert_eq!(read, size, "{name}: read back {read} of {size} bytes");
        downs.push(took);
        down_rss.push(rss);
        for plain in plains.iter_mut().filter(|p| p.command.is_ok()) {
            let (took, cpu) = run_plain(plain, store, answer);
            eprintln!(
                "{name} {} run {}: upload {took:?}, cpu {cpu:?}",
                plain.name,
                run + 1
            );
            if run == 0 {
                let stored = digest(store.open(&blob(PLAIN_FILE)).unwrap());
                assert_eq!(
                    stored, source_digest,
                    "{name} {}: the object is not the source (MD5, size)",
                    plain.name
                );
                eprintln!("{name} {}: object verified (size and MD5)", plain.name);
            }
            plain.times.push(took);
            plain.cpu.push(cpu);
        }
    }
    store_cleanup(&stores[0].1, &[path, blob(PLAIN_FILE)]);
    let many = stores.len() > 1;
    stores
        .iter()
        .enumerate()
        .map(|(i, (setting, _))| Row {
            name: if many {
                format!("{name} {}", setting.label())
            } else {
                name.to_owned()
            },
            upload: Some(median(ups[i].clone())),
            upload_rss: median_u64(up_rss[i].clone()),
            upload_cpu: median(up_cpu[i].clone()),
            download: median(downs.clone()),
            download_rss: median_u64(down_rss.clone()),
        })
        .collect()
}

/// Deletes the benchmark's objects.
fn store_cleanup(store: &dyn BlobStore, paths: &[BlobPath]) {
    for path in paths {
        store.delete(path).unwrap();
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

/// The plain clients of S3: curl (one signed PUT) and the AWS CLI (multipart, its defaults).
fn s3_plains(server: &SeaweedFs, prefix: &str, source: &Path, dir: &Path) -> Vec<Plain<'static>> {
    let key = key_of(prefix, &blob(PLAIN_FILE));
    let url = format!("{}/{BUCKET}/{key}", server.endpoint());
    let (src, answer) = (source.to_owned(), dir.join("answer"));
    // curl 7.88 signs an upload from a file as an empty body: it is given the payload's
    // SHA-256 (computed here, untimed), so the server verifies the same signed payload as
    // ours (object_store signs the payload's hash).
    let sha256 = Command::new("sha256sum").arg(source).output().unwrap();
    assert!(sha256.status.success(), "sha256sum {}", source.display());
    let sha256 = String::from_utf8_lossy(&sha256.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let curl = move || {
        curl_put(
            &src,
            &url,
            &[
                "-H".into(),
                format!("x-amz-content-sha256: {sha256}"),
                "--aws-sigv4".into(),
                format!("aws:amz:{}:s3", seaweedfs::REGION),
                "--user".into(),
                format!(
                    "{}:{}",
                    seaweedfs::ACCESS_KEY_ID,
                    seaweedfs::SECRET_ACCESS_KEY
                ),
            ],
            &answer,
        )
    };
    let aws_cli = match Command::new("aws").arg("--version").output() {
        Ok(out) if out.status.success() => {
            let (src, endpoint) = (source.to_owned(), server.endpoint());
            let target = format!("s3://{BUCKET}/{key}");
            let config = dir.join("aws-config");
            std::fs::write(&config, "[default]\n").unwrap();
            Ok(Box::new(move || {
                let mut command = Command::new("aws");
                command
                    .env("AWS_ACCESS_KEY_ID", seaweedfs::ACCESS_KEY_ID)
                    .env("AWS_SECRET_ACCESS_KEY", seaweedfs::SECRET_ACCESS_KEY)
                    .env("AWS_DEFAULT_REGION", seaweedfs::REGION)
                    .env("AWS_CONFIG_FILE", &config)
                    .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                    .args([
                        "--endpoint-url",
                        &endpoint,
                        "s3",
                        "cp",
                        "--only-show-errors",
                    ])
                    .arg(&src)
                    .arg(&target);
                command
            }) as Box<dyn Fn() -> Command>)
        }
        _ => Err("`aws` (the AWS CLI) is not installed".to_owned()),
    };
    vec![
        Plain {
            name: "curl, one PUT",
            command: Ok(Box::new(curl)),
            times: vec![],
            cpu: vec![],
        },
        Plain {
            name: "aws s3 cp, multipart",
            command: aws_cli,
            times: vec![],
            cpu: vec![],
        },
    ]
}

/// The plain client of Azure Blob: curl, one Put Blob signed with the account's key.
fn azure_plains<'a>(
    server: &'a Azurite,
    prefix: &str,
    source: &Path,
    size: u64,
    dir: &Path,
) -> Vec<Plain<'a>> {
    let path = format!("{BUCKET}/{}", key_of(prefix, &blob(PLAIN_FILE)));
    let url = format!("{}/{path}", server.endpoint());
    let (src, answer) = (source.to_owned(), dir.join("answer"));
    // Signed per request: the signature covers the date, which Azure accepts for 15 minutes.
    let curl = move || {
        let signed = server
            .signed_headers("PUT", &path, &[], size, &[("x-ms-blob-type", "BlockBlob")])
            .unwrap();
        let args: Vec<String> = signed
            .iter()
            .flat_map(|(k, v)| ["-H".to_owned(), format!("{k}: {v}")])
            .collect();
        curl_put(&src, &url, &args, &answer)
    };
    vec![Plain {
        name: "curl, one Put Blob",
        command: Ok(Box::new(curl)),
        times: vec![],
        cpu: vec![],
    }]
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let size = env_number("BENCH_CORE_MIB", 1024) * MIB;
    let runs = env_number("BENCH_RUNS", 3).max(1) as usize;
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let source = dir.path().join("spool.core.zst");
    write_source(&source, size);
    let source_digest = digest(std::fs::File::open(&source).unwrap());
    eprintln!("source: {} MiB, {runs} runs per backend", size / MIB);
    let answer = dir.path().join("answer");
    let prefix = format!("bench-{}", std::process::id());

    let mut rows = Vec::new();
    let fs = FsBlobStore::new(dir.path().join("fs")).unwrap();
    rows.push(bench("filesystem", &fs, &source, size, runs, true));
    drop(fs);

    // (server, client, medians of time and CPU or why not measured, our first setting's time)
    type Measured = Result<(Duration, Duration), String>;
    let mut baselines: Vec<(&str, &str, Measured, Duration)> = Vec::new();
    // Our upload and the plain clients on one server; its rows and baselines.
    let mut bench_object =
        |name: &'static str, server: &dyn ObjectServer, mut plains: Vec<Plain<'_>>| {
            let ours = bench_server(
                name,
                server,
                &prefix,
                &mut plains,
                &source,
                size,
                source_digest,
                runs,
                &answer,
            );
            for plain in plains {
                let time = plain
                    .command
                    .map(|_| (median(plain.times), median(plain.cpu)));
                baselines.push((name, plain.name, time, ours[0].upload.unwrap()));
            }
            rows.extend(ours);
        };
    {
        let server = start_seaweedfs().unwrap();
        server.create_bucket(BUCKET).unwrap();
        let plains = s3_plains(&server, &prefix, &source, dir.path());
        bench_object("s3 (SeaweedFS)", &server, plains);
        server.kill();
    }
    {
        let mut server = start_azurite().unwrap();
        server.create_container(BUCKET).unwrap();
        let plains = azure_plains(&server, &prefix, &source, size, dir.path());
        bench_object("azure (Azurite)", &server, plains);
        server.kill();
    }

    let gcs = coredump_testplane::fake_gcs::start_fake_gcs().unwrap();
    gcs.create_bucket("cores").unwrap();
    {
        let bytes = std::fs::read(&source).unwrap();
        gcs.upload("cores", "bench/bench/pod-uid/app/big.core.zst", &bytes)
            .unwrap();
    }
    let store = common::args(&gcs, "bench")
        .open_with_retry(common::short_retry())
        .unwrap()
        .unwrap();
    rows.push(bench(
        "gcs (fake-gcs-server)",
        &store,
        &source,
        size,
        runs,
        false,
    ));
    drop(store);
    drop(gcs);

    let base = &rows[0];
    let (base_up, base_down) = (base.upload.unwrap(), base.download);
    let mib = |bytes: u64| bytes as f64 / MIB as f64;
    let rate = |d: Duration| mib(size) / d.as_secs_f64();
    println!(
        "{:<34} {:>10} {:>9} {:>7} {:>8} {:>7} {:>10} {:>9} {:>7} {:>8}",
        "backend",
        "upload",
        "MiB/s",
        "x fs",
        "peak MiB",
        "cpu s",
        "download",
        "MiB/s",
        "x fs",
        "peak MiB"
    );
    for row in &rows {
        let upload = match row.upload {
            Some(up) => format!(
                "{:>9.2}s {:>9.0} {:>7.2} {:>8.1} {:>7.2}",
                up.as_secs_f64(),
                rate(up),
                up.as_secs_f64() / base_up.as_secs_f64(),
                mib(row.upload_rss),
                row.upload_cpu.as_secs_f64()
            ),
            None => format!("{:>10} {:>9} {:>7} {:>8} {:>7}", "n/a", "", "", "", ""),
        };
        println!(
            "{:<34} {upload} {:>9.2}s {:>9.0} {:>7.2} {:>8.1}",
            row.name,
            row.download.as_secs_f64(),
            rate(row.download),
            row.download.as_secs_f64() / base_down.as_secs_f64(),
            mib(row.download_rss)
        );
    }
    println!(
        "{:<45} {:>10} {:>9} {:>7} {:>7} {:>13}",
        "server baseline (plain client, same run)",
        "upload",
        "MiB/s",
        "x fs",
        "cpu s",
        "ours x plain"
    );
    for (server, client, time, ours) in &baselines {
        let label = format!("{server}: {client}");
        match time {
            Ok((t, cpu)) => println!(
                "{label:<45} {:>9.2}s {:>9.0} {:>7.2} {:>7.2} {:>13.2}",
                t.as_secs_f64(),
                rate(*t),
                t.as_secs_f64() / base_up.as_secs_f64(),
                cpu.as_secs_f64(),
                ours.as_secs_f64() / t.as_secs_f64()
            ),
            Err(why) => println!("{label:<45} not measured: {why}"),
        }
    }
    println!(
        "targets (issue 13): upload <= 1.5 x fs, peak RSS <= 64 MiB; gcs upload n/a: \
         fake-gcs-server refuses object_store's upload (the object is planted); ours x plain: \
         our upload (first setting) over the plain client's, both medians; cpu s: the client's \
         CPU time (user + system) per upload, the server's not counted"
    );
}
