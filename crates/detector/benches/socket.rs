//! Coredump socket vs pipe benchmark on the real kernel (needs root; holds the kernel-settings
//! lock). Three ways to take a core:
//! * `pipe drain`: `|/bin/sh -c cat>/dev/null`, the fastest a pipe can be emptied;
//! * `pipe handler`: `|coredump-detector handle ...`, a process per crash;
//! * `socket drain`: `@@<socket>` answered `KERNEL|WAIT` and read into nothing, the fastest a
//!   coredump socket can be emptied (this bench re-executed with `--drain-socket`);
//! * `socket server`: `@@<socket>` served by a [`CaptureServer`] in a separate process (this
//!   bench re-executed with `--serve-socket`), so its CPU and memory are its own.
//!
//! Per size (256 MiB and 1 GiB of mixed content by default): *held* (crash until the crashed
//! process is reaped), *done* (crash until the spool entry is published, or the drain handler
//! exited) and the peak RSS of whatever took the core (the handler process; for the server its
//! `VmHWM`, reset before each crash through `clear_refs`), and the CPU time it used: on a shared
//! machine wall times swing with the load, CPU seconds much less. (The pipe handler's CPU is its
//! last sample, up to 5 ms before it exits; the drain shell's `cat` is not counted.)
//! Then a storm: N small crashes released at once (default 200 x 1 MiB) under the pipe handler
//! and under the socket server: total time until every crash is reaped and accounted for, CPU
//! (busy time of the whole machine from `/proc/stat`, and the server process's own), captured
//! vs refused vs lost, and how many handler processes were seen.
//!
//! `cargo bench -p coredump-detector --bench socket [-- --sizes 256,1024 --runs 3 --storm 200]`
// A benchmark harness: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use common::Crash as Crasher;
use coredump_capture::HandlerConfig;
use coredump_capture::socket::{CaptureServer, ServerConfig};
use coredump_capture::spool::Spool;
use coredump_testkit::kernel_lock::KernelSettings;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve-socket") {
        serve_socket(&args[2..]);
        return;
    }
    if args.get(1).map(String::as_str) == Some("--drain-socket") {
        drain_socket(&args[2]);
        return;
    }
    let mut sizes = vec![256usize, 1024];
    let mut runs = 3usize;
    let mut storm = 200usize;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--sizes" => {
                sizes = it
                    .next()
                    .map(|s| s.split(',').filter_map(|v| v.parse().ok()).collect())
                    .unwrap_or_default()
            }
            "--runs" => runs = it.next().and_then(|s| s.parse().ok()).unwrap_or(3),
            "--storm" => storm = it.next().and_then(|s| s.parse().ok()).unwrap_or(200),
            _ => {} // cargo bench passes --bench
        }
    }
    if !coredump_testkit::kernel_lock::can_change_kernel_settings() {
        eprintln!("socket bench: needs root and a writable /proc/sys/kernel/core_pattern; skipped");
        return;
    }
    if !coredump_capture::socket::socket_supported() {
        eprintln!("socket bench: this kernel has no coredump socket (Linux >= 6.17); skipped");
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("cdd-sockbench-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let handler_bin = install_pipe_handler(work.path());
    let pipe_spool = work.path().join("spool");
    let socket_spool = work.path().join("socket-spool");
    let socket_path = work.path().join("run/capture.sock");
    let settings = KernelSettings::acquire();
    settings.set_pipe_limit(64);

    let mut server = SocketServer::start("--serve-socket", &socket_path, &socket_spool);
    let drain_path = work.path().join("run/drain.sock");
    let mut drainer = SocketServer::start("--drain-socket", &drain_path, &socket_spool);
    let modes = [
        Mode::Drain,
        Mode::SocketDrain(format!("@@{}", drain_path.display())),
        Mode::Pipe(format!(
            "|{} handle {}",
            handler_bin.display(),
            coredump_capture::handler::PATTERN_SPECIFIERS
        )),
        Mode::Socket(format!("@@{}", socket_path.display())),
    ];
    println!(
        "| size | taken by | held s | done s | held / drain | done / drain | stored / raw | peak RSS MiB | taker CPU s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &mib in &sizes {
        let mut medians = Vec::new();
        for mode in &modes {
            settings.set_core_pattern(mode.pattern());
            let mut samples = Vec::new();
            for run in 0..runs {
                let spool = if matches!(mode, Mode::Socket(_)) {
                    &socket_spool
                } else {
                    &pipe_spool
                };
                let taker = if matches!(mode, Mode::SocketDrain(_)) {
                    &mut drainer
                } else {
                    &mut server
                };
                samples.push(crash_once(mib, run as u64, mode, spool, taker));
                clean(spool);
            }
            medians.push(median(&samples));
        }
        let drain = medians[0].held;
        let raw = mib as f64 * 1048576.0;
        for (mode, m) in modes.iter().zip(&medians) {
            println!(
                "| {mib} MiB | {} | {:.3} | {:.3} | {:.2} | {:.2} | {} | {:.1} | {} |",
                mode.name(),
                m.held,
                m.done,
                m.held / drain,
                m.done / drain,
                if m.stored > 0 {
                    format!("{:.3}", m.stored as f64 / raw)
                } else {
                    "-".into()
                },
                m.rss_kib as f64 / 1024.0,
                if m.cpu.is_nan() {
                    "-".into()
                } else {
                    format!("{:.2}", m.cpu)
                }
            );
        }
    }

    println!();
    println!(
        "| storm of {storm} x 1 MiB | taken by | all reaped s | all accounted s | machine CPU s | server CPU s | captured | refused | lost | handler processes seen |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for mode in &modes[2..] {
        settings.set_core_pattern(mode.pattern());
        let spool = if matches!(mode, Mode::Socket(_)) {
            &socket_spool
        } else {
            &pipe_spool
        };
        let s = run_storm(storm, mode, spool, &server);
        println!(
            "| {storm} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} |",
            mode.name(),
            s.reaped,
            s.accounted,
            s.machine_cpu,
            s.server_cpu
                .map(|c| format!("{c:.2}"))
                .unwrap_or_else(|| "-".into()),
            s.captured,
            s.refused,
            s.lost,
            s.handlers_seen
        );
        clean(spool);
    }
    settings.set_core_pattern(settings.original_pattern());
    drainer.stop();
    let stats = server.stop();
    eprintln!("socket server counters: {stats}");
    drop(settings);
}

enum Mode {
    Drain,
    SocketDrain(String),
    Pipe(String),
    Socket(String),
}

impl Mode {
    fn name(&self) -> &'static str {
        match self {
            Mode::Drain => "pipe drain (cat)",
            Mode::SocketDrain(_) => "socket drain",
            Mode::Pipe(_) => "pipe handler",
            Mode::Socket(_) => "socket server",
        }
    }
    fn pattern(&self) -> &str {
        match self {
            Mode::Drain => "|/bin/sh -c cat>/dev/null %P",
            Mode::Pipe(p) | Mode::Socket(p) | Mode::SocketDrain(p) => p,
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Sample {
    held: f64,
    done: f64,
    stored: u64,
    rss_kib: u64,
    /// CPU seconds of whatever took the core (NaN when not measured).
    cpu: f64,
}

fn median(samples: &[Sample]) -> Sample {
    let pick = |f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = samples.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    Sample {
        held: pick(|s| s.held),
        done: pick(|s| s.done),
        stored: pick(|s| s.stored as f64) as u64,
        rss_kib: pick(|s| s.rss_kib as f64) as u64,
        cpu: pick(|s| s.cpu),
    }
}

/// The server, in a child process running this bench with `--serve-socket`.
struct SocketServer {
    child: Child,
    pid: u32,
}

impl SocketServer {
    fn start(role: &str, socket: &Path, spool: &Path) -> SocketServer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg(role)
            .arg(socket)
            .arg(spool)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "server said {line:?}");
        let pid = child.id();
        SocketServer { child, pid }
    }

    /// Resets the peak RSS to the current RSS (`clear_refs` 5).
    fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").unwrap();
    }

    fn peak_kib(&self) -> u64 {
        vm_hwm(self.pid)
    }

    /// utime + stime of the whole process (exited threads included), in seconds.
    fn cpu(&self) -> f64 {
        process_cpu(self.pid).unwrap()
    }

    fn stop(&mut self) -> String {
        drop(self.child.stdin.take());
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        self.child.wait().unwrap();
        out.trim().to_string()
    }
}

