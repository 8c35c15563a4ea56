//! One kernel connection, from the request to the published record.
//!
//! The acceptor thread runs [`intake`]: identify the peer, read the request, read `/proc` while
//! the kernel holds the task, decide through [`crate::admission`], answer. A refusal is
//! answered on the spot (the task is released within milliseconds, nothing is written) and its
//! record queued; an admitted crash gets its own thread, which reads the core through the same
//! pipeline as the pipe handler and closes the connection the moment the core is complete, so
//! the kernel lets the task go at the same point a pipe handler would.

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use coredump_api::CoredumpReason;

use crate::admission::{self, Admission, CrashFacts, Refusal, Verdict};
use crate::limits::{Charge, Gate};
use crate::record::{CaptureState, CrashRecord};
use crate::socket::identity::{self, HeadTap, Peer};
use crate::socket::peer;
use crate::socket::protocol::{Answer, MARK_LEN, Mark, ProtocolError, REQ_SIZE_VER0, Request};
use crate::socket::refusals::PendingRefusal;
use crate::socket::server::Shared;
use crate::socket::stats::Counters;

/// How long a capture thread waits for the exit status when the core did not name the signal.
const CAPTURED_SIGNAL_WAIT: Duration = Duration::from_millis(500);

/// Handles a freshly accepted connection up to the answer; captures continue on their own
/// thread. Never blocks on a core.
pub(crate) fn intake(shared: &Arc<Shared>, mut stream: UnixStream) {
    let started = Instant::now();
    let time = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let peer = match identity::identify(&stream) {
        Ok(peer) => peer,
        Err(e) => {
            Counters::bump(&shared.counters.foreign);
            tracing::warn!(error = %e, "coredump socket: closed a connection that is not the kernel's");
            return;
        }
    };
    if let Err(e) = stream.set_read_timeout(Some(shared.config.handshake_timeout)) {
        tracing::warn!(pid = peer.pid, error = %e, "coredump socket: cannot bound the handshake");
    }
    if let Err(e) = read_request(&mut stream) {
        Counters::bump(&shared.counters.protocol_errors);
        tracing::error!(pid = peer.pid, error = %e, "coredump socket: bad request; the kernel drops this core");
        return;
    }
    let proc = identity::read_proc(&shared.config.proc_root, &peer);
    let crash = CrashFacts {
        pid: peer.pid,
        tid: proc.tid.unwrap_or(peer.pid),
        signal: peer.signal.unwrap_or(0),
        time,
        uid: peer.uid,
        gid: peer.gid,
    };
    let in_pod = proc.info.pod.is_some();
    let record = admission::new_record(&crash, proc.info);
    let within = match admission::gate(&shared.config.handler, &record) {
        Ok(Gate::Pass {
            max_core_bytes,
            charge,
        }) => Within {
            max_core_bytes,
            charge,
        },
        Ok(Gate::Suppress) => {
            // Counted in the pod's limit state; the agent publishes one record for them all.
            let _ = answer(&mut stream, Answer::Reject);
            Counters::bump(&shared.counters.suppressed);
            return;
        }
        Ok(Gate::Refuse(refusal)) => {
            let verdict = Ok(Verdict::Refuse(refusal));
            conclude(
                shared,
                verdict,
                stream,
                record,
                peer,
                started,
                Within::none(),
            );
            return;
        }
        Err(e) => {
            conclude(
                shared,
                Err(e),
                stream,
                record,
                peer,
                started,
                Within::none(),
            );
            return;
        }
    };
    // Decided without waiting for a slot: the acceptor must answer the next crash too.
    let verdict = admission::admit(&shared.no_wait, &shared.spool, in_pod);
    if let Ok(Verdict::Refuse(Refusal {
        state: CaptureState::RateLimited,
        ..
    })) = verdict
        && shared.config.handler.slot_wait_ms > 0
        && shared.config.handler.max_handlers > 0
    {
        tracing::info!(pid = peer.pid, "crash waits for a handler slot");
        shared.queue_waiting(Waiting {
            stream,
            record,
            peer,
            started,
            in_pod,
            within,
        });
        return;
    }
    conclude(shared, verdict, stream, record, peer, started, within);
}

