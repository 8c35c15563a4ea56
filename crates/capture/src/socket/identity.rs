//! Who crashed, learned without trusting the connection or the pid number.
//!
//! A coredump connection has no `%P %s %u` specifiers. What we know comes from:
//! * the peer's pidfd (`SO_PEERPIDFD`): its pid, real uid and gid, and the `PIDFD_COREDUMPED`
//!   bit, which the kernel sets just before it connects on behalf of a dumping task. A process
//!   that connects by itself (only root can reach the socket at all) does not have it: that is
//!   how kernel connections are told from anything else, since `SO_PEERCRED` carries the
//!   crashing process's uid, not root's;
//! * `/proc/<pid>` read while the kernel holds the task, then checked against the pidfd: if the
//!   pidfd's process is still there after the reads, the pid named it during the reads (a pid is
//!   not reused before its process is reaped);
//! * the dumping thread: the one with `PF_DUMPCORE` in `/proc/<pid>/task/<tid>/stat`;
//! * the signal: `PIDFD_INFO_COREDUMP_SIGNAL` on Linux >= 6.19, else the core's own
//!   `NT_SIGINFO` / `NT_PRSTATUS` (read from the first bytes as they stream by), else the exit
//!   status once the task has been reaped (`PIDFD_INFO_EXIT`);
//! * the time: our clock when the connection arrived (the kernel's `%t` is taken at the same
//!   moment, give or take the connect).

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::procinfo::{self, ProcInfo};
use crate::socket::peer::{
    self, PIDFD_COREDUMPED, PIDFD_INFO_COREDUMP, PIDFD_INFO_COREDUMP_SIGNAL,
};

/// `PF_DUMPCORE` in the task flags (`include/linux/sched.h`): this thread is writing the core.
const PF_DUMPCORE: u64 = 0x0000_0200;
/// How many threads of one process we look at to find the dumping one.
const MAX_TASKS: usize = 4096;
/// How much of the core's head is kept to find the signal in its notes.
pub const HEAD_LIMIT: usize = 1 << 20;

/// The task at the other end of a kernel coredump connection.
#[derive(Debug)]
pub struct Peer {
    /// A pidfd for it, held for the life of the connection.
    pub pidfd: OwnedFd,
    /// Its pid (thread-group id) in our pid namespace.
    pub pid: u32,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// The dump's signal when the kernel tells (Linux >= 6.19).
    pub signal: Option<i32>,
}

/// Why a connection is not the kernel's.
#[derive(Debug, thiserror::Error)]
pub enum NotKernel {
    /// Credentials or pidfd unavailable.
    #[error("cannot identify the peer: {0}")]
    Unidentified(#[source] std::io::Error),
    /// The peer is a process that is not dumping core.
    #[error("peer pid {pid} is not dumping core (coredump mask {mask:?})")]
    NotDumping {
        /// The connecting process.
        pid: u32,
        /// What the kernel said about it.
        mask: Option<u32>,
    },
    /// `SO_PEERCRED` and the pidfd disagree.
    #[error("peer credentials name pid {cred} but its pidfd names {pidfd}")]
    Mismatch {
        /// From `SO_PEERCRED`.
        cred: u32,
        /// From the pidfd.
        pidfd: u32,
    },
}

/// Checks that `stream` is the kernel connecting on behalf of a dumping task, and who that is.
pub fn identify(stream: &UnixStream) -> Result<Peer, NotKernel> {
    let cred = peer::peer_cred(stream).map_err(NotKernel::Unidentified)?;
    let pidfd = peer::peer_pidfd(stream).map_err(NotKernel::Unidentified)?;
    let info = peer::pidfd_info(
        pidfd.as_fd(),
        PIDFD_INFO_COREDUMP | PIDFD_INFO_COREDUMP_SIGNAL,
    )
    .map_err(NotKernel::Unidentified)?;
    if info.coredump_mask.unwrap_or(0) & PIDFD_COREDUMPED == 0 {
        return Err(NotKernel::NotDumping {
            pid: cred.pid,
            mask: info.coredump_mask,
        });
    }
    if info.tgid != cred.pid {
        return Err(NotKernel::Mismatch {
            cred: cred.pid,
            pidfd: info.tgid,
        });
    }
    Ok(Peer {
        pidfd,
        pid: info.tgid,
        uid: info.ruid,
        gid: info.rgid,
        signal: info.coredump_signal,
    })
}

/// What `/proc` says about the peer, read while the kernel holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcFacts {
    /// `comm`, `exe`, `cmdline`, `cgroup` and the pod identity.
    pub info: ProcInfo,
    /// The thread that is dumping, when found.
    pub tid: Option<u32>,
}

