//! Publication of the records of crashes answered `REJECT`.
//!
//! The answer itself never waits for this: the task is already gone when its record is
//! published. The only reason to wait at all is the signal, which kernels before 6.19 do not
//! give up front; the refused task's exit status carries it once its parent has reaped it.
//! Records wait for that at most [`super::ServerConfig::signal_wait`], all in this one thread,
//! then go out with signal 0 ("unknown") rather than late.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use crate::admission;
use crate::record::CrashRecord;
use crate::socket::peer;
use crate::socket::server::Shared;
use crate::socket::stats::Counters;

/// How often pending records look for their task's exit status.
const POLL: Duration = Duration::from_millis(20);

/// A refused crash waiting for publication.
pub(crate) struct PendingRefusal {
    pub(crate) record: CrashRecord,
    pub(crate) refusal: crate::admission::Refusal,
    /// How long the task waited for our answer.
    pub(crate) held: Duration,
    pub(crate) started: Instant,
    /// Publish by then even without a signal.
    pub(crate) deadline: Instant,
    /// The refused task, for its exit status.
    pub(crate) pidfd: OwnedFd,
}

impl PendingRefusal {
    /// Fills the signal from the exit status if it is there now.
    fn learn_signal(&mut self) {
        if self.record.signal != 0 {
            return;
        }
        if let Some(signal) = peer::exit_signal(self.pidfd.as_fd()) {
            self.record.signal = signal;
        }
    }
}

/// Runs until the sending side is dropped and every pending record is out.
pub(crate) fn publish_loop(shared: &Shared, incoming: &Receiver<PendingRefusal>) {
    let mut pending: Vec<PendingRefusal> = Vec::new();
    let mut open = true;
    while open || !pending.is_empty() {
        if open {
            let received = if pending.is_empty() {
                incoming.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                incoming.recv_timeout(POLL)
            };
            match received {
                Ok(p) => pending.push(p),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
            loop {
                match incoming.try_recv() {
                    Ok(p) => pending.push(p),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
        }
        let now = Instant::now();
        let mut still = Vec::with_capacity(pending.len());
        for mut p in pending.drain(..) {
            p.learn_signal();
            // Once the server stops, nothing waits any more.
            if p.record.signal != 0 || now >= p.deadline || !open {
                publish(shared, p);
            } else {
                still.push(p);
            }
        }
        pending = still;
    }
}

fn publish(shared: &Shared, p: PendingRefusal) {
    let pid = p.record.pid;
    let result =
        admission::publish_refusal(&shared.spool, p.record, p.refusal, 0, p.held, p.started);
    if let Err(e) = result {
        Counters::bump(&shared.counters.records_lost);
        tracing::error!(pid, error = %e, "coredump socket: cannot publish the record of a refused crash");
    }
}
