//! Capture benchmark on the real kernel (needs root; the standalone fixture holds the
//! machine-wide kernel-settings lock). A real `coredump-detector standalone` runs (ingest, API
//! server, everything) in pipe mode, then in socket mode; in each, processes of 256 MiB and
//! 1 GiB of mixed content (random, text-like, zero pages) crash under four takers, in turn
//! within every run so that the machine's load drifts alike for all:
//!
//! * `cat > /dev/null` (`|/bin/sh -c cat>/dev/null`): the pipe-drain limit, the baseline;
//! * `cat > file` on the spool's filesystem: the drain plus the page cache any spill file needs
//!   (on a VM that hands freed memory back to its host, touching that memory again is most of
//!   the difference to `cat > /dev/null`);
//! * `zstd -1 -T0` as the pipe helper: the size baseline (and a compressor's done time);
//! * ours: standalone's pipe handler, or its coredump socket.
//!
//! Per taker: *held* (signal until the crashed process is reaped: how long a pod cannot
//! restart), *done* (signal until the helper exited, or the socket server published the spool
//! entry), the stored size, and the peak RSS (of the helper process; for the socket, what the
//! standalone process grew by above its resident size before the crash, `clear_refs` 5 then
//! `VmHWM`). Ratios are against `cat` measured in the same run; medians of `--runs`.
//!
//! `cargo bench -p coredump-detector --bench capture [-- --sizes 256,1024 --runs 3
//!  --modes pipe,socket --workers 2 --compare BINARY]`
//!
//! `--workers 0,1,2` repeats everything with standalone's `--zstd-workers` at each value (the
//! trade-off between held, done and RSS); `--compare BINARY` adds, in pipe mode, another
//! build's handler with the same `handler.json` (e.g. the main branch's, for an A/B in one run);
//! `--perf DIR` records `perf record -a -g` of the first crash of each size and taker there
//! (where the CPU goes while the crashed process is held: `perf report -i FILE --sort comm`).

// A benchmark is test code: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use common::Standalone;

/// Who takes the core.
#[derive(Clone)]
enum Taker {
    /// A pipe helper that is not ours (`cat`, `zstd`): its pattern and where it writes.
    Helper {
        name: String,
        pattern: String,
        zstd_out: Option<PathBuf>,
        /// The file `cat` writes the raw core to, removed after each crash.
        raw_out: Option<PathBuf>,
    },
    /// Our pipe handler (standalone's, or `--compare`'s) under `pattern`.
    Handler { name: String, pattern: String },
    /// Standalone's coredump socket.
    Socket { pattern: String },
}

