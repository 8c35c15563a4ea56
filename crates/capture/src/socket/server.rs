//! The listening side: a root-only socket, one acceptor thread that answers every kernel
//! request itself (fast: a few `/proc` reads and two small messages), one thread per admitted
//! capture (bounded by the handler slots), one waiting-room thread for crashes over the bound
//! (they wait for a slot as long as the pipe handler would), one thread publishing refusal
//! records.
//!
//! The acceptor never waits on a core: an admitted crash is handed to its own thread the moment
//! the kernel confirmed our answer, so one slow core never delays the answer to the next crash,
//! and crashes beyond the concurrency bound are refused at once (`REJECT`, the task goes free).

use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::record::CaptureState;
use crate::socket::conn::{self, Waiting};
use crate::socket::refusals::{self, PendingRefusal};
use crate::socket::stats::{Counters, ServerStats};
use crate::spool::Spool;
use crate::{CaptureError, HandlerConfig};

/// Refusal records waiting for publication; beyond this they are counted as lost.
const REFUSAL_QUEUE: usize = 1024;
/// Crashes waiting for a slot; beyond this they are refused at once.
const WAITING_ROOM: usize = 4096;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The socket path, in the initial mount namespace; its directory is made root-only.
    pub socket_path: PathBuf,
    /// Limits, spool and policies, the same the pipe handler obeys.
    pub handler: HandlerConfig,
    /// Where proc is mounted (tests substitute a recorded tree).
    pub proc_root: PathBuf,
    /// Longest wait for the kernel's request and mark; the kernel sends both at once, so only
    /// a stuck peer ever hits it.
    pub handshake_timeout: Duration,
    /// How long a refusal record waits for the refused task's exit status (its signal, on
    /// kernels that do not say it up front) before it is published without.
    pub signal_wait: Duration,
}

impl ServerConfig {
    /// Defaults for everything but the socket path and the handler configuration.
    pub fn new(socket_path: impl Into<PathBuf>, handler: HandlerConfig) -> ServerConfig {
        ServerConfig {
            socket_path: socket_path.into(),
            handler,
            proc_root: PathBuf::from("/proc"),
            handshake_timeout: Duration::from_secs(2),
            signal_wait: Duration::from_secs(2),
        }
    }
}

/// State shared by the acceptor, the capture threads and the refusal publisher.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    /// `config.handler` with no wait for a slot: what the acceptor and the waiting room decide
    /// with, so that neither ever blocks.
    pub(crate) no_wait: HandlerConfig,
    pub(crate) spool: Spool,
    pub(crate) counters: Counters,
    inflight: Mutex<usize>,
    idle: Condvar,
    refusals: Mutex<Option<SyncSender<PendingRefusal>>>,
    waiting: Mutex<Option<SyncSender<Waiting>>>,
}

impl Shared {
    /// Queues a refusal record for publication, counting it lost if the queue is full.
    pub(crate) fn queue_refusal(&self, pending: PendingRefusal) {
        let sender = self
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let queued = sender.is_some_and(|s| s.try_send(pending).is_ok());
        if !queued {
            Counters::bump(&self.counters.records_lost);
            tracing::error!("coredump socket: refusal record lost (publication queue full)");
        }
    }

    /// Sends a crash to the waiting room; refuses it at once if the room is full.
    pub(crate) fn queue_waiting(self: &Arc<Shared>, waiting: Waiting) {
        let sender = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(sender) = sender else {
            return self.refuse_full(waiting);
        };
        if let Err(e) = sender.try_send(waiting) {
            let waiting = match e {
                std::sync::mpsc::TrySendError::Full(w)
                | std::sync::mpsc::TrySendError::Disconnected(w) => w,
            };
            self.refuse_full(waiting);
        }
    }

