//! Crash → `ADDED` watch event latency in standalone mode, on the real kernel, through the real
//! `kubectl get -w` (needs root). Prints, per crash, the time from the crashed process being
//! reaped (the handler has drained the pipe) to kubectl printing the new object, and the
//! median and maximum.
//!
//! `cargo bench -p coredump-detector --bench watch_latency [-- --crashes 10]`

// A benchmark is test code: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn main() {
    let mut crashes = 10usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--crashes" {
            crashes = args.next().and_then(|s| s.parse().ok()).unwrap_or(crashes);
        }
    }
    if !coredump_testkit::kernel_lock::can_change_kernel_settings() {
        eprintln!("watch_latency bench: needs root; skipped");
        return;
    }
    let sa = common::Standalone::start(&["--listen", "127.0.0.1:0"]);
    let mut watch = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(sa.kubeconfig())
        .arg("--cache-dir")
        .arg(sa.data().join("kubectl-cache"))
        .args(["get", "coredumps", "-A", "-w", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<(String, Instant)>();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((line, Instant::now())).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(1)); // watch established
    let mut latencies = Vec::new();
    for seed in 0..crashes as u64 {
        let crash = common::crasher(1, 500 + seed, "mixed", "segv", false);
        let pid = crash.pid;
        crash.wait(Duration::from_secs(30));
        let reaped = Instant::now();
        let needle = format!("crasher-{pid}-");
        let deadline = reaped + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (line, at) = rx.recv_timeout(left).expect("watch event within 30 s");
            if line.contains(&needle) {
                let ms = at.saturating_duration_since(reaped).as_secs_f64() * 1000.0;
                println!("crash {seed}: pid {pid} -> ADDED after {ms:.0} ms");
                latencies.push(ms);
                break;
            }
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    latencies.sort_by(|a, b| a.total_cmp(b));
    println!(
        "crash -> watch event: median {:.0} ms, max {:.0} ms over {} crashes (target <= 1000 ms)",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        latencies.len()
    );
}