impl Taker {
    fn name(&self) -> &str {
        match self {
            Taker::Helper { name, .. } | Taker::Handler { name, .. } => name,
            Taker::Socket { .. } => "coredump-detector socket",
        }
    }
    fn pattern(&self) -> &str {
        match self {
            Taker::Helper { pattern, .. }
            | Taker::Handler { pattern, .. }
            | Taker::Socket { pattern } => pattern,
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Sample {
    held: f64,
    done: f64,
    stored: u64,
    rss_kib: u64,
}

struct Opts {
    sizes: Vec<usize>,
    runs: usize,
    modes: Vec<String>,
    workers: Vec<u32>,
    compare: Option<PathBuf>,
    /// Where to write `perf record -a` of the first crash of each size under each taker.
    perf: Option<PathBuf>,
}

fn list<T: std::str::FromStr>(arg: Option<String>) -> Vec<T> {
    arg.unwrap_or_default()
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn opts() -> Opts {
    let mut o = Opts {
        sizes: vec![256, 1024],
        runs: 3,
        modes: vec!["pipe".into(), "socket".into()],
        workers: vec![],
        compare: None,
        perf: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sizes" => o.sizes = list(args.next()),
            "--runs" => o.runs = args.next().and_then(|s| s.parse().ok()).unwrap_or(3),
            "--modes" => o.modes = list(args.next()),
            "--workers" => o.workers = list(args.next()),
            "--compare" => o.compare = args.next().map(PathBuf::from),
            "--perf" => o.perf = args.next().map(PathBuf::from),
            _ => {} // cargo bench passes --bench
        }
    }
    o
}

fn main() {
    let o = opts();
    if !coredump_testkit::kernel_lock::can_change_kernel_settings() {
        eprintln!(
            "capture bench: needs root and a writable /proc/sys/kernel/core_pattern; skipped"
        );
        return;
    }
    println!(
        "| mode | zstd workers | size | taker | held s | done s | held / cat | done / cat | stored / raw | stored / zstd-1 | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let workers: Vec<Option<u32>> = if o.workers.is_empty() {
        vec![None]
    } else {
        o.workers.iter().copied().map(Some).collect()
    };
    for mode in &o.modes {
        if mode == "socket" && !coredump_capture::socket::socket_supported() {
            eprintln!("capture bench: this kernel has no coredump socket; socket mode skipped");
            continue;
        }
        for &w in &workers {
            run_mode(&o, mode, w);
        }
    }
}

/// One standalone instance in `mode`, every size and run, one table block per size.
fn run_mode(o: &Opts, mode: &str, workers: Option<u32>) {
    let mut extra = vec!["--capture".to_string(), mode.to_string()];
    if let Some(w) = workers {
        extra.extend(["--zstd-workers".to_string(), w.to_string()]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let s = if mode == "socket" {
        Standalone::start_socket(&extra[2..])
    } else {
        Standalone::start(&extra)
    };
    let ours = s.expected_pattern();
    let zstd_out = s.data().join("bench-zstd");
    std::fs::create_dir_all(&zstd_out).unwrap();
    let mut takers = vec![
        Taker::Helper {
            name: "cat > /dev/null".into(),
            pattern: "|/bin/sh -c cat>/dev/null %P".into(),
            zstd_out: None,
            raw_out: None,
        },
        // The same drain into a file on the spool's filesystem: the page cache a spill file
        // takes is memory the held path must obtain, and on a VM whose freed memory goes back to
        // the host (virtio-balloon free page reporting) that is the bigger part of the cost.
        Taker::Helper {
            name: "cat > file".into(),
            pattern: format!("|/bin/sh -c cat>{}/raw %P", zstd_out.display()),
            zstd_out: None,
            raw_out: Some(zstd_out.join("raw")),
        },
        Taker::Helper {
            name: "zstd -1 -T0".into(),
            pattern: format!(
                "|/usr/bin/zstd -q -1 -T0 -f -o {}/%P.zst",
                zstd_out.display()
            ),
            zstd_out: Some(zstd_out.clone()),
            raw_out: None,
        },
    ];
    if mode == "socket" {
        takers.push(Taker::Socket { pattern: ours });
    } else {
        takers.push(Taker::Handler {
            name: "coredump-detector handle".into(),
            pattern: ours,
        });
        if let Some(bin) = &o.compare {
            takers.push(Taker::Handler {
                name: format!("{} handle", bin.display()),
                pattern: install_compared(&s, bin),
            });
        }
    }
    let workers = workers.map_or("default".to_string(), |w| w.to_string());
    for &mib in &o.sizes {
        let mut samples = vec![Vec::new(); takers.len()];
        for run in 0..o.runs {
            for (t, taker) in takers.iter().enumerate() {
                s.settings.set_core_pattern(taker.pattern());
                let perf = o.perf.as_ref().filter(|_| run == 0).map(|dir| {
                    std::fs::create_dir_all(dir).unwrap();
                    let file = dir.join(format!("{mode}-{workers}-{mib}-{t}.data"));
                    Perf::start(&file)
                });
                let sample = crash_once(&s, mib, run as u64, taker);
                drop(perf);
                // Every sample, not only the medians: the spread tells a noisy run apart.
                eprintln!(
                    "capture bench: {mode} {mib} MiB {} run {run}: held {:.3} s, done {:.3} s",
                    taker.name(),
                    sample.held,
                    sample.done
                );
                samples[t].push(sample);
            }
        }
        let medians: Vec<Sample> = samples.iter().map(|v| median(v)).collect();
        let raw = (mib as f64) * 1048576.0;
        let drain = medians[0].held;
        let zstd_size = medians[2].stored as f64;
        for (taker, m) in takers.iter().zip(&medians) {
            let ratio = |v: f64| {
                if m.stored > 0 {
                    format!("{:.3}", m.stored as f64 / v)
                } else {
                    "-".into()
                }
            };
            println!(
                "| {mode} | {workers} | {mib} MiB | {} | {:.3} | {:.3} | {:.2} | {:.2} | {} | {} | {:.1} |",
                taker.name(),
                m.held,
                m.done,
                m.held / drain,
                m.done / drain,
                ratio(raw),
                ratio(zstd_size),
                m.rss_kib as f64 / 1024.0,
            );
        }
    }
    s.settings.set_core_pattern(&s.expected_pattern());
}

/// `perf record -a -g` while it lives (stopped with SIGINT, as perf expects).
struct Perf(std::process::Child);

impl Perf {
    fn start(file: &Path) -> Perf {
        let child = std::process::Command::new("perf")
            .args(["record", "-a", "-g", "-q", "-o"])
            .arg(file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // perf needs a moment to open its events on every CPU.
        std::thread::sleep(Duration::from_millis(300));
        Perf(child)
    }
}

impl Drop for Perf {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.0),
            rustix::process::Signal::INT,
        );
        let _ = self.0.wait();
    }
}

/// Installs `bin` beside standalone's handler with the same `handler.json`; returns its pattern.
fn install_compared(s: &Standalone, bin: &Path) -> String {
    let dir = s.data().join("bin-compared");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("coredump-detector");
    std::fs::copy(bin, &copy).unwrap();
    std::fs::copy(
        s.data()
            .join("bin")
            .join(coredump_capture::config::HANDLER_CONFIG),
        dir.join(coredump_capture::config::HANDLER_CONFIG),
    )
    .unwrap();
    format!(
        "|{} handle {}",
        copy.display(),
        coredump_capture::handler::PATTERN_SPECIFIERS
    )
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
    }
}

fn crash_once(s: &Standalone, mib: usize, seed: u64, taker: &Taker) -> Sample {
    let mut crash = common::crasher(mib, seed, "mixed", "segv", true);
    let pid = crash.pid;
    let server = s.last_pid;
    let rss_before = match taker {
        Taker::Socket { .. } => {
            std::fs::write(format!("/proc/{server}/clear_refs"), "5").unwrap();
            status_kib(server, "VmRSS:")
        }
        _ => 0,
    };
    let start = Instant::now();
    crash.go();
    let mut child = crash.child;
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = child.wait();
        let _ = tx.send(start.elapsed());
    });
    let (done, rss_kib) = match taker {
        Taker::Socket { .. } => {
            let spool = s.data().join("spool");
            let mut peak = 0;
            let done = loop {
                peak = peak.max(status_kib(server, "VmHWM:"));
                if published(&spool, pid) {
                    break start.elapsed();
                }
                assert!(start.elapsed() < Duration::from_secs(300), "no spool entry");
                std::thread::sleep(Duration::from_millis(1));
            };
            (done, peak.saturating_sub(rss_before))
        }
        Taker::Helper { .. } | Taker::Handler { .. } => helper_done(pid, start, taker.name()),
    };
    let held = rx
        .recv_timeout(Duration::from_secs(300))
        .expect("crasher reaped");
    waiter.join().unwrap();
    let stored = match taker {
        Taker::Helper {
            zstd_out: Some(dir),
            ..
        } => {
            let path = dir.join(format!("{pid}.zst"));
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let _ = std::fs::remove_file(path);
            len
        }
        Taker::Helper {
            raw_out: Some(path),
            ..
        } => {
            let _ = std::fs::remove_file(path);
            0
        }
        Taker::Helper { .. } => 0,
        // Recorded by the ingest: this also lets it finish before the next crash.
        Taker::Handler { .. } | Taker::Socket { .. } => {
            let record = s.wait_record(pid, Duration::from_secs(120));
            assert!(
                record.status.core_size == record.status.raw_size
                    && record.status.core_size > (mib as u64) << 20,
                "the whole core is stored: {:?}",
                record.status
            );
            record.status.stored_size
        }
    };
    Sample {
        held: held.as_secs_f64(),
        done: done.max(held).as_secs_f64(),
        stored,
        rss_kib,
    }
}

