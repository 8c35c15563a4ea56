//! Capture benchmark on the real kernel (needs root): crashes processes of 256 MiB and 1 GiB of
//! mixed content (random, text-like, zero pages) and measures, per `core_pattern` handler:
//! *held* (signal until the crashed process is reaped: how long a pod cannot restart), *done*
//! (signal until the handler has published and exited), stored size, and the handler's peak
//! RSS. Baselines run in the same process: `cat > /dev/null` (the pipe-drain limit) and
//! `zstd -1 -T0`. Ratios are against the pipe-drain time measured here.
//!
//! `cargo bench -p coredump-detector --bench capture [-- --sizes 256,1024 --runs 3]`

// A benchmark is test code: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used)]

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use coredump_capture::HandlerConfig;
use coredump_testkit::kernel_lock::KernelSettings;

struct Handler {
    name: &'static str,
    pattern: String,
    /// Bytes stored for the last crash of `pid`.
    stored: Box<dyn Fn(u32) -> u64>,
}

#[derive(Default, Clone, Copy)]
struct Sample {
    held: f64,
    done: f64,
    stored: u64,
    rss_kib: u64,
}

fn main() {
    let mut sizes = vec![256usize, 1024];
    let mut runs = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sizes" => {
                sizes = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|s| s.parse().ok())
                    .collect()
            }
            "--runs" => runs = args.next().and_then(|s| s.parse().ok()).unwrap_or(3),
            _ => {} // cargo bench passes --bench
        }
    }
    if !coredump_testkit::kernel_lock::can_change_kernel_settings() {
        eprintln!(
            "capture bench: needs root and a writable /proc/sys/kernel/core_pattern; skipped"
        );
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("cdd-bench-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let ours = install_ours(work.path());
    let zstd_out = work.path().join("zstd");
    std::fs::create_dir_all(&zstd_out).unwrap();
    let spool = work.path().join("spool");
    let handlers = vec![
        Handler {
            name: "cat > /dev/null",
            pattern: "|/bin/sh -c cat>/dev/null %P".into(),
            stored: Box::new(|_| 0),
        },
        Handler {
            name: "zstd -1 -T0",
            pattern: format!(
                "|/usr/bin/zstd -q -1 -T0 -f -o {}/%P.zst",
                zstd_out.display()
            ),
            stored: Box::new({
                let dir = zstd_out.clone();
                move |pid| {
                    std::fs::metadata(dir.join(format!("{pid}.zst")))
                        .map(|m| m.len())
                        .unwrap_or(0)
                }
            }),
        },
        Handler {
            name: "coredump-detector",
            pattern: format!(
                "|{} handle {}",
                ours.display(),
                coredump_capture::handler::PATTERN_SPECIFIERS
            ),
            stored: Box::new({
                let spool = spool.clone();
                move |pid| stored_by_ours(&spool, pid)
            }),
        },
    ];

    let settings = KernelSettings::acquire();
    settings.set_pipe_limit(64);
    println!(
        "| size | handler | held s | done s | held / drain | done / drain | stored / raw | stored / zstd-1 | peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &mib in &sizes {
        let mut medians = Vec::new();
        for h in &handlers {
            settings.set_core_pattern(&h.pattern);
            let mut samples = Vec::new();
            for run in 0..runs {
                samples.push(crash_once(mib, run as u64, h));
                clean(&zstd_out);
                clean(&spool);
            }
            medians.push(median(&samples));
        }
        let raw = (mib as f64) * 1048576.0;
        let drain = medians[0].held;
        let zstd_size = medians[1].stored as f64;
        for (h, m) in handlers.iter().zip(&medians) {
            println!(
                "| {mib} MiB | {} | {:.3} | {:.3} | {:.2} | {:.2} | {} | {} | {:.1} |",
                h.name,
                m.held,
                m.done,
                m.held / drain,
                m.done / drain,
                if m.stored > 0 {
                    format!("{:.3}", m.stored as f64 / raw)
                } else {
                    "-".into()
                },
                if m.stored > 0 {
                    format!("{:.3}", m.stored as f64 / zstd_size)
                } else {
                    "-".into()
                },
                m.rss_kib as f64 / 1024.0,
            );
        }
    }
    drop(settings);
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

fn install_ours(dir: &Path) -> PathBuf {
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let bin = bin_dir.join("coredump-detector");
    std::fs::copy(coredump_testkit::bins::detector(), &bin).unwrap();
    let config = HandlerConfig {
        spool_dir: dir.join("spool"),
        min_free_bytes: 0,
        ..HandlerConfig::default()
    };
    config.store(&bin_dir.join("handler.json")).unwrap();
    bin
}

fn stored_by_ours(spool: &Path, pid: u32) -> u64 {
    for entry in std::fs::read_dir(spool).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.split('-').nth(1) == Some(&pid.to_string())
            && !name.ends_with(".tmp")
            && let Ok(r) = coredump_capture::spool::Spool::open(spool).and_then(|s| s.record(&name))
        {
            return r.stored_size;
        }
    }
    0
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

fn crash_once(mib: usize, seed: u64, handler: &Handler) -> Sample {
    let mut crash = common::crasher(mib, seed, "mixed", "segv", true);
    let pid = crash.pid;
    let start = Instant::now();
    crash.go();
    let mut child = crash.child;
    // The handler appears within milliseconds; find it while the crash is being dumped.
    let deadline = start + Duration::from_secs(10);
    let mut handler_pid = None;
    while handler_pid.is_none() && Instant::now() < deadline {
        handler_pid = find_handler(pid);
    }
    let pidfd = handler_pid
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = child.wait();
        let _ = tx.send(start.elapsed());
    });
    let mut rss_kib = 0;
    let done = match (&pidfd, handler_pid) {
        (Some(fd), Some(hp)) => loop {
            rss_kib = rss_kib.max(vm_hwm(hp));
            let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
            let ready = rustix::event::poll(
                &mut fds,
                Some(&rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 5_000_000,
                }),
            )
            .unwrap_or(0);
            if ready > 0 {
                break start.elapsed();
            }
            if start.elapsed() > Duration::from_secs(120) {
                panic!("handler {} did not finish", handler.name);
            }
        },
        _ => panic!("handler {} for pid {pid} not found", handler.name),
    };
    let held = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("crasher reaped");
    waiter.join().unwrap();
    let _ = pidfd.map(|fd| drop(fd.as_fd().try_clone_to_owned()));
    Sample {
        held: held.as_secs_f64(),
        done: done.max(held).as_secs_f64(),
        stored: (handler.stored)(pid),
        rss_kib,
    }
}

fn vm_hwm(pid: rustix::process::Pid) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", pid.as_raw_nonzero()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The kernel's usermode helper for this crash: a child of kthreadd whose command line
/// mentions the crashed pid.
fn find_handler(crashed: u32) -> Option<rustix::process::Pid> {
    let needle = crashed.to_string();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(n) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if n as u32 == crashed {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let hit = cmdline.split(|&b| b == 0).any(|a| {
            a == needle.as_bytes() || String::from_utf8_lossy(a).contains(&format!("/{needle}.zst"))
        });
        if hit {
            return rustix::process::Pid::from_raw(n);
        }
    }
    None
}
