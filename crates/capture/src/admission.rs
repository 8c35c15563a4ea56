//! The one decision-and-publication path every crash takes, whichever way its core arrives (the
//! kernel's pipe to `coredump-detector handle`, or the coredump socket of the long-running
//! process). The transports differ only before the first core byte (how they learn who crashed,
//! and whether they can refuse without reading) and in how they let the kernel go; the limits,
//! the record and the spool publication are decided here, once.
//!
//! Order of the checks: the crash-loop limits first ([`gate`]: opt-out, per-pod and
//! per-namespace rates, byte budgets; once per crash), then, as the pipe handler always did:
//! non-pod policy, the concurrency bound (`RateLimited`), the free-space floor (`Skipped`), and
//! whether a compression slot is free (`core.zst` inline or `core.raw` for the ingest to
//! compress). The size limit, lowered by the byte budget, is enforced while the bytes flow
//! (`Truncated`).

use std::time::{Duration, Instant};

use coredump_api::CoredumpReason;

use crate::limits::{Charge, Gate, Limiter};
use crate::mapped::MappedFiles;
use crate::pipeline::{self, Limits, Output};
use crate::procinfo::ProcInfo;
use crate::record::{CaptureState, CoreEncoding, CrashRecord};
use crate::splice::CoreSource;
use crate::spool::{Slot, SlotKind, Spool};
use crate::{CaptureError, HandlerConfig, NonPodPolicy, sys};

/// What is known about a crash besides `/proc`: the pipe handler gets it from the kernel's
/// `core_pattern` specifiers, the socket server from the peer's pidfd, `/proc` and the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashFacts {
    /// Process id in the initial pid namespace (`%P`).
    pub pid: u32,
    /// Id of the thread that dumped, in the initial pid namespace (`%I`).
    pub tid: u32,
    /// Signal number (`%s`); 0 while unknown.
    pub signal: i32,
    /// Crash time, seconds since the epoch (`%t`).
    pub time: i64,
    /// Real uid (`%u`).
    pub uid: u32,
    /// Real gid (`%g`).
    pub gid: u32,
}

/// A crash recorded without its core: its state, the typed cause programs match on and the
/// text people read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `RateLimited`, `Skipped` or `Failed`.
    pub state: CaptureState,
    /// Why, for programs (the record's `cause`).
    pub cause: CoredumpReason,
    /// Why, for people (the record's `reason`).
    pub reason: String,
}

impl Refusal {
    /// A refusal of `state` because of `cause`, explained by `reason`.
    pub fn new(state: CaptureState, cause: CoredumpReason, reason: String) -> Refusal {
        Refusal {
            state,
            cause,
            reason,
        }
    }
}

/// What to do with a crash, decided before any core byte is read.
#[derive(Debug)]
pub enum Verdict {
    /// Keep no trace (a non-pod crash under [`NonPodPolicy::Drop`] or `Forward`).
    Drop,
    /// Keep a record but no core.
    Refuse(Refusal),
    /// Capture the core under these slots.
    Admit(Admission),
}

/// The right to capture one core: the concurrency slots it holds (released when the capture
/// is published or abandoned) and how the pipeline must write it.
pub struct Admission {
    _handler: Slot,
    compress: Option<Slot>,
    output: Output,
    limits: Limits,
    mapped: MappedFiles,
    charge: Option<Charge>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("compress", &self.compress)
            .field("output", &self.output)
            .field("limits", &self.limits)
            .field("mapped_files", &self.mapped.len())
            .field("charge", &self.charge)
            .finish()
    }
}

impl Admission {
    /// Carries the crashed process's mapped files, opened while the kernel still holds it
    /// (see [`crate::mapped`]); they are copied into the spool entry after the core.
    pub fn with_mapped_files(mut self, mapped: MappedFiles) -> Admission {
        self.mapped = mapped;
        self
    }

    /// How the core will be written (`core.zst` inline, or `core.raw`).
    pub fn output(&self) -> Output {
        self.output
    }

    /// Applies what the crash-loop limits allowed ([`gate`]): a smaller size limit, and the
    /// byte budget to debit with what the capture keeps.
    pub fn within(mut self, max_core_bytes: u64, charge: Option<Charge>) -> Admission {
        self.limits.max_core_bytes = self.limits.max_core_bytes.min(max_core_bytes);
        self.charge = charge;
        self
    }
}

/// The crash-loop limits' decision for one crash ([`crate::limits`]). Asked once per crash,
/// before [`admit`] (which a waiting socket crash asks again and again).
pub fn gate(config: &HandlerConfig, record: &CrashRecord) -> Result<Gate, CaptureError> {
    match &config.limits {
        Some(limits) => Limiter::new(limits).gate(record, config.max_core_bytes),
        None => Ok(Gate::Pass {
            max_core_bytes: config.max_core_bytes,
            charge: None,
        }),
    }
}

