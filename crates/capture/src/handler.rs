//! `coredump-detector handle`: the program the kernel runs for each crash (`core_pattern`
//! `|<binary> handle %P %I %s %t %u %g %d %h %e %E %f`). It decides whether and how to keep the core (limits,
//! concurrency slots, all in [`crate::admission`], shared with the socket server), runs the
//! [`crate::pipeline`], and publishes a spool entry. It never panics out, never leaves stdin
//! unread, and logs to the kernel log because it has no stderr.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use crate::admission::{self, CrashFacts, Verdict};
use crate::forward::KernelText;
use crate::limits::Gate;
use crate::record::{CaptureState, CrashRecord};
use crate::spool::Spool;
use crate::{CaptureError, HandlerConfig, procinfo, sys};

/// The kernel specifiers the handler expects, in order, after `handle`: six it always needs,
/// then the ones only the kernel knows exactly, for forwarding ([`crate::forward::KernelText`]).
/// A handler also accepts the first six alone (a `core_pattern` installed by an older version).
pub const PATTERN_SPECIFIERS: &str = "%P %I %s %t %u %g %d %h %e %E %f";

/// What the kernel told us about the crash through `core_pattern` specifiers: the facts every
/// capture path records, parsed from the handler's arguments.
pub type CrashArgs = CrashFacts;

impl CrashFacts {
    /// Parses the first six arguments following `handle`, in [`PATTERN_SPECIFIERS`] order.
    pub fn parse(args: &[OsString]) -> Result<CrashArgs, CaptureError> {
        if args.len() != 6 && args.len() != 11 {
            return Err(CaptureError::Usage(format!(
                "expected 11 arguments ({PATTERN_SPECIFIERS}) or the first 6, got {}",
                args.len()
            )));
        }
        fn num<T: std::str::FromStr>(arg: &OsString, what: &str) -> Result<T, CaptureError> {
            arg.to_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| CaptureError::Usage(format!("{what} is not a number: {arg:?}")))
        }
        Ok(CrashArgs {
            pid: num(&args[0], "%P")?,
            tid: num(&args[1], "%I")?,
            signal: num(&args[2], "%s")?,
            time: num(&args[3], "%t")?,
            uid: num(&args[4], "%u")?,
            gid: num(&args[5], "%g")?,
        })
    }
}

/// The arguments after the first six, when the pattern passed them.
pub fn kernel_text(args: &[OsString]) -> Option<KernelText> {
    let [d, h, e, path, name] = args.get(6..11)? else {
        return None;
    };
    let text = |a: &OsString| a.to_string_lossy().into_owned();
    Some(KernelText {
        dump_mode: d.to_str().and_then(|s| s.parse().ok())?,
        hostname: text(h),
        comm: text(e),
        exe_path: text(path),
        exe_name: text(name),
    })
}

/// Entry point of `coredump-detector handle`: returns the process exit code. Whatever happens
/// (bad arguments, missing config, full disk, a panic), stdin is drained and closed and the
/// failure is logged to the kernel log.
pub fn main(args: &[OsString], exe: &Path) -> i32 {
    sys::fill_standard_fds();
    let outcome = std::panic::catch_unwind(|| -> Result<Option<CrashRecord>, CaptureError> {
        let crash = CrashArgs::parse(args)?;
        let config = HandlerConfig::load_beside(exe)?;
        let kernel = kernel_text(args);
        handle_as(
            crash,
            kernel.as_ref(),
            &config,
            Path::new("/proc"),
            sys::take_stdin().ok_or_else(|| {
                CaptureError::Usage("the core pipe (fd 0) was already taken".into())
            })?,
            exe,
        )
    });
    match outcome {
        Ok(Ok(Some(record))) if record.state == CaptureState::Stored => 0,
        Ok(Ok(Some(record))) => {
            kmsg(&format!(
                "pid {} ({}) signal {}: core {:?}: {}",
                record.pid, record.comm, record.signal, record.state, record.reason
            ));
            0
        }
        Ok(Ok(None)) => 0,
        Ok(Err(e)) => {
            kmsg(&format!("capture failed: {e}"));
            drain_stdin();
            1
        }
        Err(_) => {
            kmsg("capture failed: handler panicked");
            drain_stdin();
            1
        }
    }
}

