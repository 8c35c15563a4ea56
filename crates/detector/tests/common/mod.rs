//! Shared fixture for end-to-end tests: a real `coredump-detector standalone` process on the
//! real kernel, holding the machine-wide kernel-settings lock, plus a crasher launcher.

#![allow(dead_code)]
// Test fixtures: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use coredump_api::Coredump;
use coredump_testkit::kernel_lock::KernelSettings;
use coredump_testkit::poll::wait_for;

/// Where standalone puts its coredump socket (`KernelPaths::default().run_dir`).
pub const RUN_DIR: &str = "/run/coredump-detector";

/// A running standalone instance; stopped (SIGTERM, then SIGKILL) and cleaned up on drop.
pub struct Standalone {
    pub data_dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub settings: KernelSettings,
    pub extra_args: Vec<String>,
    /// Whether `core_pattern` should name standalone's coredump socket rather than the pipe.
    pub socket: bool,
    /// Pid of the last standalone process spawned (its socket is named after it).
    pub last_pid: u32,
}

/// The binary under test: this package's build, or `$COREDUMP_DETECTOR_BIN` (the image's
/// static build, see `scripts/verify-image-binary.sh`).
pub fn detector() -> PathBuf {
    std::env::var_os("COREDUMP_DETECTOR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_coredump-detector")))
}

impl Standalone {
    /// Starts standalone in pipe mode (unless `extra` picks a `--capture` mode) and waits until
    /// the kernel points at its pipe handler.
    pub fn start(extra: &[&str]) -> Standalone {
        let mut args = Vec::new();
        if !extra.contains(&"--capture") {
            args.extend(["--capture", "pipe"]);
        }
        args.extend_from_slice(extra);
        Standalone::start_expecting(&args, false)
    }

    /// Starts standalone with `--capture socket` and waits until `core_pattern` names its socket.
    pub fn start_socket(extra: &[&str]) -> Standalone {
        let mut args = vec!["--capture", "socket"];
        args.extend_from_slice(extra);
        Standalone::start_expecting(&args, true)
    }

    /// Starts standalone with exactly `extra` and waits until `core_pattern` names its socket
    /// (`socket`) or its pipe handler.
    pub fn start_expecting(extra: &[&str], socket: bool) -> Standalone {
        Standalone::start_on(Path::new("/var/tmp"), extra, socket)
    }

    /// [`Standalone::start_expecting`] with its data directory created inside `parent` (e.g. a
    /// small filesystem of the test's own).
    pub fn start_on(parent: &Path, extra: &[&str], socket: bool) -> Standalone {
        let settings = KernelSettings::acquire();
        let data_dir = tempfile::Builder::new()
            .prefix("cdd-e2e-")
            .tempdir_in(parent)
            .unwrap();
        let mut s = Standalone {
            data_dir,
            child: None,
            settings,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            socket,
            last_pid: 0,
        };
        s.spawn();
        s
    }

    pub fn data(&self) -> &Path {
        self.data_dir.path()
    }

    pub fn expected_pattern(&self) -> String {
        if self.socket {
            return format!("@@{}", self.socket_path().display());
        }
        format!(
            "|{} handle {}",
            self.data().join("bin/coredump-detector").display(),
            coredump_capture::handler::PATTERN_SPECIFIERS
        )
    }

    /// The coredump socket of the last process spawned.
    pub fn socket_path(&self) -> PathBuf {
        Path::new(RUN_DIR).join(format!("capture-{}.sock", self.last_pid))
    }

