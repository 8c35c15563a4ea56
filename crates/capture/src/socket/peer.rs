//! The kernel interfaces that tell the socket server who is on the other end of a connection:
//! `SO_PEERCRED`, `SO_PEERPIDFD` (Linux 6.5) and `ioctl(PIDFD_GET_INFO)` (Linux 6.13; the
//! coredump fields since 6.16). Everything `unsafe` of the socket server lives here.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// `SO_PEERPIDFD` (same value on every architecture that has it except mips/parisc/sparc).
const SO_PEERPIDFD: libc::c_int = 77;

/// `PIDFD_INFO_PID`: pid, tgid, ppid (always returned).
pub const PIDFD_INFO_PID: u64 = 1 << 0;
/// `PIDFD_INFO_CREDS`: uids and gids (always returned).
pub const PIDFD_INFO_CREDS: u64 = 1 << 1;
/// `PIDFD_INFO_CGROUPID`: the cgroup v2 id.
pub const PIDFD_INFO_CGROUPID: u64 = 1 << 2;
/// `PIDFD_INFO_EXIT`: the exit status, once the task is reaped.
pub const PIDFD_INFO_EXIT: u64 = 1 << 3;
/// `PIDFD_INFO_COREDUMP`: the coredump mask (Linux 6.16).
pub const PIDFD_INFO_COREDUMP: u64 = 1 << 4;
/// `PIDFD_INFO_COREDUMP_SIGNAL`: the signal that caused the dump (Linux 6.19).
pub const PIDFD_INFO_COREDUMP_SIGNAL: u64 = 1 << 6;
/// `PIDFD_COREDUMPED` in the coredump mask: the task is (or was) dumping core.
pub const PIDFD_COREDUMPED: u32 = 1 << 0;

/// `struct pidfd_info` up to `supported_mask` (`PIDFD_INFO_SIZE_VER2`, 80 bytes). The kernel
/// fills what it knows of a struct of the size encoded in the ioctl number and says which
/// fields are valid in `mask`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct RawPidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ruid: u32,
    rgid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    exit_code: i32,
    coredump_mask: u32,
    coredump_signal: u32,
    supported_mask: u64,
}

const _: () = assert!(std::mem::size_of::<RawPidfdInfo>() == 80);

/// `_IOWR(PIDFS_IOCTL_MAGIC = 0xFF, 11, struct pidfd_info)`.
const PIDFD_GET_INFO: u64 =
    (3 << 30) | ((std::mem::size_of::<RawPidfdInfo>() as u64) << 16) | (0xFF << 8) | 11;

/// What `PIDFD_GET_INFO` returned; `None` for fields the kernel did not fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidfdInfo {
    /// Thread-group id, in our pid namespace (the "pid" of `/proc/<pid>`).
    pub tgid: u32,
    /// Real uid.
    pub ruid: u32,
    /// Real gid.
    pub rgid: u32,
    /// Wait status, once the task has been reaped (`PIDFD_INFO_EXIT`).
    pub exit_code: Option<i32>,
    /// `PIDFD_COREDUMPED` and friends (`PIDFD_INFO_COREDUMP`).
    pub coredump_mask: Option<u32>,
    /// The dump's signal (`PIDFD_INFO_COREDUMP_SIGNAL`, Linux 6.19).
    pub coredump_signal: Option<i32>,
}

/// Credentials the kernel recorded for the peer at `connect()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Thread-group id of the connecting task.
    pub pid: u32,
    /// Its uid (for a coredump connection: the crashing process's, not root).
    pub uid: u32,
    /// Its gid.
    pub gid: u32,
}

/// `SO_PEERCRED` of a connection.
pub fn peer_cred(stream: &UnixStream) -> io::Result<PeerCred> {
    let cred = rustix::net::sockopt::socket_peercred(stream)?;
    Ok(PeerCred {
        pid: cred.pid.as_raw_nonzero().get() as u32,
        uid: cred.uid.as_raw(),
        gid: cred.gid.as_raw(),
    })
}

