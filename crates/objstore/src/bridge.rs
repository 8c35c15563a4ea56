//! Runs `object_store`'s futures for the synchronous [`coredump_store::BlobStore`] trait,
//! whatever thread calls it: a plain thread, a `spawn_blocking` thread, or a worker of the
//! caller's own tokio runtime. The futures run on a small private runtime; the caller waits on
//! a channel for the answer, never with `Handle::block_on` (which panics inside an async
//! context) and never on a runtime whose workers it might be occupying itself.

use std::future::Future;
use std::sync::mpsc;

use coredump_store::StoreError;

/// Worker threads of the private runtime: object-store requests are I/O bound, two keep one
/// upload's parts and a download going at once.
const WORKERS: usize = 2;

/// The private runtime. Dropping it never blocks (safe inside an async context too).
#[derive(Debug)]
pub struct Bridge {
    runtime: Option<tokio::runtime::Runtime>,
}

/// The answer of a spawned future, to wait for from any thread.
#[derive(Debug)]
pub struct Pending<T> {
    answer: mpsc::Receiver<T>,
}

impl<T> Pending<T> {
    /// Waits for the answer; an error if the task died (it panicked, or the store was dropped
    /// while it ran).
    pub fn wait(self) -> Result<T, StoreError> {
        self.answer.recv().map_err(|_| {
            StoreError::backend(
                "waiting for an object store request",
                "the request's task ended without an answer (the store is shutting down)",
            )
        })
    }
}

impl Bridge {
    /// Starts the private runtime; its threads are named `name`.
    pub fn new(name: &str) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKERS)
            .thread_name(name)
            .enable_all()
            .build()
            .map_err(|e| StoreError::backend("starting the object store runtime", e))?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Starts `future` on the private runtime; [`Pending::wait`] gives its output.
    pub fn spawn<F>(&self, future: F) -> Pending<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, answer) = mpsc::sync_channel(1);
        if let Some(runtime) = &self.runtime {
            runtime.spawn(async move {
                // The caller may have stopped waiting (a dropped reader): nothing to do then.
                let _ = tx.send(future.await);
            });
        }
        Pending { answer }
    }

    /// Runs `future` on the private runtime and waits for its output.
    pub fn run<F>(&self, future: F) -> Result<F::Output, StoreError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(future).wait()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Not `drop(runtime)`: that waits for the workers and panics inside an async
            // context, where the last owner of a store may well drop it.
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_from_a_plain_thread() {
        let bridge = Bridge::new("t-plain").expect("runtime");
        let got = bridge.run(async { 40 + 2 }).expect("answer");
        assert_eq!(got, 42);
    }

    /// The case `Handle::block_on` gets wrong: a caller on a worker of its own runtime (single
    /// threaded here, so waiting on that runtime would deadlock), and drops the bridge there.
    #[test]
    fn runs_and_drops_inside_another_runtime() {
        let outer = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("outer runtime");
        outer.block_on(async {
            let bridge = Bridge::new("t-nested").expect("runtime");
            let got = bridge
                .run(async {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    7
                })
                .expect("answer");
            assert_eq!(got, 7);
            drop(bridge);
        });
    }

    #[test]
    fn a_panicking_task_is_an_error_not_a_hang() {
        let bridge = Bridge::new("t-panic").expect("runtime");
        let err = bridge
            .run(async {
                if true {
                    panic!("deliberate");
                }
            })
            .expect_err("no answer");
        assert!(err.to_string().contains("without an answer"), "{err}");
    }
}
