//! Forwarding a crash to the `core_pattern` pipe that was installed before ours (a distribution's
//! `systemd-coredump`, `apport`, ...), for crashes that are not ours to keep: processes outside
//! every pod on a Kubernetes node ([`crate::NonPodPolicy::Forward`]).
//!
//! The kernel hands the previous helper a command line built from `core_pattern` specifiers;
//! we rebuild the same one from what we know (the kernel's arguments to us and `/proc/<pid>`),
//! start it with the core pipe as its stdin and wait for it: the kernel keeps the crashed
//! process (and `/proc/<pid>`) until we exit, so the forwarded helper sees what it would have
//! seen had the kernel started it.
//!
//! The pattern is split into arguments at its spaces before expansion, as the kernel does, so a
//! process name with spaces stays one argument. What `/proc` cannot tell exactly (the dump mode,
//! and the host name, process name and executable as the kernel prints them from the crashed
//! process's own namespaces) the kernel passes to our handler itself ([`KernelText`]), so every
//! specifier expands to the kernel's own value.

use std::ffi::OsString;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::CaptureError;
use crate::admission::CrashFacts;
use crate::fsutil::read_prefix;
use crate::procinfo::ProcInfo;

/// Everything a `core_pattern` specifier can stand for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatternValues {
    /// `%P`: pid in the initial pid namespace.
    pub pid: u32,
    /// `%p`: pid in the process's own pid namespace.
    pub ns_pid: u32,
    /// `%I`: tid in the initial pid namespace.
    pub tid: u32,
    /// `%i`: tid in the process's own pid namespace.
    pub ns_tid: u32,
    /// `%s`.
    pub signal: i32,
    /// `%t`.
    pub time: i64,
    /// `%u`.
    pub uid: u32,
    /// `%g`.
    pub gid: u32,
    /// `%h`, as the kernel prints it (escaped).
    pub hostname: String,
    /// `%e`, as the kernel prints it (escaped).
    pub comm: String,
    /// `%E`, as the kernel prints it (the executable's path, escaped: `/` as `!`).
    pub exe_path: String,
    /// `%f`, as the kernel prints it (the executable's file name, escaped).
    pub exe_name: String,
    /// `%c`: soft core size limit (`RLIM_INFINITY` as the kernel prints it).
    pub core_limit: u64,
    /// `%d`: the dump mode (`PR_GET_DUMPABLE` of the crashed process).
    pub dump_mode: u32,
    /// `%F`: a pidfd number open in the helper, if one was opened.
    pub pidfd: Option<i32>,
}

/// The command line the kernel would run for the pipe `pattern` (`|/path args...`), `None` when
/// `pattern` is not a pipe. Unknown specifiers expand to nothing, as in the kernel.
pub fn command_line(pattern: &str, values: &PatternValues) -> Option<Vec<String>> {
    let template = pattern.strip_prefix('|')?;
    let argv: Vec<String> = template
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(|token| expand(token, values))
        .collect();
    (!argv.is_empty() && !argv[0].is_empty()).then_some(argv)
}

fn expand(token: &str, v: &PatternValues) -> String {
    let mut out = String::new();
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else { break };
        let text = match spec {
            '%' => "%".to_string(),
            'p' => v.ns_pid.to_string(),
            'P' => v.pid.to_string(),
            'i' => v.ns_tid.to_string(),
            'I' => v.tid.to_string(),
            'u' => v.uid.to_string(),
            'g' => v.gid.to_string(),
            'd' => v.dump_mode.to_string(),
            's' => v.signal.to_string(),
            't' => v.time.to_string(),
            'h' => v.hostname.clone(),
            'e' => v.comm.clone(),
            'E' => v.exe_path.clone(),
            'f' => v.exe_name.clone(),
            'c' => v.core_limit.to_string(),
            'F' => v.pidfd.map(|fd| fd.to_string()).unwrap_or_default(),
            _ => String::new(),
        };
        out.push_str(&text);
    }
    out
}

/// How the kernel prints a text specifier (`cn_esc_printf` in fs/coredump.c): every `/`
/// becomes `!`, a component that is `.` or starts `..` exactly gets `!` for its first dot, and
/// an empty one becomes `!`, so no expansion can make a path climb or collapse.
pub fn kernel_escape(text: &str) -> String {
    if text.is_empty() {
        return "!".to_string();
    }
    let mut out = text.replace('/', "!");
    if out == "." || out == ".." {
        out.replace_range(0..1, "!");
    }
    out
}