/// Reads `/proc/<pid>` of the peer and keeps it only if the pidfd proves it was the same
/// process throughout; otherwise returns empty facts (never another process's).
pub fn read_proc(proc_root: &Path, peer: &Peer) -> ProcFacts {
    let info = procinfo::read(proc_root, peer.pid);
    let tid = dumping_thread(proc_root, peer.pid);
    match peer::pidfd_info(peer.pidfd.as_fd(), 0) {
        Ok(now) if now.tgid == peer.pid => ProcFacts { info, tid },
        _ => ProcFacts::default(),
    }
}

/// The thread of `pid` whose flags carry `PF_DUMPCORE`.
pub fn dumping_thread(proc_root: &Path, pid: u32) -> Option<u32> {
    let tasks = proc_root.join(pid.to_string()).join("task");
    std::fs::read_dir(tasks)
        .ok()?
        .take(MAX_TASKS)
        .flatten()
        .find_map(|entry| {
            let tid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = crate::fsutil::read_prefix(&entry.path().join("stat"), 4096).ok()?;
            let flags = stat_flags(&String::from_utf8_lossy(&stat))?;
            (flags & PF_DUMPCORE != 0).then_some(tid)
        })
}

/// Field 9 (`flags`) of a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted after its last `)`.
pub fn stat_flags(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")" come: state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8) flags(9).
    rest.split_ascii_whitespace().nth(6)?.parse().ok()
}

/// A reader that keeps the first [`HEAD_LIMIT`] bytes it passes on: the ELF header, program
/// headers and the notes that name the signal and the dumping thread.
#[derive(Debug)]
pub struct HeadTap<R> {
    inner: R,
    head: Vec<u8>,
}

impl<R> HeadTap<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> HeadTap<R> {
        HeadTap {
            inner,
            head: Vec::new(),
        }
    }

    /// The reader and the head kept so far.
    pub fn into_parts(self) -> (R, Vec<u8>) {
        (self.inner, self.head)
    }
}

impl<R: Read> Read for HeadTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let room = HEAD_LIMIT.saturating_sub(self.head.len()).min(n);
        self.head.extend_from_slice(&buf[..room]);
        Ok(n)
    }
}

/// The signal and dumping thread named by the notes in the head of a core, when they are there.
pub fn from_core_head(head: &[u8]) -> (Option<i32>, Option<u32>) {
    let Ok(core) = coredump_corefile::parse_core_bytes(head) else {
        return (None, None);
    };
    let first = core.prstatus.first();
    let signal = core
        .siginfo
        .map(|s| s.signo)
        .or(first.map(|p| p.signal))
        .filter(|&s| s > 0);
    (signal, first.map(|p| p.pid).filter(|&p| p > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_flags_survive_hostile_command_names() {
        let line = "4242 (a) b (c)) R 1 4242 4242 0 -1 4194880 100 0 0 0 1 2 0 0 20 0 1 0";
        assert_eq!(stat_flags(line), Some(4_194_880));
        assert_eq!(stat_flags("4242 (x) S 1"), None, "too short");
        assert_eq!(stat_flags("no parenthesis"), None);
    }

    #[test]
    fn dumping_thread_is_found_in_a_recorded_tree() {
        let root = tempfile::tempdir().unwrap();
        for (tid, flags) in [(10u32, 0x400040u64), (11, 0x400640), (12, 0x400040)] {
            let dir = root.path().join("10/task").join(tid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            let stat = format!("{tid} (worker) S 1 10 10 0 -1 {flags} 0 0 0 0");
            std::fs::write(dir.join("stat"), stat).unwrap();
        }
        assert_eq!(dumping_thread(root.path(), 10), Some(11));
        assert_eq!(dumping_thread(root.path(), 99), None);
    }

    #[test]
    fn head_tap_keeps_a_bounded_prefix_and_passes_everything() {
        let data: Vec<u8> = (0..(HEAD_LIMIT + 5000)).map(|i| (i % 253) as u8).collect();
        let mut tap = HeadTap::new(std::io::Cursor::new(data.clone()));
        let mut out = Vec::new();
        tap.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        let (_, head) = tap.into_parts();
        assert_eq!(head, &data[..HEAD_LIMIT]);
    }

    #[test]
    fn garbage_head_names_nothing() {
        assert_eq!(from_core_head(b"not an ELF core"), (None, None));
        assert_eq!(from_core_head(&[]), (None, None));
    }
}
