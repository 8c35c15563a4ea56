//! From crash to cause on the real kernel: native crashers (C with debug information, Rust with
//! `panic = "abort"`, Go with `GOTRACEBACK=crash`) crash under a real `coredump-detector
//! standalone`; the record carries a symbolized backtrace and a signature, and the crashed
//! program's executable is kept by build ID beside the namespace's cores. Every test holds the
//! machine-wide kernel-settings lock and restores `core_pattern`.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Standalone;
use coredump_api::{Coredump, SIGNATURE_LABEL};

fn crash(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> u32 {
    common::crash_native(bin, args, env)
}

fn functions(c: &Coredump) -> Vec<String> {
    let a = c.status.analysis.as_ref().expect("an analysis");
    a.threads[0]
        .frames
        .iter()
        .map(|f| f.function.clone().unwrap_or_default())
        .collect()
}

fn build_id(c: &Coredump) -> String {
    c.status.analysis.as_ref().unwrap().modules[0]
        .build_id
        .clone()
        .expect("the executable's build ID")
}

fn check_c_crash(sa: &Standalone) {
    let c = coredump_testkit::native::c();
    let pid = crash(&c.debug, &["segv"], &[]);
    let record = sa.wait_record(pid, Duration::from_secs(60));
    let names = functions(&record);
    assert_eq!(
        &names[..3],
        ["store_value", "parse_record", "main"],
        "{record:#?}"
    );
    let top = &record.status.analysis.as_ref().unwrap().threads[0].frames[0];
    assert!(top.file.as_deref().unwrap().ends_with("crash.c"), "{top:?}");
    assert!(top.line.is_some());
    // The signature is on the record and its label.
    assert_eq!(record.status.signature.len(), 16, "{record:#?}");
    assert_eq!(
        record.metadata.labels.get(SIGNATURE_LABEL),
        Some(&record.status.signature)
    );
    // The executable is kept by build ID, byte for byte.
    let id = build_id(&record);
    let kept = sa
        .data()
        .join("blobs/host/.buildid")
        .join(&id)
        .join("executable");
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        std::fs::read(&c.debug).unwrap()
    );

    // The same bug again: one signature; its binary is not copied again.
    let again = sa.wait_record(crash(&c.debug, &["segv"], &[]), Duration::from_secs(60));
    assert_eq!(again.status.signature, record.status.signature);
    // Another bug in the same program: another signature.
    let other = sa.wait_record(crash(&c.debug, &["other"], &[]), Duration::from_secs(60));
    assert_ne!(other.status.signature, record.status.signature);
    assert_eq!(functions(&other)[..2], ["average", "main"]);
}

#[test]
fn c_crash_through_the_pipe_is_symbolized_and_its_binary_kept() {
    let sa = Standalone::start(&[]);
    check_c_crash(&sa);
}

#[test]
fn c_crash_through_the_socket_is_symbolized_and_its_binary_kept() {
    let sa = Standalone::start_socket(&[]);
    check_c_crash(&sa);
}

#[test]
fn multithreaded_crash_lists_every_thread() {
    let sa = Standalone::start(&[]);
    let c = coredump_testkit::native::c();
    let record = sa.wait_record(crash(&c.debug, &["threads"], &[]), Duration::from_secs(60));
    let a = record.status.analysis.as_ref().unwrap();
    assert_eq!(a.threads.len(), 6, "{a:#?}");
    assert!(a.threads[0].crashed);
    assert_eq!(
        functions(&record)[..2],
        ["worker_crash_inner", "worker_crash"]
    );
}

#[test]
fn rust_panic_abort_is_symbolized() {
    let sa = Standalone::start(&[]);
    let bin = coredump_testkit::native::rust_abort();
    let record = sa.wait_record(crash(bin, &["port"], &[]), Duration::from_secs(60));
    assert_eq!(record.spec.signal, 6);
    let names = functions(&record);
    assert!(names.iter().any(|n| n == "panic::parse_port"), "{names:#?}");
    assert!(!record.status.signature.is_empty());
}