/// What the crash-loop limits allowed a crash ([`admission::gate`]), carried to its capture.
#[derive(Debug)]
pub(crate) struct Within {
    max_core_bytes: u64,
    charge: Option<Charge>,
}

impl Within {
    /// No limit beyond the configuration's (crashes that will not be captured anyway).
    fn none() -> Within {
        Within {
            max_core_bytes: u64::MAX,
            charge: None,
        }
    }
}

/// A crash over the concurrency bound, waiting (held by the kernel) for a slot to free up.
pub(crate) struct Waiting {
    pub(crate) stream: UnixStream,
    pub(crate) record: CrashRecord,
    pub(crate) peer: Peer,
    pub(crate) started: Instant,
    pub(crate) in_pod: bool,
    pub(crate) within: Within,
}

/// Answers a crash as `verdict` says and sees it through: a capture thread, a queued refusal
/// record, or nothing (dropped by policy).
pub(crate) fn conclude(
    shared: &Arc<Shared>,
    verdict: Result<Verdict, crate::CaptureError>,
    mut stream: UnixStream,
    record: CrashRecord,
    peer: Peer,
    started: Instant,
    within: Within,
) {
    match verdict {
        Ok(Verdict::Admit(admitted)) => match answer(&mut stream, Answer::Capture) {
            Ok(()) => {
                // While the kernel holds the task on this connection its files can be opened.
                let mapped = crate::mapped::MappedFiles::open(
                    std::path::Path::new("/proc"),
                    peer.pid,
                    peer.pid,
                );
                let admitted = admitted.with_mapped_files(mapped);
                let admitted = admitted.within(within.max_core_bytes, within.charge);
                start_capture(shared, admitted, record, stream, peer, started)
            }
            Err(e) => {
                Counters::bump(&shared.counters.protocol_errors);
                let reason = format!("the kernel did not take our answer to capture: {e}");
                let refusal =
                    Refusal::new(CaptureState::Failed, CoredumpReason::CaptureError, reason);
                refuse(shared, record, refusal, peer, started);
            }
        },
        Ok(Verdict::Refuse(refusal)) => {
            if let Err(e) = answer(&mut stream, Answer::Reject) {
                tracing::warn!(pid = peer.pid, error = %e, "coredump socket: answering REJECT");
            }
            drop(stream);
            Counters::bump(&shared.counters.refused);
            refuse(shared, record, refusal, peer, started);
        }
        Ok(Verdict::Drop) => {
            let _ = answer(&mut stream, Answer::Reject);
            Counters::bump(&shared.counters.dropped);
        }
        Err(e) => {
            let _ = answer(&mut stream, Answer::Reject);
            drop(stream);
            Counters::bump(&shared.counters.failed);
            let reason = format!("cannot decide on the crash: {e}");
            let refusal = Refusal::new(CaptureState::Failed, CoredumpReason::CaptureError, reason);
            refuse(shared, record, refusal, peer, started);
        }
    }
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("reading from the kernel: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
    #[error("the kernel answered mark {0:?}")]
    Mark(Mark),
}

/// Reads and checks the request, discarding any part beyond its first version.
fn read_request(stream: &mut UnixStream) -> Result<Request, HandshakeError> {
    let mut head = [0u8; REQ_SIZE_VER0 as usize];
    stream.read_exact(&mut head)?;
    let request = Request::parse(&head)?;
    let mut rest = vec![0u8; request.trailing()];
    stream.read_exact(&mut rest)?;
    Ok(request)
}

/// Sends our answer and reads the kernel's mark.
fn answer(stream: &mut UnixStream, answer: Answer) -> Result<(), HandshakeError> {
    stream.write_all(&answer.encode())?;
    let mut mark = [0u8; MARK_LEN];
    stream.read_exact(&mut mark)?;
    match Mark::parse(mark) {
        Mark::ReqAck => Ok(()),
        other => Err(HandshakeError::Mark(other)),
    }
}

/// Queues the record of a crash answered without its core.
fn refuse(shared: &Shared, record: CrashRecord, refusal: Refusal, peer: Peer, started: Instant) {
    tracing::info!(pid = record.pid, comm = %record.comm, state = ?refusal.state, cause = ?refusal.cause, reason = %refusal.reason, "crash refused");
    shared.queue_refusal(PendingRefusal {
        record,
        refusal,
        held: started.elapsed(),
        started,
        deadline: Instant::now() + shared.config.signal_wait,
        pidfd: peer.pidfd,
    });
}

/// Hands an admitted crash to its own thread.
fn start_capture(
    shared: &Arc<Shared>,
    admitted: Admission,
    record: CrashRecord,
    stream: UnixStream,
    peer: Peer,
    started: Instant,
) {
    if let Err(e) = stream.set_read_timeout(None) {
        tracing::warn!(pid = peer.pid, error = %e, "coredump socket: cannot clear the handshake timeout");
    }
    let inflight = shared.begin_capture();
    let thread_shared = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name(format!("core-{}", peer.pid))
        .spawn(move || {
            let _inflight = inflight;
            capture_one(&thread_shared, admitted, record, stream, &peer, started);
        });
    if let Err(e) = spawned {
        // The closure (and the stream in it) is gone: the kernel sees the connection close and
        // releases the task without a core.
        Counters::bump(&shared.counters.failed);
        tracing::error!(error = %e, "coredump socket: cannot start a capture thread; core lost");
    }
}

/// Reads one admitted core into the spool.
fn capture_one(
    shared: &Shared,
    admitted: Admission,
    record: CrashRecord,
    stream: UnixStream,
    peer: &Peer,
    started: Instant,
) {
    let head = Cell::new(None::<Vec<u8>>);
    let result = admission::capture(
        &shared.spool,
        admitted,
        record,
        HeadTap::new(CoreStream(stream)),
        |tap| {
            let (CoreStream(stream), bytes) = tap.into_parts();
            // Closing our end lets the kernel finish the dump and release the task.
            drop(stream);
            head.set(Some(bytes));
        },
        started,
        |record| {
            let (signal, tid) = identity::from_core_head(&head.take().unwrap_or_default());
            if let Some(tid) = tid {
                record.tid = tid;
            }
            if record.signal == 0 {
                record.signal = signal
                    .or_else(|| exit_signal(peer, CAPTURED_SIGNAL_WAIT))
                    .unwrap_or(0);
            }
        },
    );
    match result {
        Ok(record) => {
            Counters::bump(&shared.counters.captured);
            tracing::info!(
                pid = record.pid, comm = %record.comm, signal = record.signal,
                state = ?record.state, raw = record.raw_size, stored = record.stored_size,
                held_ms = record.held_ms, "core captured through the coredump socket"
            );
        }
        Err(e) => {
            // The pending entry (if any) is reaped as Failed by the ingest.
            Counters::bump(&shared.counters.failed);
            tracing::error!(pid = peer.pid, error = %e, "coredump socket: capture failed");
        }
    }
}

/// The core as the kernel streams it. The kernel sends one page per message and the socket
/// holds only ~40 of them, so a plain `read` returns ~10 KB at a time (29,000 reads for
/// 256 MiB, each waking the pipeline's trailing thread); `MSG_WAITALL` returns only when the
/// buffer is full or the core ended: one call per [`SOCKET_READ`] bytes.
struct CoreStream(UnixStream);

/// Bytes taken from the socket per `recv` (then written to the spill file before the next).
/// The kernel's end of the connection queues only about 200 KiB: while a whole MiB was written
/// out, the dumping task waited with a full socket, so the core crossed in two alternating
/// halves. A write of this much takes less time than the kernel needs to queue as much again.
const SOCKET_READ: usize = 128 << 10;

impl Read for CoreStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let len = buf.len().min(SOCKET_READ);
        loop {
            match rustix::net::recv(&self.0, &mut buf[..len], rustix::net::RecvFlags::WAITALL) {
                Ok((n, _)) => return Ok(n),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The signal in the exit status of the peer, once its parent has reaped it (the only time the
/// kernel records one), waiting at most `wait`.
fn exit_signal(peer: &Peer, wait: Duration) -> Option<i32> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(signal) = peer::exit_signal(peer.pidfd.as_fd()) {
            return Some(signal);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