/// `--serve-socket <socket> <spool>`: serve until stdin closes, then print the counters.
fn serve_socket(args: &[String]) {
    let handler = HandlerConfig {
        spool_dir: PathBuf::from(&args[1]),
        min_free_bytes: 0,
        ..HandlerConfig::default()
    };
    let server = CaptureServer::start(ServerConfig::new(&args[0], handler)).unwrap();
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    println!("{:?}", server.stop());
}

/// `--drain-socket <socket>`: answers every crash `KERNEL|WAIT`, reads its core into nothing and
/// closes, until stdin closes; writes the pid of each core read to `<socket>.done`.
fn drain_socket(path: &str) {
    use coredump_capture::socket::protocol::{Answer, MARK_LEN, Request};
    use std::os::unix::net::UnixListener;
    std::fs::create_dir_all(Path::new(path).parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).unwrap();
    let done = format!("{path}.done");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let pid = rustix::net::sockopt::socket_peercred(&stream).unwrap().pid;
            let mut req = [0u8; 16];
            stream.read_exact(&mut req).unwrap();
            Request::parse(&req).unwrap();
            stream.write_all(&Answer::Capture.encode()).unwrap();
            let mut mark = [0u8; MARK_LEN];
            stream.read_exact(&mut mark).unwrap();
            let waitall = rustix::net::RecvFlags::WAITALL;
            while rustix::net::recv(&stream, &mut buf[..], waitall).unwrap().0 > 0 {}
            drop(stream);
            std::fs::write(&done, pid.as_raw_nonzero().to_string()).unwrap();
        }
    });
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

