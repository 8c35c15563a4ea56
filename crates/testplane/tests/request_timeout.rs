//! Does kube-apiserver's `--request-timeout` cut a slow download proxied to an aggregated
//! server? Runs its own control plane with `--request-timeout=6s` (the default is 60 s; the
//! mechanism is the same) and streams 10 s worth of body at 640 KiB/s, in several variants at
//! once (one test, so the slow streams overlap instead of queueing behind the test threads).
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::server::FakeServer;
use common::{GROUP, StreamResult, VERSION};
use coredump_testplane::{ControlPlane, ControlPlaneOptions, aggregation, eventually};

const TIMEOUT_S: u64 = 6;
/// 100 pieces of 64 KiB, 100 ms apart: ~10 s, 6.25 MiB.
const CHUNK: u64 = 64 * 1024;
const PIECES: u64 = 100;

struct Setup {
    cp: ControlPlane,
    ns: String,
    server: FakeServer,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let options = ControlPlaneOptions {
            extra_apiserver_args: vec![format!("--request-timeout={TIMEOUT_S}s")],
            ..ControlPlaneOptions::default()
        };
        let cp = ControlPlane::start_with(options).unwrap();
        let ns = cp.create_namespace("timeout").unwrap();
        let server = FakeServer::start(&ns, cp.front_proxy_ca_pem());
        aggregation::register_apiservice(&cp, &ns, server.port, &server.ca.cert_pem()).unwrap();
        aggregation::wait_available(&cp, Duration::from_secs(90)).unwrap();
        Setup { cp, ns, server }
    })
}

/// Streams `…/foos/<name>/<subresource>?<query>&bytes=…&chunk=…&delay_ms=100`.
fn slow(name: &str, subresource: &str, query: &str, kubectl_args: &[&str]) -> StreamResult {
    let s = setup();
    let total = CHUNK * PIECES;
    let path = format!(
        "/apis/{GROUP}/{VERSION}/namespaces/{}/foos/{name}/{subresource}?{query}bytes={total}&chunk={CHUNK}&delay_ms=100",
        s.ns
    );
    let result = common::stream_via_kubectl(&s.cp, &path, kubectl_args);
    let end = eventually(Duration::from_secs(20), "server saw the stream end", || {
        s.server
            .stream_ends()
            .into_iter()
            .find(|e| e.uri.contains(&format!("/foos/{name}/")))
    })
    .unwrap();
    // Our server learns of a cut: its body is dropped, not drained to the end.
    assert_eq!(end.complete, result.success, "{end:?} vs {result:?}");
    println!(
        "{subresource:>5} {query:<13} kubectl {kubectl_args:?}: got {} of {total} bytes in {:.1?}, kubectl ok={} stderr={:?}; server: sent {} complete={}",
        result.bytes,
        result.elapsed,
        result.success,
        result.stderr.trim(),
        end.sent,
        end.complete
    );
    assert_eq!(result.first_bad, None, "corrupted stream: {result:?}");
    result
}

/// What a case should do.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// kubectl fails after about this long with part of the body (all of it correct).
    CutAfter(Duration),
    /// The whole body arrives, taking longer than the server's request timeout.
    Complete,
}

fn check(r: &StreamResult, expect: Expect) -> Result<(), String> {
    let total = CHUNK * PIECES;
    let ok = match expect {
        Expect::CutAfter(after) => {
            !r.success
                && r.bytes < total
                && r.elapsed >= after - Duration::from_millis(500)
                && r.elapsed < after + Duration::from_secs(4)
        }
        Expect::Complete => {
            r.success && r.bytes == total && r.elapsed > Duration::from_secs(TIMEOUT_S)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("expected {expect:?}, got {r:?}"))
    }
}

#[test]
fn request_timeout_cuts_only_non_long_running_requests() {
    let server_limit = Duration::from_secs(TIMEOUT_S);
    let three = Duration::from_secs(3);
    #[rustfmt::skip]
    let cases: [(&str, &str, &str, &[&str], Expect); 7] = [
        // A plain subresource such as our `dump`: cut at --request-timeout.
        ("a", "dump", "", &[], Expect::CutAfter(server_limit)),
        // `log`, `proxy` (also `exec`, `attach`, `portforward`) of any group are long-running.
        ("b", "log", "", &[], Expect::Complete),
        ("c", "proxy", "", &[], Expect::Complete),
        // `watch=true` on a named subresource does not make it a watch.
        ("d", "dump", "watch=true&", &[], Expect::CutAfter(server_limit)),
        // A client's `timeout=` is capped at the server's limit, and can shorten it.
        ("e", "dump", "timeout=60s&", &[], Expect::CutAfter(server_limit)),
        ("f", "dump", "timeout=3s&", &[], Expect::CutAfter(three)),
        // kubectl --request-timeout sends `timeout=` and is also kubectl's client timeout.
        ("g", "dump", "", &["--request-timeout=3s"], Expect::CutAfter(three)),
    ];
    setup();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let running: Vec<_> = cases
            .iter()
            .map(|&(name, subresource, query, args, expect)| {
                scope.spawn(move || check(&slow(name, subresource, query, args), expect))
            })
            .collect();
        running
            .into_iter()
            .filter_map(|handle| handle.join().unwrap().err())
            .collect()
    });
    assert!(failures.is_empty(), "{failures:#?}");
}
