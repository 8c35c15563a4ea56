//! Capture through the kernel's coredump socket (`core_pattern` = `@@<path>`, Linux >= 6.17).
//!
//! Instead of spawning `coredump-detector handle` for every crash, the kernel connects to a
//! socket of the long-running process, which can refuse a crash before a single byte is
//! written and learns who crashed from a pidfd that cannot be confused by pid reuse. The bytes
//! then go through the same [`crate::pipeline`] and [`crate::admission`] as the pipe handler:
//! one set of limits, one record format, one spool.
//!
//! # The protocol, as verified on Linux 6.18
//! * On a crash the kernel connects (non-blocking, from the crashing task, path looked up from
//!   the initial mount namespace's root with kernel credentials and no symlinks) and sends a
//!   16-byte `struct coredump_req`: `size` 16, `size_ack` 16, `mask` 0xf
//!   (`KERNEL|USERSPACE|REJECT|WAIT`). See [`protocol`].
//! * We answer a 16-byte `struct coredump_ack` with exactly one of `KERNEL`, `USERSPACE`,
//!   `REJECT`, optionally `WAIT`; the kernel replies with a 4-byte mark (0 = accepted, 4 =
//!   conflicting flags, ...), then with `KERNEL` the ELF core follows on the same stream and
//!   the kernel shuts its side down; with `WAIT` it keeps the task (and `/proc/<pid>`) until we
//!   close. With `REJECT` it closes at once: the task died 5 ms after the crash for a 64 MiB
//!   process, no core, wait status without the core flag.
//! * `SO_PEERCRED` names the crashing process with *its own* uid/gid (not root), so it cannot
//!   tell the kernel from a process. `SO_PEERPIDFD` + `PIDFD_GET_INFO` can: the kernel marks the
//!   task `PIDFD_COREDUMPED` before connecting (coredump mask 0x5 seen for a crash, 0x4 for a
//!   live process connecting by itself). See [`identity`].
//! * Linux 6.18 does not give the signal before the task is reaped
//!   (`PIDFD_INFO_COREDUMP_SIGNAL` is 6.19); the core's notes have it, and for a refused crash
//!   the exit status does once the parent reaped it.
//!
//! # When the server is not there
//! * Clean stop: [`install::Installed::shutdown`] restores the previous `core_pattern` first,
//!   then the server accepts what the kernel had queued, finishes the captures in flight and
//!   removes its socket. No crash finds a dead socket.
//! * Restart: [`install::Installed::hand_over`] switches `core_pattern` to the pipe handler
//!   (installed first, under the socket) before the server stops; the next owner starts its
//!   server before switching back. Crashes in between are spooled by the pipe handler.
//! * Killed (SIGKILL): `core_pattern` still names our socket, which nobody listens on any more.
//!   Measured on Linux 6.18: the kernel's connect fails at once (`ECONNREFUSED`, or `ENOENT`
//!   once the file is gone), it logs `coredump: <pid>(<comm>): Coredump socket connection
//!   <path> failed -111` to the kernel log, writes no core anywhere, and the task dies at once
//!   (5 ms for 64 MiB, wait status without the core flag). Crashes in that window are lost but
//!   nothing blocks. Connections the kernel had queued but we had not accepted are reset when
//!   the listener dies: those tasks too die at once without a core. A capture in progress ends
//!   there: the kernel sees the socket close, the task dies, the partial entry is reaped as
//!   `Failed` by the ingest.
//! * Start after a kill: [`crate::kernel::PatternGuard`] finds the dead owner's record, adopts
//!   the pattern it replaced, and the new server installs its own; stale sockets are removed.
//! * The server marks its process non-dumpable: a crash of the server itself would otherwise
//!   make the kernel wait forever for an answer from the very process being dumped.
//!
//! # Placement
//! The kernel refuses `@` patterns written from outside the initial mount namespace, and
//! resolves the path from the initial mount namespace's root: the server must run there (the
//! standalone mode does; a containerized agent needs the host's mount namespace). It must also
//! see the crashing tasks' pids: `PIDFD_GET_INFO` fails (`EREMOTE`) for a task outside the
//! caller's pid namespace, so a server in a container's pid namespace would take every kernel
//! connection for a foreign one (host pid namespace, `hostPID: true`, for an agent).

pub mod identity;
pub mod install;
pub mod peer;
pub mod protocol;
pub mod server;
pub mod stats;

mod conn;
mod listener;
mod refusals;
mod waiting;

pub use install::{
    CORE_MODES, CaptureMode, InstallOptions, Installed, install, install_locked, socket_supported,
    socket_supported_at,
};
pub use server::{CaptureServer, ServerConfig};
pub use stats::ServerStats;

/// A server configuration under a scratch directory, for the unit tests of this module.
#[cfg(test)]
fn test_config(dir: &std::path::Path) -> ServerConfig {
    ServerConfig::new(
        dir.join("run/capture.sock"),
        crate::HandlerConfig {
            spool_dir: dir.join("spool"),
            min_free_bytes: 0,
            ..crate::HandlerConfig::default()
        },
    )
}
