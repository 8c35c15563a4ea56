//! The waiting room: crashes over the concurrency bound wait here, held by the kernel, for a
//! handler slot to free up, at most `slot_wait_ms` ([`crate::HandlerConfig`]), the same bound
//! the pipe handler waits. One thread serves the room, first come first served, so the acceptor
//! never blocks: a crash that can be answered at once still is while others wait.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use coredump_api::CoredumpReason;

use crate::admission::{self, Refusal, Verdict};
use crate::record::CaptureState;
use crate::socket::conn::{self, Waiting};
use crate::socket::server::Shared;

/// How often waiting crashes try for a slot again.
const RETRY: Duration = Duration::from_millis(10);

/// Runs until the sending side is dropped and every waiting crash is answered.
pub(crate) fn wait_loop(shared: &Arc<Shared>, incoming: &Receiver<Waiting>) {
    let wait = Duration::from_millis(shared.config.handler.slot_wait_ms);
    let mut room: Vec<Waiting> = Vec::new();
    let mut open = true;
    while open || !room.is_empty() {
        if open {
            let received = if room.is_empty() {
                incoming.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                incoming.recv_timeout(RETRY)
            };
            match received {
                Ok(w) => room.push(w),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
            loop {
                match incoming.try_recv() {
                    Ok(w) => room.push(w),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
        } else {
            // Stopping: no new arrivals, but those here still get their chance at a slot.
            std::thread::sleep(RETRY);
        }
        let mut still = Vec::with_capacity(room.len());
        let mut slots_left = true;
        for w in room.drain(..) {
            // Once one crash found no slot, later arrivals would not either: keep the order.
            let verdict = if slots_left {
                admission::admit(&shared.no_wait, &shared.spool, w.in_pod)
            } else {
                Ok(Verdict::Refuse(Refusal::new(
                    CaptureState::RateLimited,
                    CoredumpReason::TooManyCrashes,
                    String::new(),
                )))
            };
            match verdict {
                Ok(Verdict::Refuse(Refusal {
                    state: CaptureState::RateLimited,
                    ..
                })) => {
                    slots_left = false;
                    if w.started.elapsed() < wait {
                        still.push(w);
                    } else {
                        let timed_out = Ok(Verdict::Refuse(Refusal::new(
                            CaptureState::RateLimited,
                            CoredumpReason::TooManyCrashes,
                            format!(
                                "more than {} crashes in flight for {} ms",
                                shared.config.handler.max_handlers,
                                shared.config.handler.slot_wait_ms
                            ),
                        )));
                        conn::conclude(
                            shared, timed_out, w.stream, w.record, w.peer, w.started, w.within,
                        );
                    }
                }
                other => conn::conclude(
                    shared, other, w.stream, w.record, w.peer, w.started, w.within,
                ),
            }
        }
        room = still;
    }
}