fn install_pipe_handler(dir: &Path) -> PathBuf {
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let bin = bin_dir.join("coredump-detector");
    std::fs::copy(coredump_testkit::bins::detector(), &bin).unwrap();
    HandlerConfig {
        spool_dir: dir.join("spool"),
        min_free_bytes: 0,
        ..HandlerConfig::default()
    }
    .store(&bin_dir.join("handler.json"))
    .unwrap();
    bin
}

fn clean(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == "slots") {
            continue;
        }
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }
}

/// The published spool record of `pid`, if any.
fn record_of(spool: &Path, pid: u32) -> Option<coredump_capture::CrashRecord> {
    let spool = Spool::open(spool).ok()?;
    let wanted = pid.to_string();
    spool
        .ready()
        .ok()?
        .into_iter()
        .find(|id| id.split('-').nth(1) == Some(wanted.as_str()))
        .and_then(|id| spool.record(&id).ok())
}

/// A held crasher (the shared test fixture's launcher).
fn spawn_crasher(mib: usize, seed: u64) -> Crasher {
    common::crasher(mib, seed, "mixed", "segv", true)
}

fn crash_once(
    mib: usize,
    seed: u64,
    mode: &Mode,
    spool: &Path,
    server: &mut SocketServer,
) -> Sample {
    let mut crasher = spawn_crasher(mib, seed);
    let pid = crasher.pid;
    let server_cpu_before = server.cpu();
    if matches!(mode, Mode::Socket(_) | Mode::SocketDrain(_)) {
        server.reset_peak();
    }
    let start = Instant::now();
    crasher
        .child
        .stdin
        .take()
        .unwrap()
        .write_all(b"\n")
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut child = crasher.child;
    let waiter = std::thread::spawn(move || {
        let _ = child.wait();
        let _ = tx.send(start.elapsed());
    });
    let mut handler_cpu = f64::NAN;
    let (done, rss_kib, stored) = match mode {
        Mode::SocketDrain(pattern) => {
            let done_file = format!("{}.done", &pattern[2..]);
            let mut rss = 0;
            loop {
                rss = rss.max(server.peak_kib());
                if std::fs::read_to_string(&done_file).is_ok_and(|p| p == pid.to_string()) {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(300),
                    "drain of {pid} never ended"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            (start.elapsed(), rss.max(server.peak_kib()), 0)
        }
        Mode::Socket(_) => {
            let mut rss = 0;
            let record = loop {
                rss = rss.max(server.peak_kib());
                if let Some(r) = record_of(spool, pid) {
                    break r;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(300),
                    "no record for {pid}"
                );
                std::thread::sleep(Duration::from_millis(1));
            };
            let done = start.elapsed();
            (done, rss.max(server.peak_kib()), record.stored_size)
        }
        Mode::Drain | Mode::Pipe(_) => {
            let deadline = start + Duration::from_secs(10);
            let mut handler = None;
            while handler.is_none() && Instant::now() < deadline {
                handler = find_handler(pid);
            }
            let handler =
                handler.unwrap_or_else(|| panic!("{}: no handler for {pid}", mode.name()));
            let pidfd =
                rustix::process::pidfd_open(handler, rustix::process::PidfdFlags::empty()).unwrap();
            let mut rss = 0;
            loop {
                let handler_pid = handler.as_raw_nonzero().get() as u32;
                rss = rss.max(vm_hwm(handler_pid));
                if matches!(mode, Mode::Pipe(_)) {
                    handler_cpu = process_cpu(handler_pid).unwrap_or(handler_cpu);
                }
                let mut fds = [rustix::event::PollFd::new(
                    &pidfd,
                    rustix::event::PollFlags::IN,
                )];
                let timeout = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 5_000_000,
                };
                if rustix::event::poll(&mut fds, Some(&timeout)).unwrap_or(0) > 0 {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(300),
                    "handler did not finish"
                );
            }
            let done = start.elapsed();
            let stored = match mode {
                Mode::Pipe(_) => record_of(spool, pid).map(|r| r.stored_size).unwrap_or(0),
                _ => 0,
            };
            let _ = pidfd.as_fd();
            (done, rss, stored)
        }
    };
    let held = rx
        .recv_timeout(Duration::from_secs(300))
        .expect("crasher reaped");
    waiter.join().unwrap();
    let cpu = match mode {
        Mode::Socket(_) | Mode::SocketDrain(_) => server.cpu() - server_cpu_before,
        Mode::Pipe(_) | Mode::Drain => handler_cpu,
    };
    Sample {
        held: held.as_secs_f64(),
        done: done.max(held).as_secs_f64(),
        stored,
        rss_kib,
        cpu,
    }
}

struct Storm {
    reaped: f64,
    accounted: f64,
    machine_cpu: f64,
    server_cpu: Option<f64>,
    captured: usize,
    refused: usize,
    lost: usize,
    handlers_seen: usize,
}

fn run_storm(n: usize, mode: &Mode, spool: &Path, server: &SocketServer) -> Storm {
    let crashers: Vec<Crasher> = (0..n)
        .map(|i| spawn_crasher(1, 10_000 + i as u64))
        .collect();
    let pids: Vec<u32> = crashers.iter().map(|c| c.pid).collect();
    // Handler processes are counted by a sampler while the storm runs.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut seen = std::collections::HashSet::new();
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                seen.extend(handler_pids());
            }
            seen.len()
        })
    };
    let busy_before = machine_busy();
    let server_before = server.cpu();
    let start = Instant::now();
    let mut children = Vec::new();
    for mut c in crashers {
        c.child.stdin.take().unwrap().write_all(b"\n").unwrap();
        children.push(c.child);
    }
    for mut c in children {
        c.wait().unwrap();
    }
    let reaped = start.elapsed();
    // Accounted: every crash has a record, or (pipe) no handler is left and nothing changed
    // for a second (crashes over core_pipe_limit never reach a handler).
    let mut last = (0usize, Instant::now());
    let accounted = loop {
        let with_record = pids
            .iter()
            .filter(|p| record_of(spool, **p).is_some())
            .count();
        if with_record == n {
            break start.elapsed();
        }
        if with_record != last.0 {
            last = (with_record, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(1) && handler_pids().is_empty() {
            break start.elapsed() - Duration::from_secs(1);
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "storm never settled"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let machine_cpu = machine_busy() - busy_before;
    let server_cpu = matches!(mode, Mode::Socket(_)).then(|| server.cpu() - server_before);
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let handlers_seen = sampler.join().unwrap();
    let records: Vec<_> = pids.iter().filter_map(|p| record_of(spool, *p)).collect();
    let captured = records.iter().filter(|r| r.state.has_core()).count();
    Storm {
        reaped: reaped.as_secs_f64(),
        accounted: accounted.as_secs_f64(),
        machine_cpu,
        server_cpu,
        captured,
        refused: records.len() - captured,
        lost: n - records.len(),
        handlers_seen,
    }
}

/// Busy CPU seconds of the whole machine so far (`/proc/stat`, all but idle and iowait).
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu = stat.lines().next().unwrap();
    let v: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    (total - idle) as f64 / clock_ticks()
}

/// `USER_HZ`: the unit of `/proc/<pid>/stat` and `/proc/stat` times, fixed at 100 by the
/// kernel ABI on the architectures we run on.
fn clock_ticks() -> f64 {
    100.0
}

/// utime + stime of a process (all its threads, exited ones included), in seconds.
fn process_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks())
}

fn vm_hwm(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Pids of processes running a pipe handler (`... handle ...` or the drain shell).
fn handler_pids() -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.split(|&b| b == 0).nth(1) == Some(&b"handle"[..]) {
            out.push(pid);
        }
    }
    out
}

/// The kernel's usermode helper for this crash: the drain shell (`sh -c cat>/dev/null <pid>`)
/// or the handler (`coredump-detector handle <pid> ...`); nothing else whose arguments happen
/// to contain the same number.
fn find_handler(crashed: u32) -> Option<rustix::process::Pid> {
    let needle = crashed.to_string();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let drain = args.len() > 3 && args[2] == b"cat>/dev/null" && args[3] == needle.as_bytes();
        let handler = args.len() > 2 && args[1] == b"handle" && args[2] == needle.as_bytes();
        if drain || handler {
            return rustix::process::Pid::from_raw(n);
        }
    }
    None
}