/// The specifiers only the kernel knows exactly, which our own `core_pattern` passes to the
/// handler after the six it always needs (`%d %h %e %E %f`, see
/// [`crate::handler::PATTERN_SPECIFIERS`]): the dump mode (not in `/proc`), and names as the
/// kernel prints them, resolved in the crashed process's own UTS namespace and root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelText {
    /// `%d`.
    pub dump_mode: u32,
    /// `%h`.
    pub hostname: String,
    /// `%e`.
    pub comm: String,
    /// `%E`.
    pub exe_path: String,
    /// `%f`.
    pub exe_name: String,
}

/// What `/proc/<pid>` adds to the kernel's arguments: the namespace-local pid, the initial-
/// namespace tid, the core size limit. `kernel` holds what the kernel passed that `/proc`
/// cannot tell exactly; without it (a handler started by an older `core_pattern`, only during
/// an upgrade) those are approximated from the host's view: dump mode 1, this host's name, the
/// names from `/proc` escaped as the kernel would.
pub fn values(
    crash: &CrashFacts,
    info: &ProcInfo,
    proc_root: &Path,
    kernel: Option<&KernelText>,
) -> PatternValues {
    let dir = proc_root.join(crash.pid.to_string());
    let ns_pid = read_prefix(&dir.join("status"), 8192)
        .ok()
        .and_then(|s| innermost_nspid(&String::from_utf8_lossy(&s)))
        .unwrap_or(crash.pid);
    let tid = initial_tid(&dir, crash.tid).unwrap_or(crash.pid);
    let core_limit = read_prefix(&dir.join("limits"), 8192)
        .ok()
        .and_then(|s| soft_core_limit(&String::from_utf8_lossy(&s)))
        .unwrap_or(u64::MAX);
    let kernel = kernel.cloned().unwrap_or_else(|| KernelText {
        dump_mode: 1,
        hostname: kernel_escape(&rustix::system::uname().nodename().to_string_lossy()),
        comm: kernel_escape(&info.comm),
        exe_path: kernel_escape(&info.exe),
        exe_name: kernel_escape(info.exe.rsplit('/').next().unwrap_or_default()),
    });
    PatternValues {
        pid: crash.pid,
        ns_pid,
        tid,
        ns_tid: crash.tid,
        signal: crash.signal,
        time: crash.time,
        uid: crash.uid,
        gid: crash.gid,
        hostname: kernel.hostname,
        comm: kernel.comm,
        exe_path: kernel.exe_path,
        exe_name: kernel.exe_name,
        core_limit,
        dump_mode: kernel.dump_mode,
        pidfd: None,
    }
}

/// Last number of the `NSpid:` line of a `status` file (the innermost namespace's id).
pub fn innermost_nspid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|rest| rest.split_whitespace().last())
        .and_then(|n| n.parse().ok())
}

/// Soft limit of `Max core file size` in a `limits` file; `unlimited` is `RLIM_INFINITY`.
pub fn soft_core_limit(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max core file size"))?;
    match line.split_whitespace().next()? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// The initial-namespace id of the thread whose namespace-local id is `ns_tid`.
fn initial_tid(proc_dir: &Path, ns_tid: u32) -> Option<u32> {
    for entry in std::fs::read_dir(proc_dir.join("task")).ok()?.take(4096) {
        let entry = entry.ok()?;
        let status = read_prefix(&entry.path().join("status"), 8192).ok()?;
        if innermost_nspid(&String::from_utf8_lossy(&status)) == Some(ns_tid) {
            return entry.file_name().to_str()?.parse().ok();
        }
    }
    None
}

/// Runs the previous helper for this crash with `core` as its stdin and waits for it. Returns
/// its exit status code (`-1` if killed by a signal). The core is drained by us if the helper
/// cannot be started, so the kernel is never left writing into a pipe nobody reads.
pub fn forward(
    pattern: &str,
    mut values: PatternValues,
    core: File,
    this_exe: &Path,
) -> Result<i32, CaptureError> {
    let pidfd = pattern
        .contains("%F")
        .then(|| open_pidfd(values.pid))
        .flatten();
    values.pidfd = pidfd.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    let refuse =
        |message: String| CaptureError::Usage(format!("forwarding to {pattern:?}: {message}"));
    let Some(argv) = command_line(pattern, &values) else {
        crate::handler::drain(core);
        return Err(refuse("not a pipe pattern".into()));
    };
    if Path::new(&argv[0]) == this_exe {
        crate::handler::drain(core);
        return Err(refuse("it names this handler (a loop)".into()));
    }
    let stdin = match core.try_clone() {
        Ok(f) => f,
        Err(e) => {
            crate::handler::drain(core);
            return Err(CaptureError::io("dup core pipe", &argv[0], e));
        }
    };
    let spawned = Command::new(&argv[0])
        .args(argv[1..].iter().map(OsString::from))
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/")
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            crate::handler::drain(core);
            return Err(CaptureError::io("start", &argv[0], e));
        }
    };
    // The helper owns the pipe now. Our read end must go: were the helper to exit without
    // reading everything, the kernel would block writing into a pipe nobody reads.
    drop(core);
    let status = child
        .wait()
        .map_err(|e| CaptureError::io("wait for", &argv[0], e))?;
    drop(pidfd);
    Ok(status.code().unwrap_or(-1))
}