#[test]
fn go_gotraceback_crash_is_symbolized() {
    let sa = Standalone::start(&[]);
    let bin = coredump_testkit::native::go();
    let record = sa.wait_record(
        crash(bin, &[], &[("GOTRACEBACK", "crash")]),
        Duration::from_secs(60),
    );
    let names = functions(&record);
    assert!(
        names.iter().any(|n| n == "main.store") && names.iter().any(|n| n == "main.main"),
        "{:#?}",
        record.status.analysis.as_ref().unwrap().threads[0]
    );
    // Through Go's signal handler, its re-raise and the injected runtime.sigpanic call down to
    // the faulting function and its callers, in order.
    let at = |n: &str| names.iter().position(|f| f == n).unwrap();
    assert!(at("runtime.sigpanic") < at("main.store"));
    assert!(at("main.store") < at("main.parse") && at("main.parse") < at("main.main"));
    assert!(!record.status.signature.is_empty());
}

/// `kubectl proxy` on a free port; killed on drop.
struct Proxy {
    child: std::process::Child,
    port: u16,
}

impl Proxy {
    fn start(sa: &Standalone) -> Proxy {
        use std::io::BufRead;
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(sa.kubeconfig())
            .args(["proxy", "--port=0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Starting to serve on 127.0.0.1:PORT"
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("kubectl proxy said {line:?}"));
        Proxy { child, port }
    }

    fn debuginfod_url(&self, namespace: &str) -> String {
        format!(
            "http://127.0.0.1:{}/apis/coredump.fujitsu.com/v1alpha1/namespaces/{namespace}",
            self.port
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl(url: &str) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}", url])
        .output()
        .unwrap();
    let mut body = out.stdout;
    let split = body.iter().rposition(|&b| b == b'\n').unwrap();
    let code = String::from_utf8_lossy(&body[split + 1..]).parse().unwrap();
    body.truncate(split);
    (code, body)
}

/// gdb with `DEBUGINFOD_URLS` at our endpoint, on `core`, in a fresh debuginfod cache.
fn gdb_bt(core: &Path, debuginfod: Option<&str>) -> String {
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("gdb");
    cmd.args(["-nx", "-batch", "-ex", "set debuginfod enabled on", "-ex"])
        .arg(format!("core-file {}", core.display()))
        .args(["-ex", "bt"])
        .env("DEBUGINFOD_CACHE_PATH", cache.path())
        .env("XDG_CACHE_HOME", cache.path())
        .env_remove("DEBUGINFOD_URLS")
        .stdin(Stdio::null());
    if let Some(url) = debuginfod {
        cmd.env("DEBUGINFOD_URLS", url);
    }
    let out = cmd.output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn gdb_opens_a_core_through_the_debuginfod_endpoint_with_no_local_binary() {
    let sa = Standalone::start(&["--listen", "127.0.0.1:0"]);
    let c = coredump_testkit::native::c();
    // The crashed program lives in a directory that is gone before gdb runs.
    let app_dir = tempfile::Builder::new()
        .prefix("cdd-app-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let app = app_dir.path().join("app");
    std::fs::copy(&c.debug, &app).unwrap();
    let record = sa.wait_record(crash(&app, &["segv"], &[]), Duration::from_secs(60));
    let id = build_id(&record);
    let work = tempfile::tempdir().unwrap();
    let core = work.path().join("core");
    std::fs::write(&core, sa.export(&record.metadata.name)).unwrap();
    drop(app_dir);

    let proxy = Proxy::start(&sa);
    let base = proxy.debuginfod_url("host");
    // The endpoint serves the executable byte for byte; unknown IDs are 404.
    let (code, body) = curl(&format!("{base}/buildid/{id}/executable"));
    assert_eq!(code, 200);
    assert_eq!(body, std::fs::read(&c.debug).unwrap());
    let (code, _) = curl(&format!("{base}/buildid/{id}/debuginfo"));
    assert_eq!(code, 200, "an unstripped executable is its own debuginfo");
    let (code, _) = curl(&format!("{base}/buildid/{}/executable", "ab".repeat(20)));
    assert_eq!(code, 404);
    let (code, _) = curl(&format!(
        "{}/buildid/{id}/executable",
        proxy.debuginfod_url("another-namespace")
    ));
    assert_eq!(code, 404, "binaries are scoped to their namespace");

    // Without the endpoint gdb cannot name the crashing frame...
    let blind = gdb_bt(&core, None);
    assert!(!blind.contains("store_value"), "{blind}");
    // ...with it, it can.
    let bt = gdb_bt(&core, Some(&base));
    let line = coredump_testkit::native::C_SOURCE
        .lines()
        .position(|l| l.contains("void store_value"))
        .unwrap()
        + 1;
    assert!(bt.contains("store_value"), "{bt}");
    assert!(bt.contains(&format!("crash.c:{line}")), "{bt}");
    assert!(bt.contains("parse_record"), "{bt}");
}