/// Handles one crash whose core arrives on `core`. Returns the published record, or `None`
/// when policy says to keep no trace (non-pod crashes with [`crate::NonPodPolicy::Drop`]).
pub fn handle(
    crash: CrashArgs,
    config: &HandlerConfig,
    proc_root: &Path,
    core: File,
) -> Result<Option<CrashRecord>, CaptureError> {
    handle_as(crash, None, config, proc_root, core, Path::new(""))
}

/// [`handle`] by the handler binary `exe` (which a forwarded pattern must not name again).
/// Non-pod crashes under [`crate::NonPodPolicy::Forward`] go to the previous pipe helper.
pub fn handle_as(
    crash: CrashArgs,
    kernel: Option<&KernelText>,
    config: &HandlerConfig,
    proc_root: &Path,
    core: File,
    exe: &Path,
) -> Result<Option<CrashRecord>, CaptureError> {
    let started = Instant::now();
    let info = procinfo::read(proc_root, crash.pid);
    let in_pod = info.pod.is_some();
    if !in_pod && config.non_pod == crate::NonPodPolicy::Forward {
        let Some(pattern) = config.forward_pattern.as_deref() else {
            drain(core);
            return Ok(None);
        };
        let values = crate::forward::values(&crash, &info, proc_root, kernel);
        crate::forward::forward(pattern, values, core, exe)?;
        return Ok(None);
    }
    let spool = Spool::open(&config.spool_dir)?;
    let record = admission::new_record(&crash, info);
    let (max_core_bytes, charge) = match admission::gate(config, &record)? {
        Gate::Pass {
            max_core_bytes,
            charge,
        } => (max_core_bytes, charge),
        // Counted in the pod's limit state; the agent publishes one record for all of them.
        Gate::Suppress => {
            drain(core);
            return Ok(None);
        }
        Gate::Refuse(refusal) => {
            let raw_size = drain(core);
            let held = started.elapsed();
            return admission::publish_refusal(&spool, record, refusal, raw_size, held, started)
                .map(Some);
        }
    };
    match admission::admit(config, &spool, in_pod)? {
        Verdict::Drop => {
            drain(core);
            Ok(None)
        }
        Verdict::Refuse(refusal) => {
            // A pipe cannot refuse: the kernel writes the whole core anyway, so drain it.
            let raw_size = drain(core);
            let held = started.elapsed();
            admission::publish_refusal(&spool, record, refusal, raw_size, held, started).map(Some)
        }
        Verdict::Admit(admitted) => {
            // Only now, while the kernel holds the process, can its files be opened.
            let mapped = crate::mapped::MappedFiles::open(proc_root, crash.pid, crash.tid);
            let admitted = admitted.with_mapped_files(mapped);
            let admitted = admitted.within(max_core_bytes, charge);
            admission::capture(&spool, admitted, record, core, drop, started, |_| {}).map(Some)
        }
    }
}

