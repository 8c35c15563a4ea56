//! Download benchmark (`cargo bench -p coredump-apiserver --bench download`): streams a large
//! core (default 1 GiB of mixed content, `BENCH_CORE_MIB` to change; stored as seekable zstd
//! level 1 like the capture writes it) through the real TLS server and compares, in the same
//! run:
//!
//! * with Caddy's `file_server` (Go `net/http` over `crypto/tls`, built by
//!   `scripts/control-plane/build.sh caddy`) serving the raw core file with the same
//!   certificate: curl downloads from both, HTTP/1.1 and HTTP/2, alternating, `BENCH_RUNS`
//!   (default 3) times each; medians and the time ratio ours / Go. Every byte of both servers'
//!   answers is compared with the raw file once per protocol (untimed).
//! * with `zstd -dc FILE > /dev/null`: the `core` handler without TLS, and over TLS.
//! * `dump` at gzip levels 0 and 1, first-byte latency, and the process RSS peak during 10
//!   parallel `core` downloads (the server runs in this process; the clients discard what they
//!   read, so the RSS is the server's working set plus a small constant).
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "support/baseline.rs"]
mod baseline;
#[path = "../tests/common/blobs.rs"]
mod blobs;
#[path = "../tests/common/pki.rs"]
mod pki;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use coredump_apiserver::auth::{AllowGroupsAuthorizer, AuthLayerState, ClientCertAuthenticator};
use coredump_apiserver::{AppState, Registry};
use coredump_store::BlobPath;
use coredump_store::redb_store::RedbStore;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

const BASE: &str = "/apis/coredump.fujitsu.com/v1alpha1/namespaces/bench";
const MIB: u64 = 1024 * 1024;

/// Core-like content, as issue 15 measured: per MiB, 40 % incompressible, 30 % text-like,
/// 30 % zero pages. Written raw to `raw` (what the Go server serves) and as seekable zstd
/// level 1 to `blob` (what ours decodes).
fn write_core(raw: &std::path::Path, blob: &std::path::Path, size: u64) {
    let mut raw = std::io::BufWriter::new(std::fs::File::create(raw).unwrap());
    let mut enc =
        coredump_seekable::SeekableWriter::new(std::fs::File::create(blob).unwrap(), 1, 2).unwrap();
    let mut block = vec![0u8; MIB as usize];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const WORDS: [&[u8]; 8] = [
        b"coredump ",
        b"segfault ",
        b"0x7ffd3a2c ",
        b"libc.so.6 ",
        b"main\n",
        b"pthread_",
        b"= NULL; ",
        b"ERROR ",
    ];
    for i in 0..size / MIB {
        match i % 10 {
            0..=3 => block
                .chunks_mut(8)
                .for_each(|b| b.copy_from_slice(&next().to_le_bytes()[..b.len()])),
            4..=6 => {
                let mut at = 0;
                while at < block.len() {
                    let w = WORDS[(next() % 8) as usize];
                    let n = w.len().min(block.len() - at);
                    block[at..at + n].copy_from_slice(&w[..n]);
                    at += n;
                }
            }
            _ => block.fill(0),
        }
        raw.write_all(&block).unwrap();
        enc.write_all(&block).unwrap();
    }
    raw.flush().unwrap();
    enc.finish().unwrap();
}

fn rss_kib() -> u64 {
    coredump_testplane::resident_kib(std::process::id()).unwrap_or(0)
}

struct Client {
    tls: tokio_rustls::TlsConnector,
    port: u16,
}

struct Download {
    first_byte: Duration,
    total: Duration,
    bytes: u64,
}

impl Client {
    async fn get(&self, path: &str) -> Download {
        self.get_with(path, None).await.0
    }

    /// `Range: bytes=from-(from+len-1)` of `path`: the download and its bytes (206 expected).
    async fn get_range(&self, path: &str, from: u64, len: u64) -> (Download, Vec<u8>) {
        self.get_with(path, Some((from, len))).await
    }