    fn refuse_full(self: &Arc<Shared>, w: Waiting) {
        let verdict = Ok(crate::admission::Verdict::Refuse(
            crate::admission::Refusal::new(
                CaptureState::RateLimited,
                coredump_api::CoredumpReason::TooManyCrashes,
                format!(
                    "more than {} crashes in flight and {WAITING_ROOM} waiting",
                    self.config.handler.max_handlers
                ),
            ),
        ));
        conn::conclude(
            self, verdict, w.stream, w.record, w.peer, w.started, w.within,
        );
    }

    /// Marks one more capture in flight; the returned guard marks it done when dropped
    /// (also when its thread panics).
    pub(crate) fn begin_capture(self: &Arc<Shared>) -> InflightGuard {
        *self.inflight.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        InflightGuard {
            shared: Arc::clone(self),
        }
    }

    fn wait_idle(&self) {
        let mut n = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            n = self.idle.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// One capture in flight, for [`CaptureServer::stop`] to wait on.
pub(crate) struct InflightGuard {
    shared: Arc<Shared>,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut n = self
            .shared
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        self.shared.idle.notify_all();
    }
}

/// A running capture server. [`CaptureServer::stop`] (or drop) stops accepting, lets every
/// capture in flight finish, publishes the pending records and removes the socket file.
pub struct CaptureServer {
    shared: Arc<Shared>,
    socket_path: PathBuf,
    socket_ino: (u64, u64),
    stop: Option<OwnedFd>,
    acceptor: Option<JoinHandle<()>>,
    waiter: Option<JoinHandle<()>>,
    publisher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for CaptureServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureServer")
            .field("socket_path", &self.socket_path)
            .field("stats", &self.stats())
            .finish()
    }
}