    /// (Re)starts the process on the same data directory.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data().join("standalone.log"))
            .unwrap();
        let child = Command::new(detector())
            .arg("standalone")
            .arg("--data-dir")
            .arg(self.data())
            .args(if self.extra_args.iter().any(|a| a == "--min-free") {
                &[][..]
            } else {
                &["--min-free", "0"][..]
            })
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.last_pid = child.id();
        self.child = Some(child);
        let want = self.expected_pattern();
        let result = wait_for(
            "core_pattern to point at standalone",
            Duration::from_secs(20),
            Duration::from_millis(20),
            || (self.settings.current_pattern() == want).then_some(()),
        );
        if let Err(e) = result {
            panic!("{e}\nlog:\n{}", self.log());
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data().join("standalone.log")).unwrap_or_default()
    }

    /// SIGTERM and wait; returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::TERM,
        );
        let status = wait_child(&mut child, Duration::from_secs(30));
        status.is_some_and(|s| s.success())
    }

    /// SIGKILL, as a crash of standalone itself would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `coredump-detector list -o json` on the data dir.
    pub fn records(&self) -> Vec<Coredump> {
        let out = Command::new(detector())
            .args(["list", "-o", "json", "--data-dir"])
            .arg(self.data())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Waits until a record for `pid` exists.
    pub fn wait_record(&self, pid: u32, timeout: Duration) -> Coredump {
        wait_for(
            &format!("record of pid {pid}"),
            timeout,
            Duration::from_millis(50),
            || self.records().into_iter().find(|c| c.spec.pid == pid),
        )
        .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", self.log()))
    }

    /// `coredump-detector export NAME -o FILE`; returns the exported bytes.
    pub fn export(&self, name: &str) -> Vec<u8> {
        // Outside the data directory, which may be a deliberately full filesystem.
        let out_dir = tempfile::Builder::new()
            .prefix("cdd-export-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let out_path = out_dir.path().join(format!("{name}.core"));
        let out = Command::new(detector())
            .args(["export", "--data-dir"])
            .arg(self.data())
            .arg(name)
            .arg("-o")
            .arg(&out_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "export failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mode = std::fs::metadata(&out_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "an exported core is its owner's only");
        std::fs::read(&out_path).unwrap()
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        if !self.stop() {
            eprintln!("standalone did not stop cleanly; log:\n{}", self.log());
        }
        // KernelSettings (dropped after this) restores the kernel settings in any case.
    }
}

pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let got = wait_for("child exit", timeout, Duration::from_millis(20), || {
        child.try_wait().ok().flatten()
    });
    match got {
        Ok(s) => Some(s),
        Err(_) => {
            let _ = child.kill();
            child.wait().ok();
            None
        }
    }
}

/// A crasher that has started and is waiting (with `--wait-stdin`) or crashing.
pub struct Crash {
    pub pid: u32,
    pub child: Child,
}

/// Starts the crasher; if `hold` it waits for [`Crash::go`] before crashing.
pub fn crasher(mib: usize, seed: u64, content: &str, signal: &str, hold: bool) -> Crash {
    crasher_as(None, mib, seed, content, signal, hold)
}

/// [`crasher`] running as `uid`:`uid` (through `setpriv`) when given.
pub fn crasher_as(
    uid: Option<u32>,
    mib: usize,
    seed: u64,
    content: &str,
    signal: &str,
    hold: bool,
) -> Crash {
    crasher_with(uid, &[], mib, seed, content, signal, hold)
}

/// [`crasher_as`] with `extra` crasher arguments (e.g. `--comm NAME`).
pub fn crasher_with(
    uid: Option<u32>,
    extra: &[&str],
    mib: usize,
    seed: u64,
    content: &str,
    signal: &str,
    hold: bool,
) -> Crash {
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg(coredump_testkit::bins::crasher());
            c
        }
        None => Command::new(coredump_testkit::bins::crasher()),
    };
    cmd.args([
        "--mib",
        &mib.to_string(),
        "--seed",
        &seed.to_string(),
        "--content",
        content,
        "--signal",
        signal,
    ])
    .args(extra)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if hold {
        cmd.arg("--wait-stdin");
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid = line
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("crasher said {line:?}"));
    Crash { pid, child }
}

impl Crash {
    /// Lets a held crasher crash.
    pub fn go(&mut self) {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(b"\n").unwrap();
    }