    /// GET `path` (the whole body, or a range of it), keeping the body only for a range.
    async fn get_with(&self, path: &str, range: Option<(u64, u64)>) -> (Download, Vec<u8>) {
        let start = Instant::now();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let tls = self
            .tls
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = hyper::Request::get(path).header("host", "localhost");
        if let Some((from, len)) = range {
            req = req.header("range", format!("bytes={from}-{}", from + len - 1));
        }
        let resp = send
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        let want = if range.is_some() { 206 } else { 200 };
        assert_eq!(resp.status(), want, "{path}");
        let mut body = resp.into_body();
        let mut first_byte = None;
        let mut bytes = 0u64;
        let mut kept = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                if first_byte.is_none() && !data.is_empty() {
                    first_byte = Some(start.elapsed());
                }
                bytes += data.len() as u64;
                if range.is_some() {
                    kept.extend_from_slice(&data);
                }
            }
        }
        let download = Download {
            first_byte: first_byte.unwrap_or_default(),
            total: start.elapsed(),
            bytes,
        };
        (download, kept)
    }
}

/// Our server on a loopback port, stopped by `stop`.
struct Serving {
    port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn serve(state: AppState, tls: Arc<rustls::ServerConfig>) -> Serving {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(coredump_apiserver::serve_listener(
        listener,
        tls,
        state,
        async {
            let _ = rx.await;
        },
    ));
    Serving { port, stop, task }
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("download: bench");
        return;
    }
    let size_mib: u64 = std::env::var("BENCH_CORE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let size = size_mib * MIB;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(blobs::DirBlobStore::new(dir.path().join("blobs")));
    let path = BlobPath {
        namespace: "bench".into(),
        pod_uid: "pod-uid".into(),
        container: "app".into(),
        file: "core-1.core.zst".into(),
    };
    let blob_file = dir.path().join("blobs/bench/pod-uid/app/core-1.core.zst");
    std::fs::create_dir_all(blob_file.parent().unwrap()).unwrap();
    let raw_dir = dir.path().join("raw");
    std::fs::create_dir_all(&raw_dir).unwrap();
    let raw_file = raw_dir.join("core");
    let t = Instant::now();
    write_core(&raw_file, &blob_file, size);
    let stored = std::fs::metadata(&blob_file).unwrap().len();
    println!(
        "core: {size_mib} MiB raw, {:.1} MiB zstd (written in {:.1?})",
        stored as f64 / MIB as f64,
        t.elapsed()
    );

    // Baseline: the zstd CLI decoding to /dev/null.
    let t = Instant::now();
    let ok = std::process::Command::new("zstd")
        .arg("-dc")
        .arg(&blob_file)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let zstd_time = t.elapsed();
    let zstd_rate = mib_s(size, zstd_time);
    println!("zstd -dc > /dev/null: {zstd_time:.2?} = {zstd_rate:.0} MiB/s");

    let pki = pki::Pki::new();
    let meta = Arc::new(RedbStore::open(&dir.path().join("meta.redb")).unwrap());
    let registry = Registry::new(meta, store.store.clone());
    let mut core: coredump_api::Coredump = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "core-1", "namespace": "bench"},
        "spec": {"podUID": "pod-uid", "containerName": "app", "pid": 1, "signal": 11, "crashTime": "2024-05-01T10:00:00Z"},
        "status": {"state": "Stored", "coreSize": size, "blobPath": "bench/pod-uid/app/core-1.core.zst"}
    })).unwrap();
    core.metadata.namespace = "bench".into();
    registry.create_coredump(core).await.unwrap();
    let mut ep: coredump_api::CoredumpEndpoint = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "pod", "namespace": "bench"}, "spec": {"podUID": "pod-uid"}
    }))
    .unwrap();
    ep.metadata.namespace = "bench".into();
    registry.create_endpoint(ep).await.unwrap();
    let _ = &path;
    let auth = AuthLayerState {
        authenticator: Arc::new(ClientCertAuthenticator::from_pem(pki.ca_pem.as_bytes()).unwrap()),
        authorizer: Arc::new(AllowGroupsAuthorizer::new(vec!["system:masters".into()])),
    };
    let tls = Arc::new(
        coredump_apiserver::tls::server_config(
            pki.server.cert_pem.as_bytes(),
            pki.server.key_pem.as_bytes(),
        )
        .unwrap(),
    );
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    // Prefer AES-128-GCM like Go's TLS client (kubectl, kube-apiserver's proxy) does on AES-NI
    // hardware; rustls alone would pick AES-256-GCM.
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let client_cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(pki.admin.cert_pem.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(pki.admin.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_cfg));

    let mut results = Vec::new();

    // Against Go's net/http (Caddy) serving the raw file, curl the client of both.
    {
        let pem = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let ca = pem("ca.pem", &pki.ca_pem);
        let server_cert = pem("server.pem", &pki.server.cert_pem);
        let server_key = pem("server-key.pem", &pki.server.key_pem);
        let admin = (
            pem("admin.pem", &pki.admin.cert_pem),
            pem("admin-key.pem", &pki.admin.key_pem),
        );
        let caddy_bin = baseline::caddy_binary();
        let caddy = baseline::start_caddy(
            &caddy_bin,
            &dir.path().join("caddy"),
            &raw_dir,
            &server_cert,
            &server_key,
        );
        let mut state = AppState::new(registry.clone(), auth.clone());
        state.dump_gzip_level = 0;
        let Serving {
            port,
            stop: tx,
            task: server,
        } = serve(state, tls.clone()).await;
        let go = baseline::Target {
            url: format!("https://localhost:{}/core", caddy.port),
            ca: ca.clone(),
            client: None,
        };
        let ours = baseline::Target {
            url: format!("https://localhost:{port}{BASE}/coredumps/core-1/core"),
            ca,
            client: Some(admin),
        };
        let runs: usize = std::env::var("BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3)
            .max(1);
        for proto in [baseline::Proto::H1, baseline::Proto::H2] {
            for target in [&go, &ours] {
                let target = target.clone();
                let raw = raw_file.clone();
                tokio::task::spawn_blocking(move || target.verify(proto, &raw))
                    .await
                    .unwrap();
            }
            let (mut go_t, mut our_t) = (Vec::new(), Vec::new());
            for run in 0..runs {
                // Alternate who goes first, so neither always follows the other's cache state.
                let order = if run % 2 == 0 {
                    [true, false]
                } else {
                    [false, true]
                };
                for is_go in order {
                    let target = if is_go { go.clone() } else { ours.clone() };
                    let d = tokio::task::spawn_blocking(move || target.time(proto, size))
                        .await
                        .unwrap();
                    if is_go { &mut go_t } else { &mut our_t }.push(d);
                }
            }
            println!(
                "core over TLS, {} (curl, {runs} runs, byte-identical): Go net/http (Caddy) {:?}, ours {:?}",
                proto.name(),
                go_t,
                our_t
            );
            let (g, o) = (baseline::median(go_t), baseline::median(our_t));
            let ratio = o.as_secs_f64() / g.as_secs_f64();
            println!(
                "  medians: Go {g:.2?} ({:.0} MiB/s), ours {o:.2?} ({:.0} MiB/s): time ours/Go = {ratio:.2}",
                mib_s(size, g),
                mib_s(size, o)
            );
            results.push((
                if proto == baseline::Proto::H1 {
                    "h1_time_ours_over_go"
                } else {
                    "h2_time_ours_over_go"
                },
                ratio,
            ));
        }
        let _ = tx.send(());
        server.await.unwrap();
        drop(caddy);
    }

    // The same handler without TLS or sockets: decode + chunking alone.
    {
        use tower::ServiceExt;
        let mut state = AppState::new(registry.clone(), auth.clone());
        state.dump_gzip_level = 0;
        let mut req = hyper::Request::get(format!("{BASE}/coredumps/core-1/core"))
            .body(axum::body::Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(coredump_apiserver::auth::PeerCertificates(Arc::new(vec![
                CertificateDer::from_pem_slice(pki.admin.cert_pem.as_bytes()).unwrap(),
            ])));
        let t = Instant::now();
        let resp = coredump_apiserver::router(state)
            .oneshot(req)
            .await
            .unwrap();
        let mut body = resp.into_body();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(d) = frame.unwrap().into_data() {
                n += d.len() as u64;
            }
        }
        assert_eq!(n, size);
        let rate = mib_s(n, t.elapsed());
        println!(
            "core without TLS/TCP (in-process router): {:.2?}, {rate:.0} MiB/s = {:.0}% of zstd -dc",
            t.elapsed(),
            100.0 * rate / zstd_rate
        );
        results.push(("core_no_tls_pct_of_zstd", 100.0 * rate / zstd_rate));
    }
    for level in [0u32, 1] {
        let mut state = AppState::new(registry.clone(), auth.clone());
        state.dump_gzip_level = level;
        let Serving {
            port,
            stop: tx,
            task: server,
        } = serve(state, tls.clone()).await;
        let client = Client {
            tls: connector.clone(),
            port,
        };

        if level == 0 {
            let d = client.get(&format!("{BASE}/coredumps/core-1/core")).await;
            assert_eq!(d.bytes, size);
            let rate = mib_s(d.bytes, d.total);
            println!(
                "core: {:.2?}, {rate:.0} MiB/s = {:.0}% of zstd -dc, first byte {:.1?}",
                d.total,
                100.0 * rate / zstd_rate,
                d.first_byte
            );
            results.push(("core_pct_of_zstd", 100.0 * rate / zstd_rate));
            results.push(("core_first_byte_ms", d.first_byte.as_secs_f64() * 1000.0));

            // A 1 MiB `Range` piece at the start, the middle and the end of the core: with
            // seekable frames each costs one frame, wherever it is. Bytes checked against the
            // raw core.
            let piece = MIB.min(size);
            let mut raw = std::fs::File::open(&raw_file).unwrap();
            let mut times = Vec::new();
            for from in [0, size / 2, size - piece] {
                let mut runs = Vec::new();
                for _ in 0..3 {
                    let (d, bytes) = client
                        .get_range(&format!("{BASE}/coredumps/core-1/core"), from, piece)
                        .await;
                    let mut want = vec![0u8; piece as usize];
                    std::io::Seek::seek(&mut raw, std::io::SeekFrom::Start(from)).unwrap();
                    std::io::Read::read_exact(&mut raw, &mut want).unwrap();
                    assert!(
                        bytes == want,
                        "range at {from}: bytes differ from the raw core"
                    );
                    runs.push(d.total);
                }
                let t = baseline::median(runs);
                println!(
                    "core Range 1 MiB at {} MiB: {t:.2?} (median of 3)",
                    from / MIB
                );
                times.push(t);
            }
            let ratio = times[2].as_secs_f64() / times[0].as_secs_f64();
            println!("core Range: piece at the end / piece at the start = {ratio:.2}");
            results.push(("range_end_over_start", ratio));

            // 10 parallel downloads; sample RSS meanwhile.
            let base_rss = rss_kib();
            let done = Arc::new(AtomicBool::new(false));
            let sampler = {
                let done = done.clone();
                std::thread::spawn(move || {
                    let mut peak = 0;
                    while !done.load(Ordering::Relaxed) {
                        peak = peak.max(rss_kib());
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    peak
                })
            };
            let t = Instant::now();
            let client = Arc::new(client);
            let mut tasks = Vec::new();
            for _ in 0..10 {
                let c = client.clone();
                tasks.push(tokio::spawn(async move {
                    c.get(&format!("{BASE}/coredumps/core-1/core")).await
                }));
            }
            let mut total = 0;
            let mut worst_first = Duration::ZERO;
            for t in tasks {
                let d = t.await.unwrap();
                total += d.bytes;
                worst_first = worst_first.max(d.first_byte);
            }
            done.store(true, Ordering::Relaxed);
            let peak = sampler.join().unwrap();
            println!(
                "10 parallel core downloads: {:.2?}, {:.0} MiB/s aggregate, worst first byte {worst_first:.1?}, RSS before {} MiB, peak {} MiB",
                t.elapsed(),
                mib_s(total, t.elapsed()),
                base_rss / 1024,
                peak / 1024
            );
            results.push(("parallel_peak_rss_mib", (peak / 1024) as f64));
            let client = Arc::try_unwrap(client).ok().unwrap();
            let d = client
                .get(&format!("{BASE}/coredumpendpoints/pod/dump"))
                .await;
            report_dump(level, &d, stored, zstd_rate, &mut results);
        } else {
            let d = client
                .get(&format!("{BASE}/coredumpendpoints/pod/dump"))
                .await;
            report_dump(level, &d, stored, zstd_rate, &mut results);
        }
        let _ = tx.send(());
        server.await.unwrap();
    }
    println!(
        "summary: {}",
        results
            .iter()
            .map(|(k, v)| format!("{k}={v:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn report_dump(
    level: u32,
    d: &Download,
    stored: u64,
    zstd_rate: f64,
    results: &mut Vec<(&'static str, f64)>,
) {
    let rate = mib_s(stored, d.total);
    println!(
        "dump (gzip level {level}): {:.2?} for {:.1} MiB of blobs -> {:.1} MiB tar.gz, {rate:.0} MiB/s of blob, first byte {:.1?}",
        d.total,
        stored as f64 / MIB as f64,
        d.bytes as f64 / MIB as f64,
        d.first_byte
    );
    let _ = zstd_rate;
    results.push((
        if level == 0 {
            "dump_l0_mib_s"
        } else {
            "dump_l1_mib_s"
        },
        rate,
    ));
}
