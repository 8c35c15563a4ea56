//! The narrow boundary with the kernel for the crash path: unnamed spill files, free space,
//! hole punching, pipe sizing, advisory locks, and the raw file descriptors the kernel hands a
//! pipe helper.
//! Everything `unsafe` in this crate lives here.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FallocateFlags, FileType, FlockOperation, Mode, OFlags};

use crate::CaptureError;

/// Opens an unnamed file in `dir` (`O_TMPFILE`): it vanishes with the process if we die, so a
/// killed handler leaves no half-written spill behind.
pub fn unnamed_file_in(dir: &Path) -> Result<File, CaptureError> {
    let fd = rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| CaptureError::io("create unnamed file in", dir, e.into()))?;
    Ok(File::from(fd))
}

/// Bytes available to unprivileged writers on the filesystem holding `file`.
pub fn free_bytes(file: &File) -> std::io::Result<u64> {
    let st = rustix::fs::fstatvfs(file.as_fd())?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Bytes available on the filesystem holding `path`.
pub fn free_bytes_at(path: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Releases the disk blocks (and page cache) of a range already consumed. Best effort: a
/// filesystem without hole punching just keeps the blocks until the file is closed.
pub fn punch_hole(file: &File, offset: u64, len: u64) {
    let _ = rustix::fs::fallocate(
        file.as_fd(),
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        offset,
        len,
    );
}

/// Whether `fd` is a pipe (or FIFO): the sources `splice(2)` can move bytes from.
pub fn is_pipe(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Fifo)
}

/// Grows the pipe `fd` to hold at least `size` bytes (`F_SETPIPE_SZ`). Best effort: an
/// unprivileged caller may be refused above `fs.pipe-max-size`, and the pipe then keeps working
/// at its old size.
pub fn grow_pipe(fd: BorrowedFd<'_>, size: usize) {
    if rustix::pipe::fcntl_getpipe_size(fd).is_ok_and(|now| now < size) {
        let _ = rustix::pipe::fcntl_setpipe_size(fd, size);
    }
}

/// Tries to take an exclusive advisory lock without waiting. The lock lives as long as `file`.
pub fn try_lock(file: &File) -> bool {
    rustix::fs::flock(file.as_fd(), FlockOperation::NonBlockingLockExclusive).is_ok()
}

/// Takes an exclusive advisory lock, waiting for it.
pub fn lock(file: &File) -> std::io::Result<()> {
    rustix::fs::flock(file.as_fd(), FlockOperation::LockExclusive).map_err(Into::into)
}

/// The kernel starts a pipe helper with only fd 0 (the core pipe): fds 1 and 2 may be closed,
/// and the next file we open would become our "stdout". Point any closed fd among 0..=2 at
/// `/dev/null` first, so no later open or print can land in the wrong file.
pub fn fill_standard_fds() {
    for _ in 0..3 {
        match rustix::fs::open("/dev/null", OFlags::RDWR, Mode::empty()) {
            // Landed above 2: all of 0..=2 are open; close this one again.
            Ok(fd) if rustix::fd::AsRawFd::as_raw_fd(&fd) > 2 => return,
            // Took a standard slot: keep it open for the life of the process.
            Ok(fd) => std::mem::forget(fd),
            Err(_) => return,
        }
    }
}

/// Whether fd 0 has been handed out by [`take_stdin`].
static STDIN_TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Takes ownership of fd 0 (the kernel's core pipe) as a `File`; dropping it closes the pipe and
/// lets the kernel release the crashed process. Only the first call gets it: a second owner
/// would close fd 0 twice, the second time closing whatever file had reused the number.
pub(crate) fn take_stdin() -> Option<File> {
    if STDIN_TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return None;
    }
    // SAFETY: fd 0 is open (`fill_standard_fds` runs first), the flag above makes this the
    // only owner, and `std::io::stdin` is never used on the crash path.
    Some(File::from(unsafe { OwnedFd::from_raw_fd(0) }))
}

/// Puts the calling thread (and the threads it starts afterwards, which inherit the policy) in
/// `SCHED_IDLE`: it runs only on cycles no normal thread wants. The compressor trails the drain
/// this way, so it never takes a core from the kernel's dump writer or the reader, which hold
/// the crashed process; a nice value is not enough (measured: nice 10 still took 10-20 % of the
/// held time on 2 cores). Falls back to nice `fallback_nice` where the policy is refused.
pub fn idle_this_thread(fallback_nice: i32) {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` for the duration of the call; pid 0 is the
    // calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc != 0 {
        let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), fallback_nice);
    }
}

/// Gives the threads of this process named `name` (a trailing thread and the zstd workers it
/// started, which inherit its name) the normal policy and nice 0 again: once the drain is over
/// they should finish quickly, also on a busy node. Other threads (other captures of the socket
/// server) keep their policy.
pub fn normal_priority_for(name: &str) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    let param = libc::sched_param { sched_priority: 0 };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: `param` is a valid `sched_param` for the duration of the call; a tid that
        // exited meanwhile only makes the call fail with ESRCH.
        let _ = unsafe { libc::sched_setscheduler(tid, libc::SCHED_OTHER, &param) };
        if let Some(pid) = rustix::process::Pid::from_raw(tid) {
            let _ = rustix::process::setpriority_process(Some(pid), 0);
        }
    }
}