    /// Waits for the crash; returns (signal, core dumped).
    pub fn wait(mut self, timeout: Duration) -> (i32, bool) {
        let status = wait_child(&mut self.child, timeout).expect("crasher did not die in time");
        (status.signal().unwrap_or(0), status.core_dumped())
    }
}

/// A cgroup path created for one test in several hierarchies, removed on drop (the same shapes
/// a kubelet creates, so `/proc/<pid>/cgroup` of a process placed there names a pod).
pub struct FakePodCgroup {
    dirs: Vec<PathBuf>,
}

/// Hierarchies a kubelet would use on this machine: the unified (v2) one and the named systemd
/// and pids v1 ones.
pub const POD_CGROUP_HIERARCHIES: &[&str] = &[
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup/systemd",
    "/sys/fs/cgroup/pids",
    "/sys/fs/cgroup",
];

impl FakePodCgroup {
    /// Creates `relative` under every hierarchy of [`POD_CGROUP_HIERARCHIES`] that exists.
    pub fn create(relative: &str) -> FakePodCgroup {
        let mut dirs = Vec::new();
        for root in POD_CGROUP_HIERARCHIES {
            let root = Path::new(root);
            if root.join("cgroup.procs").exists() {
                let dir = root.join(relative.trim_start_matches('/'));
                std::fs::create_dir_all(&dir).unwrap();
                dirs.push(dir);
            }
        }
        assert!(
            !dirs.is_empty(),
            "no cgroup hierarchy to create {relative} in"
        );
        FakePodCgroup { dirs }
    }

    /// Moves `pid` into the cgroup in every hierarchy.
    pub fn enter(&self, pid: u32) {
        for dir in &self.dirs {
            std::fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
        }
    }
}

impl Drop for FakePodCgroup {
    fn drop(&mut self) {
        // Remove leaf to root of what we created (only empty cgroups can be removed).
        for dir in &self.dirs {
            let mut d = dir.clone();
            for _ in 0..6 {
                if std::fs::remove_dir(&d).is_err() {
                    break;
                }
                match d.parent() {
                    Some(p) => d = p.to_path_buf(),
                    None => break,
                }
            }
        }
    }
}

impl Standalone {
    /// Path of the kubeconfig standalone writes, once the API server is up.
    pub fn kubeconfig(&self) -> PathBuf {
        let path = self.data().join("kubeconfig");
        wait_for(
            "kubeconfig",
            Duration::from_secs(20),
            Duration::from_millis(20),
            || path.exists().then_some(()),
        )
        .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", self.log()));
        path
    }