/// Waits for the pipe helper of crash `pid` to exit; returns when, and its peak RSS.
fn helper_done(pid: u32, start: Instant, name: &str) -> (Duration, u64) {
    // The helper appears within milliseconds; find it while the crash is being dumped.
    let deadline = start + Duration::from_secs(10);
    let mut helper = None;
    while helper.is_none() && Instant::now() < deadline {
        helper = find_handler(pid);
    }
    let helper = helper.unwrap_or_else(|| panic!("{name}: no helper for {pid}"));
    let pidfd = rustix::process::pidfd_open(helper, rustix::process::PidfdFlags::empty()).unwrap();
    let raw = helper.as_raw_nonzero().get() as u32;
    let mut rss = 0;
    loop {
        rss = rss.max(status_kib(raw, "VmHWM:"));
        let mut fds = [rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 5_000_000,
        };
        if rustix::event::poll(&mut fds, Some(&timeout)).unwrap_or(0) > 0 {
            return (start.elapsed(), rss);
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "{name} did not finish"
        );
    }
}

/// Whether the spool holds a published entry of crash `pid` (ids are `<time>-<pid>-<nanos>`).
fn published(spool: &Path, pid: u32) -> bool {
    let wanted = pid.to_string();
    std::fs::read_dir(spool)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.split('-').nth(1) == Some(wanted.as_str())
                && !name.ends_with(".tmp")
                && e.path().join("meta.json").exists()
        })
}

/// A `kB` field of `/proc/<pid>/status` (0 when unreadable).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The kernel's usermode helper for this crash: a process whose command line has the crashed
/// pid as an argument (`sh -c cat>/dev/null PID`, `sh -c cat>FILE PID`, `handle PID ...`) or names `PID.zst`.
fn find_handler(crashed: u32) -> Option<rustix::process::Pid> {
    let needle = crashed.to_string();
    let zst = format!("/{needle}.zst");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if n as u32 == crashed {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let drain = args.len() > 3 && args[2].starts_with(b"cat>") && args[3] == needle.as_bytes();
        let handler = args.len() > 2 && args[1] == b"handle" && args[2] == needle.as_bytes();
        let zstd = args
            .iter()
            .any(|a| String::from_utf8_lossy(a).ends_with(&zst));
        if drain || handler || zstd {
            return rustix::process::Pid::from_raw(n);
        }
    }
    None
}
