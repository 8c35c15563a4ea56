//! The shared conformance suite against a real etcd (Debian's etcd 3.4, installed by
//! `scripts/install-deps.sh`), plus what only a networked store must survive: etcd restarted
//! on the same data directory, etcd dead or frozen (a prompt `Backend` error, never a hang), and
//! the key layout other tools see.
//!
//! Each test starts its own etcd on free loopback ports with a temporary data directory; the
//! process is killed when its handle drops and, through `PR_SET_PDEATHSIG`, if the test process
//! dies first.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

// Each test binary uses part of the shared suite's helpers.
#[allow(dead_code)]
mod conformance;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use conformance::{key, value};
use coredump_store::etcd_store::{EtcdOptions, EtcdStore};
use coredump_store::{MetadataStore, Precondition, StoreError};
use futures::StreamExt;

/// One etcd server owned by a test.
struct Etcd {
    child: Option<Child>,
    data_dir: PathBuf,
    log: PathBuf,
    client_port: u16,
    peer_port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Etcd {
    /// Starts etcd with its data under `dir` and waits until it answers.
    async fn start(dir: &Path) -> Self {
        let mut last_log = String::new();
        for _ in 0..3 {
            let mut etcd = Etcd {
                child: None,
                data_dir: dir.join("data"),
                log: dir.join("etcd.log"),
                client_port: free_port(),
                peer_port: free_port(),
            };
            etcd.spawn();
            if etcd.wait_ready().await {
                return etcd;
            }
            // Most likely a port taken between probing and binding: try other ports.
            last_log = std::fs::read_to_string(&etcd.log).unwrap_or_default();
        }
        panic!("etcd did not start; last log:\n{last_log}");
    }

    /// Starts the etcd binary on this handle's ports and data directory.
    #[allow(unsafe_code)]
    fn spawn(&mut self) {
        use std::os::unix::process::CommandExt;
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(std::env::var_os("ETCD_BIN").unwrap_or_else(|| "etcd".into()));
        cmd.args(["--name", "store-test", "--data-dir"])
            .arg(&self.data_dir)
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("store-test={peer}")])
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // SAFETY: the closure runs in the forked child before exec and only makes the prctl
        // system call (async-signal-safe, no allocation, no locks). It makes the kernel kill
        // etcd if the test thread that spawned it dies, so no etcd outlives a crashed test.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        match cmd.spawn() {
            Ok(child) => self.child = Some(child),
            Err(e) => panic!("cannot run etcd ({e}): run scripts/install-deps.sh"),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn pid(&self) -> rustix::process::Pid {
        let id = self.child.as_ref().unwrap().id();
        rustix::process::Pid::from_raw(i32::try_from(id).unwrap()).unwrap()
    }

    /// Polls until etcd answers (true) or exits / 30 s pass (false).
    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                return false;
            }
            if quick_store(&self.endpoint(), "/ready").await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// SIGKILL and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills etcd and starts it again on the same ports and data directory.
    async fn restart(&mut self) {
        self.kill();
        self.spawn();
        assert!(
            self.wait_ready().await,
            "etcd did not come back after a restart"
        );
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped process ignores SIGKILL until continued on some kernels' ptrace paths;
            // continuing first is harmless.
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0))
                    .unwrap_or(rustix::process::Pid::INIT),
                rustix::process::Signal::CONT,
            );
        }
        self.kill();
    }
}

