//! Lists at scale (issue 15 item 4): our `coredump-detector apiserver` process behind the real
//! kube-apiserver's aggregator, on its production store (its own etcd) and on the embedded
//! store, against kube-apiserver serving as many custom resources of the same content (a CRD
//! whose objects carry our records' `spec` and `status`), all in one run:
//!
//! * creation rate through the aggregator (`--concurrency` requests in flight) vs creating
//!   the custom resources;
//! * paging with `limit=500`: the time of every page, first against last (a page deep in the
//!   list must cost what the first does);
//! * the unchunked list (`Table`, as kubectl asks, and JSON), time to the last byte and the
//!   CPU time each server process (ours, the aggregator, each etcd) spent on it, and
//!   `kubectl get -A --chunk-size=0` whole;
//! * our server's resident memory (sampled every 20 ms from `/proc`) after loading, with
//!   `--watchers` watches open (each must see every one of 500 further creations), and its peak
//!   during the paged and unchunked lists.
//!
//! `cargo bench -p coredump-detector --bench lists [-- --records 100000 --watchers 10
//! --concurrency 32 --stores etcd,embedded]`. Runs minutes per 100 000 records on 2 cores.

// A benchmark is test code: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used)]

#[path = "../tests/aggregated/mod.rs"]
mod aggregated;
#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aggregated::ApiServer;
use coredump_testplane::{ControlPlane, TestCa, aggregation};
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use serde_json::{Value, json};

const OURS: &str = "/apis/coredump.fujitsu.com/v1alpha1";
const CRD_GROUP: &str = "bench.coredump.test";
const THEIRS: &str = "/apis/bench.coredump.test/v1";
const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
const PAGE: usize = 500;
const WATCHED_CREATIONS: usize = 500;

struct Options {
    records: usize,
    watchers: usize,
    concurrency: usize,
    stores: Vec<String>,
}

fn options() -> Options {
    let mut o = Options {
        records: 100_000,
        watchers: 10,
        concurrency: 32,
        stores: vec!["etcd".into(), "embedded".into()],
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--records" => o.records = value().parse().unwrap(),
            "--watchers" => o.watchers = value().parse().unwrap(),
            "--concurrency" => o.concurrency = value().parse().unwrap(),
            "--stores" => o.stores = value().split(',').map(str::to_owned).collect(),
            _ => {} // `cargo bench` passes `--bench`
        }
    }
    o
}

/// The record of crash `i`: what the agent writes, `kind` and `apiVersion` aside.
fn record(api_version: &str, kind: &str, i: usize) -> Value {
    let (ns, uid) = (format!("bench-{}", i % 4), format!("uid-{:06}", i / 3));
    json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": format!("crash-{i:06}"), "namespace": ns, "labels": {"app": "web"}},
        "spec": {"nodeName": "node-1", "podName": format!("web-{}", i % 50), "podUID": uid,
                 "containerName": "app", "pid": 42 + i, "signal": 11, "signalName": "SIGSEGV",
                 "executable": "/usr/local/bin/app", "crashTime": "2026-12-01T10:00:00Z"},
        "status": {"state": "Stored", "coreSize": 3 << 20, "compression": "zstd",
                   "blobPath": format!("{ns}/{uid}/app/crash-{i:06}.core.zst")}
    })
}