/// `SO_PEERPIDFD`: a pidfd for the peer's thread-group leader, which stays valid (and keeps
/// naming that process, never a later one with the same pid) as long as we hold it.
pub fn peer_pidfd(stream: &UnixStream) -> io::Result<OwnedFd> {
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` and `len` are valid for writes of the sizes passed; the kernel writes at
    // most `len` bytes into `fd` and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&mut fd as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if fd < 0 || len as usize != std::mem::size_of::<libc::c_int>() {
        return Err(io::Error::other("SO_PEERPIDFD returned no descriptor"));
    }
    // SAFETY: the kernel just installed `fd` in our table for this call; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `ioctl(PIDFD_GET_INFO)` asking for the fields in `want`. Fails with `ESRCH` when the task
/// is gone and `PIDFD_INFO_EXIT` was not asked for (or is not available yet).
pub fn pidfd_info(pidfd: BorrowedFd<'_>, want: u64) -> io::Result<PidfdInfo> {
    let mut raw = RawPidfdInfo {
        mask: want,
        ..RawPidfdInfo::default()
    };
    // SAFETY: `raw` is a writable `repr(C)` buffer of exactly the size encoded in the request
    // number; the kernel copies at most that many bytes into it and nothing is retained.
    let rc = unsafe {
        libc::ioctl(
            pidfd.as_raw_fd(),
            PIDFD_GET_INFO as _,
            &mut raw as *mut RawPidfdInfo,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let has = |bit: u64| raw.mask & bit != 0;
    Ok(PidfdInfo {
        tgid: raw.tgid,
        ruid: raw.ruid,
        rgid: raw.rgid,
        exit_code: has(PIDFD_INFO_EXIT).then_some(raw.exit_code),
        coredump_mask: has(PIDFD_INFO_COREDUMP).then_some(raw.coredump_mask),
        coredump_signal: has(PIDFD_INFO_COREDUMP_SIGNAL)
            .then_some(raw.coredump_signal as i32)
            .filter(|&s| s > 0),
    })
}

/// Waits up to `timeout` for the pidfd's process to exit (the pidfd polls readable).
pub fn wait_exit(pidfd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let mut fds = [rustix::event::PollFd::new(
        &pidfd,
        rustix::event::PollFlags::IN,
    )];
    let timeout = rustix::event::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    matches!(rustix::event::poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
}

/// The signal that killed the pidfd's process, from its exit status; `None` until its parent has
/// reaped it (the only time the kernel records the status) or when no signal killed it.
pub fn exit_signal(pidfd: BorrowedFd<'_>) -> Option<i32> {
    pidfd_info(pidfd, PIDFD_INFO_EXIT)
        .ok()?
        .exit_code
        .and_then(signal_of_wait_status)
}

/// The signal of a wait status (`WTERMSIG`), when the process was killed by one.
pub fn signal_of_wait_status(status: i32) -> Option<i32> {
    let signal = status & 0x7f;
    (signal != 0 && signal != 0x7f).then_some(signal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn ioctl_number_matches_the_uapi_macro() {
        // _IOWR(0xFF, 11, 80 bytes) = dir 3 << 30 | size << 16 | type << 8 | nr.
        assert_eq!(PIDFD_GET_INFO, 0xC050_FF0B);
    }

    #[test]
    fn wait_status_signals() {
        assert_eq!(
            signal_of_wait_status(0x8b),
            Some(11),
            "SIGSEGV, core dumped"
        );
        assert_eq!(signal_of_wait_status(0x06), Some(6));
        assert_eq!(signal_of_wait_status(0x0100), None, "exit(1)");
    }

    #[test]
    fn pidfd_info_of_ourselves() {
        let me = rustix::process::getpid();
        let pidfd = rustix::process::pidfd_open(me, rustix::process::PidfdFlags::empty()).unwrap();
        let info = pidfd_info(pidfd.as_fd(), PIDFD_INFO_COREDUMP).unwrap();
        assert_eq!(info.tgid, std::process::id());
        assert_eq!(info.ruid, rustix::process::getuid().as_raw());
        assert_eq!(info.exit_code, None);
        assert!(!wait_exit(pidfd.as_fd(), Duration::from_millis(1)));
        // We are not dumping core: a connection from us must never pass for the kernel's.
        assert_eq!(
            info.coredump_mask.unwrap_or(0) & PIDFD_COREDUMPED,
            0,
            "{info:?}"
        );
    }

    #[test]
    fn peer_identity_of_a_socketpair() {
        let (a, _b) = UnixStream::pair().unwrap();
        let cred = peer_cred(&a).unwrap();
        assert_eq!(cred.pid, std::process::id());
        let pidfd = peer_pidfd(&a).unwrap();
        assert_eq!(
            pidfd_info(pidfd.as_fd(), 0).unwrap().tgid,
            std::process::id()
        );
    }
}