impl CaptureServer {
    /// Binds the socket (replacing a stale one left by a killed server) and starts serving.
    /// Marks this process non-dumpable: if it crashed itself with `core_pattern` pointing at
    /// its own socket, the kernel would wait forever for an answer nobody can give.
    pub fn start(config: ServerConfig) -> Result<CaptureServer, CaptureError> {
        let spool = Spool::open(&config.handler.spool_dir)?;
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
            .map_err(|e| {
                CaptureError::io("prctl(PR_SET_DUMPABLE) for", &config.socket_path, e.into())
            })?;
        let listener = crate::socket::listener::bind(&config.socket_path)?;
        let meta = std::fs::symlink_metadata(&config.socket_path)
            .map_err(|e| CaptureError::io("stat", &config.socket_path, e))?;
        let (stop_rx, stop_tx) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| CaptureError::io("create stop pipe for", &config.socket_path, e.into()))?;
        let (refusal_tx, refusal_rx) = std::sync::mpsc::sync_channel(REFUSAL_QUEUE);
        let (waiting_tx, waiting_rx) = std::sync::mpsc::sync_channel(WAITING_ROOM);
        let socket_path = config.socket_path.clone();
        let no_wait = HandlerConfig {
            slot_wait_ms: 0,
            ..config.handler.clone()
        };
        let shared = Arc::new(Shared {
            no_wait,
            config,
            spool,
            counters: Counters::default(),
            inflight: Mutex::new(0),
            idle: Condvar::new(),
            refusals: Mutex::new(Some(refusal_tx)),
            waiting: Mutex::new(Some(waiting_tx)),
        });
        let publisher = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("core-refusals".into())
                .spawn(move || refusals::publish_loop(&shared, &refusal_rx))
                .map_err(|e| CaptureError::io("spawn refusal publisher for", &socket_path, e))?
        };
        let waiter = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("core-waiting".into())
                .spawn(move || crate::socket::waiting::wait_loop(&shared, &waiting_rx))
                .map_err(|e| CaptureError::io("spawn waiting room for", &socket_path, e))?
        };
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("core-accept".into())
                .spawn(move || accept_loop(&shared, &listener, &stop_rx))
                .map_err(|e| CaptureError::io("spawn acceptor for", &socket_path, e))?
        };
        Ok(CaptureServer {
            shared,
            socket_path,
            socket_ino: (meta.dev(), meta.ino()),
            stop: Some(stop_tx),
            acceptor: Some(acceptor),
            waiter: Some(waiter),
            publisher: Some(publisher),
        })
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The `core_pattern` that sends crashes here: `@@<socket path>`.
    pub fn pattern(&self) -> String {
        format!("@@{}", self.socket_path.display())
    }

    /// What the server did so far.
    pub fn stats(&self) -> ServerStats {
        self.shared.counters.snapshot()
    }

    /// Stops the server: accepts what the kernel already queued, answers the crashes waiting
    /// for a slot (each within its wait), waits for the captures in flight, publishes pending
    /// refusal records, removes the socket file. Point
    /// `core_pattern` elsewhere first, or crashes meanwhile find nobody listening.
    pub fn stop(mut self) -> ServerStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        // Closing the write end wakes the acceptor's poll.
        drop(self.stop.take());
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        drop(
            self.shared
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        if let Some(waiter) = self.waiter.take() {
            let _ = waiter.join();
        }
        self.shared.wait_idle();
        drop(
            self.shared
                .refusals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        if let Some(publisher) = self.publisher.take() {
            let _ = publisher.join();
        }
        // Remove the socket only if it is still the one we bound.
        if let Ok(meta) = std::fs::symlink_metadata(&self.socket_path)
            && (meta.dev(), meta.ino()) == self.socket_ino
        {
            let _ = std::fs::remove_file(&self.socket_path);
        }
    }
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Accepts connections until the stop pipe closes, then takes what is still queued.
fn accept_loop(shared: &Arc<Shared>, listener: &UnixListener, stop: &OwnedFd) {
    use rustix::event::{PollFd, PollFlags, poll};
    loop {
        let mut fds = [
            PollFd::new(listener, PollFlags::IN),
            PollFd::new(stop, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                tracing::error!(error = %e, "coredump socket: poll failed; stopping");
                return;
            }
        }
        let stopping = !fds[1].revents().is_empty();
        accept_ready(shared, listener);
        if stopping {
            return;
        }
    }
}

/// Accepts and answers every connection ready now.
fn accept_ready(shared: &Arc<Shared>, listener: &UnixListener) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                Counters::bump(&shared.counters.accepted);
                crate::socket::conn::intake(shared, stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning; the kernel keeps
                // the connection queued meanwhile.
                tracing::error!(error = %e, "coredump socket: accept failed");
                std::thread::sleep(Duration::from_millis(10));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    use std::os::unix::net::UnixStream;

    use crate::socket::test_config as config;

    #[test]
    fn a_process_connecting_by_itself_is_closed_unanswered_and_counted() {
        let tmp = tempfile::tempdir().unwrap();
        let server = CaptureServer::start(config(tmp.path())).unwrap();
        let path = server.socket_path().to_path_buf();
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(server.pattern(), format!("@@{}", path.display()));

        // Pretend to be the kernel: a well-formed request, but we are not dumping core.
        let mut client = UnixStream::connect(&path).unwrap();
        let mut request = 16u32.to_ne_bytes().to_vec();
        request.extend_from_slice(&16u32.to_ne_bytes());
        request.extend_from_slice(&0xfu64.to_ne_bytes());
        // The server may hang up before or after this arrives; either way nothing comes back.
        let _ = client.write_all(&request);
        let mut answer = Vec::new();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        match client.read_to_end(&mut answer) {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
        assert!(
            answer.is_empty(),
            "no answer to a non-kernel peer: {answer:?}"
        );

        let stats = server.stop();
        assert_eq!(
            stats,
            ServerStats {
                accepted: 1,
                foreign: 1,
                ..ServerStats::default()
            }
        );
        assert!(!path.exists(), "the socket is removed on stop");
        let spool = Spool::open(tmp.path().join("spool")).unwrap();
        assert!(
            spool.ready().unwrap().is_empty(),
            "no record for a foreign peer"
        );
    }
}