/// A store with short timeouts, for readiness polling and failure tests.
async fn quick_store(endpoint: &str, prefix: &str) -> Result<EtcdStore, StoreError> {
    let options = EtcdOptions {
        request_timeout: Duration::from_secs(2),
        keep_alive: Duration::from_secs(2),
        tls: None,
    };
    EtcdStore::connect_with(&[endpoint.to_owned()], prefix, options).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_passes_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(dir.path()).await;
    let endpoint = etcd.endpoint();
    let n = AtomicUsize::new(0);
    conformance::run_all(|| {
        let prefix = format!("/conformance/{}", n.fetch_add(1, Ordering::SeqCst));
        let endpoints = vec![endpoint.clone()];
        async move { EtcdStore::connect(&endpoints, &prefix).await.unwrap() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restarted_on_the_same_data_dir_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Arc::new(tokio::sync::Mutex::new(Etcd::start(dir.path()).await));
    let opened = AtomicUsize::new(0);
    conformance::check_persistence(|| {
        let etcd = Arc::clone(&etcd);
        let first = opened.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            let mut etcd = etcd.lock().await;
            if !first {
                etcd.restart().await; // SIGKILL: acknowledged writes must be on disk
            }
            EtcdStore::connect(&[etcd.endpoint()], "/persist")
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(opened.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_live_at_prefix_resource_namespace_name() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(dir.path()).await;
    let a = EtcdStore::connect(&[etcd.endpoint()], "/tenant-a/")
        .await
        .unwrap();
    let b = EtcdStore::connect(&[etcd.endpoint()], "/tenant-b")
        .await
        .unwrap();
    assert_eq!(a.prefix(), "/tenant-a");
    let rev = a.create(&key("ns", "x"), value("in a")).await.unwrap();

    // What other etcd clients (etcdctl, the seed's tooling) see.
    let mut raw = etcd_client::Client::connect([etcd.endpoint()], None)
        .await
        .unwrap();
    let resp = raw.get("/tenant-a/coredumps/ns/x", None).await.unwrap();
    let kv = &resp.kvs()[0];
    assert_eq!(kv.value(), value("in a").as_ref());
    assert_eq!(u64::try_from(kv.mod_revision()).unwrap(), rev);

    // Prefixes keep stores apart.
    assert_eq!(b.get(&key("ns", "x")).await.unwrap(), None);
    let listed = b
        .list(&coredump_store::ListRequest {
            resource: conformance::RESOURCE.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    b.create(&key("ns", "x"), value("in b")).await.unwrap();
    assert_eq!(
        a.get(&key("ns", "x")).await.unwrap().unwrap().value,
        value("in a")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_etcd_is_a_prompt_backend_error_and_the_store_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = Etcd::start(dir.path()).await;
    let store = quick_store(&etcd.endpoint(), "/recover").await.unwrap();
    let r1 = store.create(&key("ns", "x"), value("1")).await.unwrap();
    let mut watch = store.watch(conformance::RESOURCE, None, r1).await.unwrap();

    etcd.kill();
    let started = Instant::now();
    let err = store.get(&key("ns", "x")).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    match &err {
        StoreError::Backend { operation, .. } => assert!(operation.contains("etcd"), "{operation}"),
        other => panic!("want Backend, got {other:?}"),
    }
    let err = store
        .update(&key("ns", "x"), value("2"), Precondition::None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
    // The open watch ends with an error instead of going silent.
    let ended = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap();
    assert!(
        matches!(ended, Some(Err(StoreError::Backend { .. }))),
        "{ended:?}"
    );

    etcd.spawn();
    assert!(etcd.wait_ready().await);
    // The same store object reconnects by itself.
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        match store.get(&key("ns", "x")).await {
            Ok(got) => break got,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("store did not recover: {e}"),
        }
    };
    assert_eq!(got.map(|o| (o.revision, o.value)), Some((r1, value("1"))));
    let r2 = store
        .update(&key("ns", "x"), value("2"), Precondition::Revision(r1))
        .await
        .unwrap();
    assert!(r2 > r1);
}

/// Waits (at most 10 s) until every thread of `pid` is in the stopped state (`T` in
/// `/proc/<pid>/task/<tid>/stat`).
fn wait_all_threads_stopped(pid: rustix::process::Pid) {
    let tasks = PathBuf::from(format!("/proc/{}/task", pid.as_raw_nonzero()));
    let running = || -> Vec<String> {
        let entries = std::fs::read_dir(&tasks).unwrap();
        entries
            .filter_map(|task| {
                let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
                // "<tid> (<comm>) <state> ...": comm may hold spaces and parentheses.
                let stopped = stat.rsplit_once(") ")?.1.starts_with("T ");
                (!stopped).then_some(stat)
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = running();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "threads not stopped: {left:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_etcd_is_a_timeout_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(dir.path()).await;
    let store = quick_store(&etcd.endpoint(), "/frozen").await.unwrap();
    store.create(&key("ns", "x"), value("1")).await.unwrap();

    rustix::process::kill_process(etcd.pid(), rustix::process::Signal::STOP).unwrap();
    // kill(2) returns before the group stop is done: each thread stops when it next runs, and
    // on a loaded machine etcd answered two requests meanwhile. Frozen means every thread is.
    wait_all_threads_stopped(etcd.pid());
    let started = Instant::now();
    let results = [
        store.get(&key("ns", "x")).await.map(|_| ()),
        store.create(&key("ns", "y"), value("1")).await.map(|_| ()),
        store.current_revision().await.map(|_| ()),
    ];
    let elapsed = started.elapsed();
    rustix::process::kill_process(etcd.pid(), rustix::process::Signal::CONT).unwrap();
    for r in &results {
        match r {
            // Our deadline or the client's own (the same length) fires first: both are Backend.
            Err(StoreError::Backend { operation, .. }) => {
                assert!(operation.starts_with("etcd "), "{operation}")
            }
            other => panic!("want a timeout, got {other:?}"),
        }
    }
    assert!(
        elapsed < Duration::from_secs(9),
        "three 2 s timeouts took {elapsed:?}"
    );
    // Thawed, it answers again, and the write that timed out did not half-happen.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.get(&key("ns", "x")).await {
            Ok(got) => {
                assert_eq!(got.unwrap().value, value("1"));
                break;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("store did not recover: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_nothing_fails_fast() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let err = quick_store(&endpoint, "/nothing").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    match err {
        StoreError::Backend { operation, .. } => assert!(operation.contains("etcd"), "{operation}"),
        other => panic!("want Backend, got {other:?}"),
    }
}