/// Decides the fate of a crash. `in_pod` tells whether `/proc/<pid>/cgroup` named a pod.
pub fn admit(config: &HandlerConfig, spool: &Spool, in_pod: bool) -> Result<Verdict, CaptureError> {
    // Forwarding is the pipe handler's business (it checks before asking us); whoever gets
    // here with a non-pod crash under Forward cannot forward, so drops it.
    if !in_pod && config.non_pod != NonPodPolicy::Record {
        return Ok(Verdict::Drop);
    }
    let wait = std::time::Duration::from_millis(config.slot_wait_ms);
    let Some(handler) = spool.wait_slot(SlotKind::Handler, config.max_handlers, wait) else {
        return Ok(Verdict::Refuse(Refusal::new(
            CaptureState::RateLimited,
            CoredumpReason::TooManyCrashes,
            format!(
                "more than {} crashes in flight for {} ms",
                config.max_handlers, config.slot_wait_ms
            ),
        )));
    };
    let free =
        sys::free_bytes_at(spool.dir()).map_err(|e| CaptureError::io("statvfs", spool.dir(), e))?;
    if free < config.min_free_bytes {
        return Ok(Verdict::Refuse(Refusal::new(
            CaptureState::Skipped,
            CoredumpReason::DiskFloor,
            format!(
                "spool filesystem below its free-space floor: {free} bytes free, floor {}",
                config.min_free_bytes
            ),
        )));
    }
    let compress = spool.try_slot(SlotKind::Compress, config.max_compressing);
    let output = match compress {
        Some(_) => Output::Zstd {
            level: config.zstd_level,
            workers: config.zstd_workers,
        },
        None => Output::Raw,
    };
    Ok(Verdict::Admit(Admission {
        _handler: handler,
        compress,
        output,
        limits: Limits {
            max_core_bytes: config.max_core_bytes,
            min_free_bytes: config.min_free_bytes,
        },
        mapped: MappedFiles::default(),
        charge: None,
    }))
}

/// The record of a crash before its core is read: identity and metadata filled, sizes zero,
/// state `Stored` until the capture says otherwise.
pub fn new_record(crash: &CrashFacts, info: ProcInfo) -> CrashRecord {
    CrashRecord {
        id: Spool::new_id(crash.time, crash.pid),
        pid: crash.pid,
        tid: crash.tid,
        signal: crash.signal,
        time: crash.time,
        uid: crash.uid,
        gid: crash.gid,
        hostname: rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
        comm: info.comm,
        exe: info.exe,
        cmdline: info.cmdline,
        cgroup: info.cgroup,
        pod: info.pod,
        raw_size: 0,
        kept_size: 0,
        stored_size: 0,
        sha256: String::new(),
        encoding: CoreEncoding::None,
        state: CaptureState::Stored,
        cause: None,
        reason: String::new(),
        held_ms: 0,
        done_ms: 0,
        suppressed: 0,
    }
}

/// Captures an admitted core from `source` into a new spool entry and publishes it. `release`
/// gets the source back the moment it reached EOF (the crashed process is let go then);
/// `amend` may complete the record from what was learned meanwhile (the socket server learns
/// the signal from the core itself) just before publication. `started` is when the crash
/// reached us: `held_ms` and `done_ms` count from it.
pub fn capture<R: CoreSource>(
    spool: &Spool,
    admission: Admission,
    mut record: CrashRecord,
    source: R,
    release: impl FnOnce(R),
    started: Instant,
    amend: impl FnOnce(&mut CrashRecord),
) -> Result<CrashRecord, CaptureError> {
    let entry = spool.begin(&record.id)?;
    let waited = started.elapsed();
    let captured = pipeline::capture(
        source,
        release,
        entry.dir(),
        admission.output,
        admission.limits,
    )?;
    // The next crash may compress inline now; the handler slot stays until publication.
    let Admission {
        _handler,
        compress,
        mapped,
        charge,
        ..
    } = admission;
    drop(compress);
    crate::limits::debit(charge.as_ref(), captured.kept_size);
    if !mapped.is_empty() {
        // The process is released already; the descriptors opened while it was held still
        // read its files.
        let pod = record
            .pod
            .as_ref()
            .map(|p| p.pod_uid.clone())
            .unwrap_or_else(|| "host".to_owned());
        let known = spool.dir().join(crate::mapped::KNOWN_DIR).join(pod);
        mapped.keep(entry.dir(), &known, crate::mapped::KeepLimits::default());
    }
    record.raw_size = captured.raw_size;
    record.kept_size = captured.kept_size;
    record.stored_size = captured.stored_size;
    record.sha256 = captured.sha256;
    record.encoding = captured.encoding;
    record.state = captured.state;
    record.cause = captured.cause;
    record.reason = captured.reason;
    record.held_ms = (waited + captured.held).as_millis() as u64;
    amend(&mut record);
    record.done_ms = started.elapsed().as_millis() as u64;
    spool.publish(entry, &record)?;
    Ok(record)
}