/// Reads `core` to EOF, discarding it, and closes it. Returns the bytes read.
pub fn drain(mut core: File) -> u64 {
    let mut buf = [0u8; 64 << 10];
    let mut total = 0u64;
    loop {
        match core.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    total
}

/// Drains fd 0 if nothing took it yet (after a failure before the pipeline took it).
fn drain_stdin() {
    if let Some(core) = sys::take_stdin() {
        drain(core);
    }
}

/// Writes one line to the kernel log: the handler's stdout and stderr go nowhere.
pub fn kmsg(message: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = writeln!(f, "<4>coredump-detector[{}]: {message}", std::process::id());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NonPodPolicy;
    use crate::record::CoreEncoding;
    use crate::spool::SlotKind;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_specifiers() {
        let a = CrashArgs::parse(&args(&["10", "11", "11", "1700000000", "1000", "100"])).unwrap();
        assert_eq!(
            a,
            CrashArgs {
                pid: 10,
                tid: 11,
                signal: 11,
                time: 1_700_000_000,
                uid: 1000,
                gid: 100
            }
        );
        assert!(CrashArgs::parse(&args(&["10"])).is_err());
        let full = args(&[
            "10",
            "11",
            "11",
            "1700000000",
            "1000",
            "100",
            "2",
            "node!1",
            "my app",
            "!bin!x",
            "x",
        ]);
        assert_eq!(CrashArgs::parse(&full).unwrap().pid, 10);
        assert_eq!(
            kernel_text(&full),
            Some(KernelText {
                dump_mode: 2,
                hostname: "node!1".into(),
                comm: "my app".into(),
                exe_path: "!bin!x".into(),
                exe_name: "x".into(),
            })
        );
        assert_eq!(kernel_text(&full[..6]), None);
        assert!(CrashArgs::parse(&args(&["x", "1", "1", "1", "1", "1"])).is_err());
    }

    fn pipe_with(bytes: Vec<u8>) -> File {
        let (r, w) = rustix::pipe::pipe().unwrap();
        std::thread::spawn(move || {
            let mut w = File::from(w);
            let _ = w.write_all(&bytes);
        });
        File::from(r)
    }

    fn config(dir: &Path) -> HandlerConfig {
        HandlerConfig {
            spool_dir: dir.join("spool"),
            min_free_bytes: 0,
            ..HandlerConfig::default()
        }
    }

    #[test]
    fn handles_a_core_from_a_pipe() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path());
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let crash = CrashArgs::parse(&args(&["999999", "999999", "6", "5", "0", "0"])).unwrap();
        let rec = handle(crash, &cfg, tmp.path(), pipe_with(data.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(rec.state, CaptureState::Stored);
        assert_eq!(rec.raw_size, data.len() as u64);
        let spool = Spool::open(&cfg.spool_dir).unwrap();
        assert_eq!(spool.ready().unwrap(), vec![rec.id.clone()]);
        let zst = std::fs::read(spool.entry_dir(&rec.id).join("core.zst")).unwrap();
        assert_eq!(zstd::decode_all(&zst[..]).unwrap(), data);
        assert_eq!(spool.record(&rec.id).unwrap(), rec);
    }

    #[test]
    fn rate_limited_when_no_handler_slot() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = HandlerConfig {
            max_handlers: 1,
            slot_wait_ms: 0,
            ..config(tmp.path())
        };
        let spool = Spool::open(&cfg.spool_dir).unwrap();
        let _busy = spool.try_slot(SlotKind::Handler, 1).unwrap();
        let crash = CrashArgs::parse(&args(&["5", "5", "11", "5", "0", "0"])).unwrap();
        let rec = handle(crash, &cfg, tmp.path(), pipe_with(vec![7; 100_000]))
            .unwrap()
            .unwrap();
        assert_eq!(rec.state, CaptureState::RateLimited);
        assert_eq!(rec.raw_size, 100_000, "the core is drained and counted");
        assert_eq!(rec.encoding, CoreEncoding::None);
        assert!(!spool.entry_dir(&rec.id).join("core.zst").exists());
    }

    #[test]
    fn raw_spool_when_no_compress_slot() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = HandlerConfig {
            max_compressing: 1,
            ..config(tmp.path())
        };
        let spool = Spool::open(&cfg.spool_dir).unwrap();
        let _busy = spool.try_slot(SlotKind::Compress, 1).unwrap();
        let crash = CrashArgs::parse(&args(&["6", "6", "11", "5", "0", "0"])).unwrap();
        let data = vec![3u8; 50_000];
        let rec = handle(crash, &cfg, tmp.path(), pipe_with(data.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(
            (rec.state, rec.encoding),
            (CaptureState::Stored, CoreEncoding::Raw)
        );
        assert_eq!(
            std::fs::read(spool.entry_dir(&rec.id).join("core.raw")).unwrap(),
            data
        );
    }

    #[test]
    fn skipped_below_free_space_floor() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = HandlerConfig {
            min_free_bytes: u64::MAX,
            ..config(tmp.path())
        };
        let crash = CrashArgs::parse(&args(&["7", "7", "11", "5", "0", "0"])).unwrap();
        let rec = handle(crash, &cfg, tmp.path(), pipe_with(vec![1; 10]))
            .unwrap()
            .unwrap();
        assert_eq!(rec.state, CaptureState::Skipped);
        assert!(rec.reason.contains("free-space floor"));
        assert_eq!(rec.cause, Some(coredump_api::CoredumpReason::DiskFloor));
        assert_eq!(rec.raw_size, 10);
    }

    #[test]
    fn non_pod_crash_dropped_by_policy() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = HandlerConfig {
            non_pod: NonPodPolicy::Drop,
            ..config(tmp.path())
        };
        let crash = CrashArgs::parse(&args(&["8", "8", "11", "5", "0", "0"])).unwrap();
        assert!(
            handle(crash, &cfg, tmp.path(), pipe_with(vec![1; 10]))
                .unwrap()
                .is_none()
        );
    }
}
