//! A process that crashes on purpose, for the real-kernel tests and benchmarks.
//!
//! `crasher --mib N --seed S --content random|text|zero|mixed --signal segv|abrt|bus|fpe
//! [--comm NAME]`
//! allocates a buffer that starts with [`coredump_testkit::content::marker`] followed by N MiB of
//! deterministic content, prints `ready <pid>` on stdout, optionally waits for a line on stdin
//! (`--wait-stdin`, so a test can place it in a cgroup first), then dies of the signal with the
//! default disposition, which makes the kernel dump its core.
#![allow(unsafe_code)]

use std::io::{BufRead, Write};

use coredump_testkit::content::{self, Kind};

fn main() {
    let mut mib = 1usize;
    let mut seed = 1u64;
    let mut kind = Kind::Mixed;
    let mut signal = libc::SIGSEGV;
    let mut wait_stdin = false;
    let mut comm: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--mib" => {
                mib = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--mib takes a number"))
            }
            "--seed" => {
                seed = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--seed takes a number"))
            }
            "--content" => kind = value().parse().unwrap_or_else(|e: String| usage(&e)),
            "--signal" => {
                signal = match value().as_str() {
                    "segv" => libc::SIGSEGV,
                    "abrt" => libc::SIGABRT,
                    "bus" => libc::SIGBUS,
                    "fpe" => libc::SIGFPE,
                    other => usage(&format!("unknown signal {other}")),
                }
            }
            "--wait-stdin" => wait_stdin = true,
            // The process name the kernel reports (`%e`), e.g. with spaces or `/`.
            "--comm" => comm = Some(value()),
            other => usage(&format!("unknown argument {other}")),
        }
    }

    let marker = content::marker(seed);
    let mut buf = vec![0u8; marker.len() + mib * content::BLOCK];
    buf[..marker.len()].copy_from_slice(&marker);
    content::fill(seed, kind, &mut buf[marker.len()..]);
    std::hint::black_box(&buf);

    let raised = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads a valid rlimit struct; failure (no privilege) is harmless for
    // pipe patterns, which ignore RLIMIT_CORE.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &raised) };

    if let Some(name) = comm {
        let Ok(name) = std::ffi::CString::new(name) else {
            usage("--comm must not contain NUL");
        };
        // SAFETY: PR_SET_NAME reads a NUL-terminated string (the kernel keeps 15 bytes of it).
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    }

    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready {}", std::process::id());
    let _ = out.flush();
    drop(out);
    if wait_stdin {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    }
    // SAFETY: resetting a signal to its default disposition and raising it is the point of this
    // program; the Rust runtime's own SIGSEGV handler would otherwise swallow a raised SIGSEGV.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    std::hint::black_box(&buf);
    std::process::exit(99); // not reached: the signal is fatal
}

fn usage(message: &str) -> ! {
    eprintln!("crasher: {message}");
    std::process::exit(2);
}
