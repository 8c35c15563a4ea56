//! The one `unsafe` spot of the crate: a `pre_exec` hook that asks the kernel to SIGKILL the
//! child when its parent dies (`PR_SET_PDEATHSIG`). std has no safe API for it.
#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::process::{Signal, getppid, set_parent_process_death_signal};

/// Makes `command`'s child die with SIGKILL when the thread that spawns it exits.
pub(crate) fn kill_child_with_parent(command: &mut Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the hook runs between fork and exec and only makes two raw syscalls (prctl,
    // getppid) through rustix, which neither allocate nor take locks: async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL))?;
            // The parent may have died between fork and prctl: then no signal will come.
            // (An `Errno` converts to `io::Error` without allocating, unlike `Error::other`.)
            if getppid() != Some(parent) {
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
}