/// Publishes a record without a core: `state` and `reason` say why, `raw_size` is what the
/// kernel sent anyway (the pipe must be drained; a socket refusal costs nothing), `held` how long
/// the crashed process waited for us.
pub fn publish_refusal(
    spool: &Spool,
    mut record: CrashRecord,
    refusal: Refusal,
    raw_size: u64,
    held: Duration,
    started: Instant,
) -> Result<CrashRecord, CaptureError> {
    record.raw_size = raw_size;
    record.held_ms = held.as_millis() as u64;
    record.state = refusal.state;
    record.cause = Some(refusal.cause);
    record.reason = refusal.reason;
    record.encoding = CoreEncoding::None;
    let entry = spool.begin(&record.id)?;
    record.done_ms = started.elapsed().as_millis() as u64;
    spool.publish(entry, &record)?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> HandlerConfig {
        HandlerConfig {
            spool_dir: dir.join("spool"),
            min_free_bytes: 0,
            ..HandlerConfig::default()
        }
    }

    #[test]
    fn checks_run_in_order_policy_slots_floor() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = HandlerConfig {
            non_pod: NonPodPolicy::Drop,
            max_handlers: 1,
            slot_wait_ms: 0,
            min_free_bytes: u64::MAX,
            ..config(tmp.path())
        };
        let spool = Spool::open(&cfg.spool_dir).unwrap();
        assert!(matches!(admit(&cfg, &spool, false).unwrap(), Verdict::Drop));
        match admit(&cfg, &spool, true).unwrap() {
            Verdict::Refuse(Refusal {
                state,
                cause,
                reason,
            }) => {
                assert_eq!(state, CaptureState::Skipped);
                assert_eq!(cause, CoredumpReason::DiskFloor);
                assert!(reason.contains("free-space floor"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let _busy = spool.try_slot(SlotKind::Handler, 1).unwrap();
        match admit(&cfg, &spool, true).unwrap() {
            Verdict::Refuse(Refusal {
                state,
                cause,
                reason,
            }) => {
                assert_eq!(state, CaptureState::RateLimited);
                assert_eq!(cause, CoredumpReason::TooManyCrashes);
                assert!(reason.contains("1 crashes in flight"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn admission_holds_its_handler_slot_until_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = HandlerConfig {
            max_handlers: 1,
            slot_wait_ms: 0,
            max_compressing: 0,
            ..config(tmp.path())
        };
        let spool = Spool::open(&cfg.spool_dir).unwrap();
        let Verdict::Admit(first) = admit(&cfg, &spool, true).unwrap() else {
            panic!("first crash must be admitted");
        };
        assert!(matches!(first.output(), Output::Raw), "no compress slot");
        assert!(matches!(
            admit(&cfg, &spool, true).unwrap(),
            Verdict::Refuse(Refusal {
                state: CaptureState::RateLimited,
                ..
            })
        ));
        drop(first);
        assert!(matches!(
            admit(&cfg, &spool, true).unwrap(),
            Verdict::Admit(_)
        ));
    }

    #[test]
    fn capture_amends_and_publishes() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path());
        let spool = Spool::open(&cfg.spool_dir).unwrap();
        let Verdict::Admit(admission) = admit(&cfg, &spool, true).unwrap() else {
            panic!("admitted");
        };
        let facts = CrashFacts {
            pid: 42,
            tid: 42,
            signal: 0,
            time: 9,
            uid: 1,
            gid: 2,
        };
        let record = new_record(&facts, ProcInfo::default());
        let data = vec![5u8; 70_000];
        let published = capture(
            &spool,
            admission,
            record,
            std::io::Cursor::new(data.clone()),
            drop,
            Instant::now(),
            |r| r.signal = 6,
        )
        .unwrap();
        assert_eq!(published.signal, 6, "amended before publication");
        assert_eq!(spool.record(&published.id).unwrap(), published);
        let zst = std::fs::read(spool.entry_dir(&published.id).join("core.zst")).unwrap();
        assert_eq!(zstd::decode_all(&zst[..]).unwrap(), data);
    }
}