fn post(base: &str, object: &Value) -> http::Request<Vec<u8>> {
    let ns = object["metadata"]["namespace"].as_str().unwrap();
    let plural = if base == OURS {
        "coredumps"
    } else {
        "bulkcores"
    };
    http::Request::post(format!("{base}/namespaces/{ns}/{plural}"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(object).unwrap())
        .unwrap()
}

/// Creates records `range` of `(api_version, kind)` under `base`, `concurrency` at a time;
/// returns records per second.
async fn create(
    client: &kube::Client,
    base: &str,
    (api_version, kind): (&str, &str),
    range: std::ops::Range<usize>,
    concurrency: usize,
) -> f64 {
    let n = range.len();
    let start = Instant::now();
    futures::stream::iter(range)
        .map(|i| client.request_text(post(base, &record(api_version, kind, i))))
        .buffer_unordered(concurrency)
        .try_for_each(|_| async { Ok(()) })
        .await
        .unwrap_or_else(|e| panic!("creating under {base}: {e}"));
    n as f64 / start.elapsed().as_secs_f64()
}

/// Bytes of the body of GET `uri` with `accept`, and the time to its last byte.
async fn get_all(client: &kube::Client, uri: &str, accept: &str) -> (u64, Duration) {
    let start = Instant::now();
    let req = http::Request::get(uri)
        .header("accept", accept)
        .body(Vec::new())
        .unwrap();
    let body = client.request_stream(req).await.unwrap();
    let n = futures::io::copy(body, &mut futures::io::sink())
        .await
        .unwrap();
    (n, start.elapsed())
}

/// Pages through `list` with `limit=500`; each page's time, and the number of items seen.
async fn pages(client: &kube::Client, list: &str) -> (Vec<Duration>, usize) {
    let (mut times, mut seen, mut token) = (Vec::new(), 0, None::<String>);
    for _ in 0..1_000_000 / PAGE {
        let uri = match &token {
            Some(t) => format!("{list}?limit={PAGE}&continue={t}"),
            None => format!("{list}?limit={PAGE}"),
        };
        let start = Instant::now();
        let page: Value = client
            .request(http::Request::get(uri).body(Vec::new()).unwrap())
            .await
            .unwrap();
        times.push(start.elapsed());
        seen += page["items"].as_array().map_or(0, Vec::len);
        // kube-apiserver ends a custom resources' list with `"continue": ""`.
        let next = page["metadata"]["continue"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        assert!(
            next.is_none() || next != token,
            "the continue token did not move: {next:?}"
        );
        token = next;
        if token.is_none() {
            break;
        }
    }
    (times, seen)
}

/// One unchunked list, three ways: times to the last byte (and sizes) as `Table` and as JSON,
/// and `kubectl get -A --chunk-size=0` whole.
struct Unchunked {
    table: (u64, Duration),
    json: (u64, Duration),
    kubectl: Duration,
    /// CPU time of the server processes during the `Table` list, and during the JSON list.
    table_cpu: String,
    json_cpu: String,
}

fn unchunked(
    rt: &tokio::runtime::Runtime,
    client: &kube::Client,
    cp: &ControlPlane,
    uri: &str,
    resource: &str,
    servers: &[(&str, u32)],
) -> Unchunked {
    let before = cpu_of(servers);
    let table = rt.block_on(get_all(client, uri, TABLE_ACCEPT));
    let table_cpu = spent(servers, &before);
    let before = cpu_of(servers);
    let json = rt.block_on(get_all(client, uri, "application/json"));
    let json_cpu = spent(servers, &before);
    Unchunked {
        table,
        json,
        kubectl: kubectl_unchunked(cp, resource),
        table_cpu,
        json_cpu,
    }
}

/// CPU seconds used so far by each of `servers` (name, pid).
fn cpu_of(servers: &[(&str, u32)]) -> Vec<f64> {
    servers
        .iter()
        .map(|(_, pid)| coredump_testplane::cpu_seconds(*pid).unwrap_or(0.0))
        .collect()
}

/// What each of `servers` used since `before`, as "name 1.23 s".
fn spent(servers: &[(&str, u32)], before: &[f64]) -> String {
    servers
        .iter()
        .zip(cpu_of(servers).iter().zip(before))
        .map(|((name, _), (now, then))| format!("{name} {:.2} s", now - then))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Unchunked {
    /// The figures, with their ratios to `baseline`'s when given.
    fn describe(&self, baseline: Option<&Unchunked>) -> String {
        let ratio = |ours: Duration, theirs: fn(&Unchunked) -> Duration| {
            baseline.map_or(String::new(), |b| {
                format!(", {:.2}x", ours.as_secs_f64() / theirs(b).as_secs_f64())
            })
        };
        format!(
            "Table {:.2} s ({} MiB{}; CPU {}), JSON {:.2} s ({} MiB{}; CPU {}), kubectl get -A --chunk-size=0 {:.2} s{}",
            self.table.1.as_secs_f64(),
            self.table.0 >> 20,
            ratio(self.table.1, |b| b.table.1),
            self.table_cpu,
            self.json.1.as_secs_f64(),
            self.json.0 >> 20,
            ratio(self.json.1, |b| b.json.1),
            self.json_cpu,
            self.kubectl.as_secs_f64(),
            ratio(self.kubectl, |b| b.kubectl),
        )
    }
}

/// `kubectl get <resource> -A --chunk-size=0` to /dev/null, whole.
fn kubectl_unchunked(cp: &ControlPlane, resource: &str) -> Duration {
    let start = Instant::now();
    let status = cp
        .kubectl_command(&[
            "get",
            resource,
            "-A",
            "--chunk-size=0",
            "--request-timeout=300s",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "kubectl get {resource}");
    start.elapsed()
}

/// Resident memory of one process, sampled every 20 ms: the current value and the peak since
/// the last [`Rss::reset`].
struct Rss {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    pid: u32,
}

fn rss_kib(pid: u32) -> u64 {
    coredump_testplane::resident_kib(pid).unwrap_or(0)
}

impl Rss {
    fn watch(pid: u32) -> Rss {
        let (peak, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (p, s) = (Arc::clone(&peak), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Rss { peak, stop, pid }
    }
    fn now_mib(&self) -> f64 {
        rss_kib(self.pid) as f64 / 1024.0
    }
    fn reset(&self) {
        self.peak.store(rss_kib(self.pid), Ordering::Relaxed);
    }
    fn peak_mib(&self) -> f64 {
        self.peak.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for Rss {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// First page, median, last page (ms), and the mean of the last tenth over the first tenth.
fn page_summary(times: &[Duration]) -> (f64, f64, f64, f64) {
    let mut sorted: Vec<f64> = times.iter().copied().map(ms).collect();
    let (first, last) = (sorted[0], sorted[sorted.len() - 1]);
    let tenth = (times.len() / 10).max(1);
    let mean = |s: &[Duration]| s.iter().copied().map(ms).sum::<f64>() / s.len() as f64;
    let ratio = mean(&times[times.len() - tenth..]) / mean(&times[..tenth]);
    sorted.sort_by(f64::total_cmp);
    (first, sorted[sorted.len() / 2], last, ratio)
}

/// The custom resource of the baseline: any content, namespaced, no validation beyond JSON.
fn crd(cp: &ControlPlane) {
    aggregated::submit(
        cp,
        "apply",
        &json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("bulkcores.{CRD_GROUP}")},
            "spec": {"group": CRD_GROUP, "scope": "Namespaced",
                     "names": {"plural": "bulkcores", "singular": "bulkcore", "kind": "BulkCore"},
                     "versions": [{"name": "v1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                              "x-kubernetes-preserve-unknown-fields": true}}}]}
        }),
    );
    let out = cp
        .kubectl_command(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/bulkcores.{CRD_GROUP}"),
            "--timeout=60s",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "CRD not established");
}

/// One of our servers behind the aggregator: `etcd` (its own etcd) or `embedded`.
fn start_ours(
    cp: &ControlPlane,
    store: &str,
    dir: &Path,
    system: &str,
) -> (ApiServer, Option<coredump_testplane::EtcdProcess>) {
    let kubeconfig = aggregated::api_server_identity(cp, system, dir);
    let ca = TestCa::new("coredump-serving-ca").unwrap();
    let blobs = dir.join("cores");
    std::fs::create_dir_all(&blobs).unwrap();
    let (server, etcd) = if store == "etcd" {
        let etcd = coredump_testplane::start_etcd(&dir.join("etcd")).unwrap();
        let server = ApiServer::start(dir, &ca, system, &etcd.url(), &blobs, &kubeconfig);
        (server, Some(etcd))
    } else {
        let serving = aggregation::write_serving_cert(&ca, system, dir).unwrap();
        let args = vec![
            "apiserver".to_owned(),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--tls-cert-file={}", serving.cert.display()),
            format!("--tls-private-key-file={}", serving.key.display()),
            format!("--local-path={}", blobs.display()),
            "--backend-kind=local".to_owned(),
            format!("--data-dir={}", dir.join("data").display()),
            format!("--kubeconfig={}", kubeconfig.display()),
            "--delegated-auth=on".to_owned(),
        ];
        (ApiServer::start_with(args, dir.join("apiserver.log")), None)
    };
    aggregated::register_apiservice(cp, system, server.port, &ca.cert_pem());
    aggregation::wait_available(cp, Duration::from_secs(120)).unwrap();
    // The APIService may still show the previous store's server as available: wait until the
    // aggregator reaches this one (an empty store).
    aggregated::eventually(
        Duration::from_secs(60),
        "the new server behind the aggregator",
        || {
            let out = cp.kubectl(&["get", "--raw", &format!("{OURS}/coredumps?limit=1")]);
            let list: Value = serde_json::from_slice(&out.stdout).ok()?;
            list["items"]
                .as_array()
                .is_some_and(Vec::is_empty)
                .then_some(())
        },
    );
    (server, etcd)
}

/// `n` watches of all namespaces from `rv`; each counts the ADDED events it reads.
fn open_watchers(
    rt: &tokio::runtime::Runtime,
    client: &kube::Client,
    n: usize,
    rv: &str,
) -> Vec<Arc<AtomicU64>> {
    (0..n)
        .map(|_| {
            let added = Arc::new(AtomicU64::new(0));
            let (client, counter) = (client.clone(), Arc::clone(&added));
            let uri = format!("{OURS}/coredumps?watch=1&resourceVersion={rv}");
            rt.spawn(async move {
                let req = http::Request::get(uri).body(Vec::new()).unwrap();
                let mut lines = client.request_stream(req).await.unwrap().lines();
                while let Some(Ok(line)) = lines.next().await {
                    if line.starts_with("{\"type\":\"ADDED\"") {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            added
        })
        .collect()
}

fn main() {
    let o = options();
    let cp = coredump_testplane::shared().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(cp.kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    });
    for ns in 0..4 {
        let name = format!("bench-{ns}");
        aggregated::submit(
            cp,
            "apply",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        );
    }
    crd(cp);
    println!(
        "lists bench: {} records, {} watchers, {} creations in flight",
        o.records, o.watchers, o.concurrency
    );

    let theirs = (format!("{CRD_GROUP}/v1"), "BulkCore");
    let their_rate = rt.block_on(create(
        &client,
        THEIRS,
        (&theirs.0, theirs.1),
        0..o.records,
        o.concurrency,
    ));
    println!("kube-apiserver, custom resources: created {their_rate:.0}/s");
    let (times, seen) = rt.block_on(pages(&client, &format!("{THEIRS}/bulkcores")));
    assert_eq!(seen, o.records, "kube-apiserver pages");
    let (first, median, last, ratio) = page_summary(&times);
    println!(
        "kube-apiserver: {} pages of {PAGE}: first {first:.1} ms, median {median:.1} ms, last {last:.1} ms, last tenth / first tenth {ratio:.2}",
        times.len()
    );
    let theirs_unchunked = unchunked(
        &rt,
        &client,
        cp,
        &format!("{THEIRS}/bulkcores"),
        "bulkcores",
        &[
            ("kube-apiserver", cp.apiserver_pid()),
            ("its etcd", cp.etcd_pid()),
        ],
    );
    println!(
        "kube-apiserver unchunked: {}",
        theirs_unchunked.describe(None)
    );

    for store in &o.stores {
        let dir = tempfile::Builder::new()
            .prefix("cdd-lists-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let system = cp.create_namespace("coredump-system").unwrap();
        let (server, etcd) = start_ours(cp, store, dir.path(), &system);
        let rss = Rss::watch(server.pid().unwrap());
        let start_mib = rss.now_mib();
        let ours = ("coredump.fujitsu.com/v1alpha1", "Coredump");
        let rate = rt.block_on(create(&client, OURS, ours, 0..o.records, o.concurrency));
        println!(
            "ours ({store}): created {rate:.0}/s through the aggregator ({:.2}x kube-apiserver's custom resources); RSS {start_mib:.0} MiB at start, {:.0} MiB after, peak {:.0} MiB",
            rate / their_rate,
            rss.now_mib(),
            rss.peak_mib()
        );

        // Watchers from now on; each must see every later creation.
        let list: Value = rt
            .block_on(
                client.request(
                    http::Request::get(format!("{OURS}/coredumps?limit=1"))
                        .body(Vec::new())
                        .unwrap(),
                ),
            )
            .unwrap();
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned();
        let watchers = open_watchers(&rt, &client, o.watchers, &rv);
        std::thread::sleep(Duration::from_secs(2));
        rt.block_on(create(
            &client,
            OURS,
            ours,
            o.records..o.records + WATCHED_CREATIONS,
            o.concurrency,
        ));
        let deadline = Instant::now() + Duration::from_secs(120);
        while watchers
            .iter()
            .any(|w| w.load(Ordering::Relaxed) < WATCHED_CREATIONS as u64)
        {
            assert!(
                Instant::now() < deadline,
                "watchers did not see every creation in 120 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let total = o.records + WATCHED_CREATIONS;
        println!(
            "ours ({store}): {total} records, {} watchers each saw {WATCHED_CREATIONS} creations; RSS {:.0} MiB",
            o.watchers,
            rss.now_mib()
        );

        rss.reset();
        let (times, seen) = rt.block_on(pages(&client, &format!("{OURS}/coredumps")));
        assert_eq!(seen, total, "our pages");
        let (first, median, last, ratio) = page_summary(&times);
        println!(
            "ours ({store}): {} pages of {PAGE}: first {first:.1} ms, median {median:.1} ms, last {last:.1} ms, last tenth / first tenth {ratio:.2}; peak RSS {:.0} MiB",
            times.len(),
            rss.peak_mib()
        );
        rss.reset();
        let mut servers = vec![
            ("ours", server.pid().unwrap()),
            ("kube-apiserver (aggregator)", cp.apiserver_pid()),
        ];
        if let Some(etcd) = &etcd {
            servers.push(("our etcd", etcd.pid()));
        }
        let ours_unchunked = unchunked(
            &rt,
            &client,
            cp,
            &format!("{OURS}/coredumps"),
            "coredumps",
            &servers,
        );
        println!(
            "ours ({store}) unchunked: {}; peak RSS {:.0} MiB with {} watchers",
            ours_unchunked.describe(Some(&theirs_unchunked)),
            rss.peak_mib(),
            o.watchers
        );
    }
}