    /// Runs the real kubectl against this instance; returns (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, Vec<u8>, String) {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.data().join("kubectl-cache"))
            .args(["--request-timeout", "60s"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// kubectl that must succeed; returns stdout as text.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.kubectl(args);
        assert!(
            ok,
            "kubectl {args:?} failed: {stderr}\nlog:\n{}",
            self.log()
        );
        String::from_utf8(stdout).unwrap()
    }
}

/// Whether `needle` occurs in the dumped memory (PT_LOAD contents) of the ELF core `core`.
pub fn in_memory(core: &[u8], needle: &[u8]) -> bool {
    let parsed = coredump_corefile::parse_core_bytes(core).unwrap();
    parsed
        .find_in_memory(&mut std::io::Cursor::new(core), needle)
        .unwrap()
        .is_some()
}

/// Checks that `core` is the whole dump of a crasher started with `seed` and "mixed" content:
/// every PT_LOAD segment present, NT_PRSTATUS naming `pid` and `signal`, and the seeded marker,
/// random block and text block found in its memory.
pub fn assert_whole_crasher_core(core: &[u8], pid: u32, signal: i32, seed: u64) {
    use coredump_testkit::content::{self, Kind};
    let parsed = coredump_corefile::parse_core_bytes(core).unwrap();
    assert!(parsed.is_complete(), "every PT_LOAD segment is present");
    assert_eq!(parsed.prstatus[0].pid, pid, "NT_PRSTATUS pid");
    assert_eq!(parsed.prstatus[0].signal, signal, "NT_PRSTATUS signal");
    assert!(
        in_memory(core, &content::marker(seed)),
        "marker in PT_LOAD memory"
    );
    let mut block = vec![0u8; 4096];
    content::block(seed, Kind::Mixed, 0, &mut block);
    assert!(in_memory(core, &block), "seeded random block in memory");
    content::block(seed, Kind::Mixed, 4, &mut block);
    assert!(in_memory(core, &block), "seeded text block in memory");
}

impl Standalone {
    /// Waits until every pid of `pids` has a record, and checks there is exactly one each.
    pub fn wait_records_for(&self, pids: &[u32], timeout: Duration) -> Vec<Coredump> {
        let records = wait_for(
            &format!("{} records", pids.len()),
            timeout,
            Duration::from_millis(200),
            || {
                let r = self.records();
                pids.iter()
                    .all(|p| r.iter().any(|c| c.spec.pid == *p))
                    .then_some(r)
            },
        )
        .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", self.log()));
        let mine: Vec<Coredump> = records
            .into_iter()
            .filter(|c| pids.contains(&c.spec.pid))
            .collect();
        assert_eq!(mine.len(), pids.len(), "exactly one record per crash");
        mine
    }
}

/// A small tmpfs of the test's own, mounted in the host's mount namespace (where the kernel runs
/// the `core_pattern` handler); lazily unmounted and removed on drop. Declare it before the
/// [`Standalone`] that lives on it, so that one is stopped first.
pub struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    /// Mounts a tmpfs of `mib` MiB.
    pub fn mount(mib: u64) -> SmallFs {
        let dir = tempfile::Builder::new()
            .prefix("cdd-smallfs-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs on {}", dir.path().display());
        SmallFs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Free bytes (as `statvfs` tells an unprivileged writer).
    pub fn free(&self) -> u64 {
        let st = rustix::fs::statvfs(self.path()).unwrap();
        st.f_bavail * st.f_frsize
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Builds `kubectl-coredump` (always: a binary left from an older build would test old code)
/// and returns a fresh directory holding only a link to it, to put in front of `PATH`.
pub fn plugin_dir() -> tempfile::TempDir {
    let target = coredump_testkit::bins::target_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "-q",
        "-p",
        "coredump-kubectl",
        "--bin",
        "kubectl-coredump",
    ]);
    if target.ends_with("release") {
        cmd.arg("--release");
    }
    assert!(cmd.status().unwrap().success(), "building kubectl-coredump");
    let bin = target.join("kubectl-coredump");
    assert!(bin.exists(), "{} missing after build", bin.display());
    let dir = tempfile::Builder::new()
        .prefix("cdd-plugin-path-")
        .tempdir_in("/var/tmp")
        .unwrap();
    // Fixtures keep it in statics, which are never dropped: removed when the binary exits.
    coredump_testkit::scratch::remove_after_exit(dir.path()).unwrap();
    std::os::unix::fs::symlink(&bin, dir.path().join("kubectl-coredump")).unwrap();
    dir
}

/// Runs `kubectl coredump ARGS` in `cwd` with `KUBECONFIG` set and the plugin first on `PATH`;
/// returns (success, stdout, stderr).
pub fn plugin(
    path_dir: &Path,
    kubeconfig: &Path,
    cwd: &Path,
    args: &[&str],
) -> (bool, String, String) {
    let path = format!(
        "{}:{}",
        path_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("kubectl")
        .arg("coredump")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `bin args` (with `env`) until it dies of a signal, as a native crasher of
/// `coredump_testkit::native` does; returns its pid.
pub fn crash_native(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> u32 {
    let mut child = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let status = wait_child(&mut child, Duration::from_secs(60)).expect("crasher exits");
    assert!(
        status.signal().is_some(),
        "{bin:?} must die of a signal: {status:?}"
    );
    pid
}