/// A pidfd for `pid` that a child inherits (close-on-exec cleared), for `%F`.
fn open_pidfd(pid: u32) -> Option<std::os::fd::OwnedFd> {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()?;
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty()).ok()?;
    Some(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PatternValues {
        PatternValues {
            pid: 4242,
            ns_pid: 7,
            tid: 4243,
            ns_tid: 8,
            signal: 11,
            time: 1_700_000_000,
            uid: 1000,
            gid: 100,
            hostname: "node-1".into(),
            comm: "my app".into(),
            exe_path: "!usr!bin!my-app".into(),
            exe_name: "my-app".into(),
            core_limit: u64::MAX,
            dump_mode: 1,
            pidfd: Some(5),
        }
    }

    #[test]
    fn expands_like_the_kernel() {
        let argv = command_line(
            "|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h %d %F",
            &sample(),
        )
        .unwrap();
        assert_eq!(
            argv,
            vec![
                "/usr/lib/systemd/systemd-coredump",
                "4242",
                "1000",
                "100",
                "11",
                "1700000000",
                "18446744073709551615",
                "node-1",
                "1",
                "5"
            ]
        );
        let argv = command_line("|/x  -p%p/%i  %e %E %f %I 100%% %q", &sample()).unwrap();
        assert_eq!(
            argv,
            vec![
                "/x",
                "-p7/8",
                "my app",
                "!usr!bin!my-app",
                "my-app",
                "4243",
                "100%",
                ""
            ],
            "split at template spaces only; unknown specifiers vanish"
        );
    }

    #[test]
    fn escapes_like_the_kernel() {
        assert_eq!(kernel_escape("a b/c"), "a b!c");
        assert_eq!(kernel_escape("/usr/bin/x"), "!usr!bin!x");
        assert_eq!(kernel_escape("."), "!");
        assert_eq!(kernel_escape(".."), "!.");
        assert_eq!(kernel_escape("..x"), "..x");
        assert_eq!(kernel_escape(""), "!");
    }

    #[test]
    fn only_pipes_are_forwarded() {
        assert_eq!(command_line("core.%p", &sample()), None);
        assert_eq!(command_line("@@/run/x.sock", &sample()), None);
        assert_eq!(command_line("|", &sample()), None);
        assert_eq!(command_line("| ", &sample()), None);
    }

    #[test]
    fn proc_files() {
        let status = "Name:\tx\nNSpid:\t4242\t17\t3\nNStgid:\t1\n";
        assert_eq!(innermost_nspid(status), Some(3));
        assert_eq!(innermost_nspid("Name: x\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax core file size        unlimited            unlimited            bytes     \n";
        assert_eq!(soft_core_limit(limits), Some(u64::MAX));
        let limits = "Max core file size        0                    unlimited            bytes\n";
        assert_eq!(soft_core_limit(limits), Some(0));
    }

    #[test]
    fn forwards_the_core_to_the_previous_helper() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("got");
        let script = tmp.path().join("helper.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$@\" > {0}.args\ncat > {0}\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        // Close-on-exec, like the kernel's pipe: a write end leaking into the helper would keep
        // it from ever seeing EOF.
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let writer = {
            let data = data.clone();
            std::thread::spawn(move || {
                let mut w = File::from(w);
                std::io::Write::write_all(&mut w, &data).unwrap();
            })
        };
        let pattern = format!("|{} %P %s %e", script.display());
        let code = forward(&pattern, sample(), File::from(r), Path::new("/nope")).unwrap();
        writer.join().unwrap();
        assert_eq!(code, 0);
        assert_eq!(std::fs::read(&out).unwrap(), data);
        assert_eq!(
            std::fs::read_to_string(format!("{}.args", out.display())).unwrap(),
            "4242 11 my app\n"
        );
    }

    #[test]
    fn a_loop_or_a_missing_helper_drains_the_core() {
        for (pattern, exe) in [("|/me handle %P", "/me"), ("|/does/not/exist %P", "/me")] {
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
            let writer = std::thread::spawn(move || {
                let mut w = File::from(w);
                std::io::Write::write_all(&mut w, &[1u8; 200_000]).is_ok()
            });
            assert!(forward(pattern, sample(), File::from(r), Path::new(exe)).is_err());
            assert!(writer.join().unwrap(), "{pattern}: the whole core was read");
        }
    }
}
