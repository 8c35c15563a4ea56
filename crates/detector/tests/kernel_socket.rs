//! The kernel's coredump socket on the real kernel: `core_pattern` = `@@<socket>` served by
//! `standalone --capture socket`, real crashing processes, `list` and `export`. Every test
//! holds the machine-wide kernel-settings lock (through [`Standalone`]) and restores
//! `core_pattern` on every exit path. Tests that need the socket mode say so and return when
//! the kernel lacks it (Linux < 6.17).
// Tests may unwrap: a panic there is a failed test (helpers outside #[test] included).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{FakePodCgroup, Standalone, crasher, crasher_as};
use coredump_api::CoredumpState;
use coredump_corefile::parse_core_bytes;
use coredump_testkit::poll::wait_for;

const SIGSEGV: i32 = 11;
const SIGABRT: i32 = 6;

/// Whether this kernel has the coredump socket request protocol; says so when it does not.
fn socket_kernel(test: &str) -> bool {
    let ok = coredump_capture::socket::socket_supported();
    if !ok {
        eprintln!("{test}: SKIPPED: this kernel has no coredump socket (@@, Linux >= 6.17)");
    }
    ok
}

#[test]
fn socket_crash_is_captured_complete_and_described() {
    if !socket_kernel("socket_crash_is_captured_complete_and_described") {
        return;
    }
    let sa = Standalone::start_socket(&[]);
    assert!(
        sa.settings
            .current_pattern()
            .starts_with("@@/run/coredump-detector/capture-")
    );
    let seed = 0x50c4_0001;
    let crash = crasher(8, seed, "mixed", "segv", false);
    let pid = crash.pid;
    let (signal, dumped) = crash.wait(Duration::from_secs(30));
    assert_eq!(signal, SIGSEGV);
    assert!(dumped, "the kernel reports a core written into the socket");

    let record = sa.wait_record(pid, Duration::from_secs(30));
    assert_eq!(record.status.state, CoredumpState::Stored, "{record:?}");
    assert_eq!(
        record.spec.signal, SIGSEGV,
        "signal read from the core's notes"
    );
    assert_eq!(record.spec.signal_name, "SIGSEGV");
    assert_eq!(record.spec.tid, pid, "the main thread dumped");
    assert_eq!((record.spec.uid, record.spec.gid), (0, 0));
    assert!(
        record.spec.executable.ends_with("/crasher"),
        "{}",
        record.spec.executable
    );
    assert!(
        record
            .spec
            .command_line
            .iter()
            .any(|a| a == &seed.to_string())
    );
    assert_eq!(record.spec.pod_uid, None, "a host process is not in a pod");
    assert!(record.status.stored_size > 0 && record.status.stored_size < record.status.raw_size);
    assert!(
        sa.log()
            .contains("core captured through the coredump socket"),
        "the socket server, not a pipe handler, took it:\n{}",
        sa.log()
    );

    let core = sa.export(&record.metadata.name);
    assert_eq!(core.len() as u64, record.status.raw_size);
    common::assert_whole_crasher_core(&core, pid, SIGSEGV, seed);
}

#[test]
fn unprivileged_crash_reaches_the_root_only_socket_with_its_own_ids() {
    if !socket_kernel("unprivileged_crash_reaches_the_root_only_socket_with_its_own_ids") {
        return;
    }
    let sa = Standalone::start_socket(&[]);
    let dir = std::fs::metadata(common::RUN_DIR).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&dir.permissions()) & 0o777,
        0o700
    );
    let crash = crasher_as(Some(65534), 2, 21, "text", "abrt", false);
    let pid = crash.pid;
    let (signal, dumped) = crash.wait(Duration::from_secs(30));
    assert_eq!((signal, dumped), (SIGABRT, true));
    let record = sa.wait_record(pid, Duration::from_secs(30));
    assert_eq!(record.status.state, CoredumpState::Stored, "{record:?}");
    assert_eq!(
        (record.spec.uid, record.spec.gid),
        (65534, 65534),
        "ids from the pidfd"
    );
    assert_eq!(record.spec.signal, SIGABRT);
    let core = sa.export(&record.metadata.name);
    assert_eq!(parse_core_bytes(&core).unwrap().prstatus[0].pid, pid);
}

#[test]
fn crash_in_a_kubepods_cgroup_yields_pod_identity_through_the_socket() {
    if !socket_kernel("crash_in_a_kubepods_cgroup_yields_pod_identity_through_the_socket") {
        return;
    }
    let sa = Standalone::start_socket(&[]);
    let cases = [
        (
            // systemd driver, containerd, burstable.
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7a1c2d3e_4a5b_4c6d_8e7f_9a0b1c2d3e4f.slice/cri-containerd-4444444444444444444444444444444444444444444444444444444444444444.scope",
            "7a1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
            "containerd://4444444444444444444444444444444444444444444444444444444444444444",
        ),
        (
            // cgroupfs driver, guaranteed QoS (no QoS level).
            "/kubepods/pod1a0b0c0d-1e1f-4a2b-9c3d-4e5f6a7b8c9d/5555555555555555555555555555555555555555555555555555555555555555",
            "1a0b0c0d-1e1f-4a2b-9c3d-4e5f6a7b8c9d",
            "containerd://5555555555555555555555555555555555555555555555555555555555555555",
        ),
    ];
    for (path, pod_uid, container_id) in cases {
        let cgroup = FakePodCgroup::create(path);
        let mut crash = crasher(1, 12, "text", "segv", true);
        let pid = crash.pid;
        cgroup.enter(pid);
        crash.go();
        crash.wait(Duration::from_secs(30));
        let record = sa.wait_record(pid, Duration::from_secs(30));
        assert_eq!(record.spec.pod_uid.as_deref(), Some(pod_uid), "{path}");
        assert_eq!(
            record.spec.container_id.as_deref(),
            Some(container_id),
            "{path}"
        );
        assert_eq!(record.status.state, CoredumpState::Stored);
        drop(cgroup);
    }
}

#[test]
fn size_limit_truncates_through_the_socket() {
    if !socket_kernel("size_limit_truncates_through_the_socket") {
        return;
    }
    let sa = Standalone::start_socket(&["--max-core-size", "1Mi"]);
    let crash = crasher(16, 7, "random", "abrt", false);
    let pid = crash.pid;
    let (signal, _) = crash.wait(Duration::from_secs(30));
    assert_eq!(signal, SIGABRT);
    let record = sa.wait_record(pid, Duration::from_secs(30));
    assert_eq!(record.status.state, CoredumpState::Truncated, "{record:?}");
    assert!(
        record.status.raw_size > 16 << 20,
        "the whole core was read and counted"
    );
    let core = sa.export(&record.metadata.name);
    assert_eq!(core.len(), 1 << 20);
    let parsed = parse_core_bytes(&core).unwrap();
    assert_eq!(parsed.prstatus[0].pid, pid, "notes survive in the prefix");
    assert_eq!(
        record.spec.signal, SIGABRT,
        "signal from the notes of the prefix"
    );
    assert!(!parsed.is_complete());
}

/// A held 256 MiB crasher of incompressible content: a pipe handler would need a noticeable
/// time to drain its core, a refusal none.
fn big_crash(pid_seed: u64) -> (common::Crash, u32) {
    let crash = crasher(256, pid_seed, "random", "segv", true);
    let pid = crash.pid;
    (crash, pid)
}

#[test]
fn over_the_concurrency_bound_the_kernel_is_told_to_reject_at_once() {
    if !socket_kernel("over_the_concurrency_bound_the_kernel_is_told_to_reject_at_once") {
        return;
    }
    // No handler slot at all: every crash is over the bound.
    let sa = Standalone::start_socket(&["--max-handlers", "0"]);
    let (mut crash, pid) = big_crash(31);
    let started = Instant::now();
    crash.go();
    let (signal, dumped) = crash.wait(Duration::from_secs(30));
    let released = started.elapsed();
    assert_eq!(signal, SIGSEGV);
    assert!(!dumped, "REJECT: the kernel wrote no core");
    assert!(
        released < Duration::from_millis(1500),
        "a refused 256 MiB crash is released at once, took {released:?}"
    );
    let record = sa.wait_record(pid, Duration::from_secs(30));
    assert_eq!(
        record.status.state,
        CoredumpState::RateLimited,
        "{record:?}"
    );
    assert!(
        record.status.message.contains("in flight"),
        "{}",
        record.status.message
    );
    assert_eq!(record.status.raw_size, 0, "not a byte was sent");
    assert_eq!(record.status.blob_path, "", "no core stored");
    assert_eq!(
        record.spec.signal, SIGSEGV,
        "signal from the reaped task's exit status"
    );
    assert!(
        record.spec.executable.ends_with("/crasher"),
        "metadata read before refusing"
    );
}

#[test]
fn over_the_bound_a_crash_waits_for_a_slot_without_stalling_the_server() {
    if !socket_kernel("over_the_bound_a_crash_waits_for_a_slot_without_stalling_the_server") {
        return;
    }
    let sa = Standalone::start_socket(&["--max-handlers", "1", "--max-compressing", "1"]);
    let (mut big, big_pid) = big_crash(33);
    let mut small = crasher(1, 34, "text", "abrt", true);
    let small_pid = small.pid;
    big.go();
    // The big core is being captured: the only slot is taken.
    let spool = sa.data().join("spool");
    wait_for(
        "the big capture to start",
        Duration::from_secs(20),
        Duration::from_millis(1),
        || {
            std::fs::read_dir(&spool)
                .ok()?
                .flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                .then_some(())
        },
    )
    .unwrap();
    small.go();
    let (signal, dumped) = small.wait(Duration::from_secs(30));
    assert_eq!((signal, dumped), (SIGABRT, true), "captured after waiting");
    big.wait(Duration::from_secs(60));
    let small_record = sa.wait_record(small_pid, Duration::from_secs(30));
    let big_record = sa.wait_record(big_pid, Duration::from_secs(30));
    assert_eq!(
        small_record.status.state,
        CoredumpState::Stored,
        "{small_record:?}"
    );
    assert_eq!(
        big_record.status.state,
        CoredumpState::Stored,
        "{big_record:?}"
    );
    let log = sa.log();
    assert!(
        log.lines()
            .any(|l| l.contains("waits for a handler slot") && l.contains(&small_pid.to_string())),
        "the second crash waited in the waiting room:\n{log}"
    );
}

#[test]
fn below_the_free_space_floor_the_kernel_is_told_to_reject() {
    if !socket_kernel("below_the_free_space_floor_the_kernel_is_told_to_reject") {
        return;
    }
    let sa = Standalone::start_socket(&["--min-free", "1000Ti"]);
    let (mut crash, pid) = big_crash(32);
    let started = Instant::now();
    crash.go();
    let (signal, dumped) = crash.wait(Duration::from_secs(30));
    let released = started.elapsed();
    assert_eq!((signal, dumped), (SIGSEGV, false));
    assert!(released < Duration::from_millis(1500), "took {released:?}");
    let record = sa.wait_record(pid, Duration::from_secs(30));
    assert_eq!(record.status.state, CoredumpState::Skipped, "{record:?}");
    assert_eq!(
        record.status.reason,
        Some(coredump_api::CoredumpReason::DiskFloor)
    );
    assert!(
        record.status.message.contains("free-space floor"),
        "{}",
        record.status.message
    );
    assert_eq!(record.status.raw_size, 0);
}

#[test]
fn sigkilled_server_leaves_crashes_uncaptured_but_unblocked_and_restart_repairs() {
    if !socket_kernel(
        "sigkilled_server_leaves_crashes_uncaptured_but_unblocked_and_restart_repairs",
    ) {
        return;
    }
    let mut sa = Standalone::start_socket(&[]);
    let original = sa.settings.original_pattern().to_string();
    let crash = crasher(1, 41, "text", "segv", false);
    let first = crash.pid;
    crash.wait(Duration::from_secs(30));
    let before = sa.wait_record(first, Duration::from_secs(30));

    sa.kill();
    let dead_socket = sa.socket_path();
    assert_eq!(
        sa.settings.current_pattern(),
        sa.expected_pattern(),
        "SIGKILL leaves our pattern"
    );
    assert!(
        dead_socket.exists(),
        "and our socket file, with nobody listening"
    );

    // A crash while nobody listens: the kernel's connect is refused, no core anywhere, and the
    // process is not held.
    let (mut crash, orphan) = big_crash(42);
    let started = Instant::now();
    crash.go();
    let (signal, dumped) = crash.wait(Duration::from_secs(30));
    let released = started.elapsed();
    assert_eq!(
        (signal, dumped),
        (SIGSEGV, false),
        "no core while the server is down"
    );
    assert!(
        released < Duration::from_millis(1500),
        "not held: {released:?}"
    );

    sa.spawn();
    assert_ne!(sa.socket_path(), dead_socket);
    assert!(
        !dead_socket.exists(),
        "the dead server's socket is cleaned up"
    );
    let crash = crasher(1, 43, "text", "segv", false);
    let second = crash.pid;
    crash.wait(Duration::from_secs(30));
    let again = sa.wait_record(second, Duration::from_secs(30));
    assert_eq!(again.status.state, CoredumpState::Stored);
    let records = sa.records();
    assert_eq!(records.iter().filter(|c| c.spec.pid == first).count(), 1);
    assert_eq!(records.iter().find(|c| c.spec.pid == first), Some(&before));
    assert!(
        records.iter().all(|c| c.spec.pid != orphan),
        "the lost crash left no record"
    );

    assert!(sa.stop(), "clean stop; log:\n{}", sa.log());
    assert_eq!(
        sa.settings.current_pattern(),
        original,
        "the pattern from before the first start"
    );
    assert!(
        !sa.socket_path().exists(),
        "a clean stop removes the socket"
    );
}

#[test]
fn auto_falls_back_to_the_pipe_when_core_modes_lacks_socket() {
    let fake = tempfile::tempdir().unwrap();
    let modes = fake.path().join("core_modes");
    std::fs::write(&modes, "file\npipe\n").unwrap();
    let modes = modes.to_str().unwrap();
    let sa = Standalone::start_expecting(&["--capture", "auto", "--core-modes", modes], false);
    assert!(
        sa.settings.current_pattern().starts_with('|'),
        "pipe pattern installed"
    );
    let crash = crasher(1, 51, "text", "segv", false);
    let pid = crash.pid;
    crash.wait(Duration::from_secs(30));
    let record = sa.wait_record(pid, Duration::from_secs(30));
    assert_eq!(record.status.state, CoredumpState::Stored);
    assert!(
        !sa.log().contains("through the coredump socket"),
        "{}",
        sa.log()
    );
}

#[test]
fn auto_takes_the_socket_when_the_kernel_has_it() {
    if !socket_kernel("auto_takes_the_socket_when_the_kernel_has_it") {
        return;
    }
    let sa = Standalone::start_expecting(&["--capture", "auto"], true);
    let crash = crasher(1, 52, "text", "segv", false);
    let pid = crash.pid;
    crash.wait(Duration::from_secs(30));
    assert_eq!(
        sa.wait_record(pid, Duration::from_secs(30)).status.state,
        CoredumpState::Stored
    );
}

#[test]
fn socket_mode_on_a_kernel_without_it_fails_and_touches_nothing() {
    let settings = coredump_testkit::kernel_lock::KernelSettings::acquire();
    let fake = tempfile::tempdir_in("/var/tmp").unwrap();
    let modes = fake.path().join("core_modes");
    std::fs::write(&modes, "file\npipe\n").unwrap();
    let out = std::process::Command::new(common::detector())
        .args([
            "standalone",
            "--capture",
            "socket",
            "--min-free",
            "0",
            "--core-modes",
        ])
        .arg(&modes)
        .arg("--data-dir")
        .arg(fake.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("capture mode socket needs Linux"), "{err}");
    assert_eq!(settings.current_pattern(), settings.original_pattern());
}

#[test]
fn a_process_connecting_to_the_socket_gets_nothing_and_capture_goes_on() {
    if !socket_kernel("a_process_connecting_to_the_socket_gets_nothing_and_capture_goes_on") {
        return;
    }
    let sa = Standalone::start_socket(&[]);
    // Root (the only one who can reach the socket) pretending to be the kernel.
    let mut fake = UnixStream::connect(sa.socket_path()).unwrap();
    fake.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = 16u32.to_ne_bytes().to_vec();
    request.extend_from_slice(&16u32.to_ne_bytes());
    request.extend_from_slice(&0xfu64.to_ne_bytes());
    let _ = fake.write_all(&request);
    let mut answer = Vec::new();
    if let Err(e) = fake.read_to_end(&mut answer) {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    assert!(answer.is_empty(), "no answer for a process: {answer:?}");
    wait_for(
        "the foreign peer to be logged",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || sa.log().contains("not the kernel's").then_some(()),
    )
    .unwrap();

    let crash = crasher(1, 61, "text", "segv", false);
    let pid = crash.pid;
    crash.wait(Duration::from_secs(30));
    assert_eq!(
        sa.wait_record(pid, Duration::from_secs(30)).status.state,
        CoredumpState::Stored
    );
}

#[test]
fn storm_of_100_crashes_is_answered_without_a_process_per_crash() {
    if !socket_kernel("storm_of_100_crashes_is_answered_without_a_process_per_crash") {
        return;
    }
    let sa = Standalone::start_socket(&["--max-handlers", "8", "--max-compressing", "2"]);
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let watching = watching.clone();
        std::thread::spawn(move || {
            let mut handlers = 0usize;
            let mut scans = 0usize;
            while watching.load(std::sync::atomic::Ordering::Relaxed) && scans < 100_000 {
                handlers += handler_processes();
                scans += 1;
            }
            (handlers, scans)
        })
    };
    let mut pids = Vec::new();
    for batch in 0..5 {
        let mut crashes: Vec<_> = (0..20)
            .map(|i| crasher(1, 2000 + batch * 20 + i, "mixed", "segv", true))
            .collect();
        for c in crashes.iter_mut() {
            c.go();
        }
        for c in crashes {
            pids.push(c.pid);
            let (signal, _) = c.wait(Duration::from_secs(60));
            assert_eq!(signal, SIGSEGV);
        }
    }
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let (handlers, scans) = watcher.join().unwrap();
    assert!(scans > 0);
    assert_eq!(
        handlers, 0,
        "no `coredump-detector handle` process seen in {scans} scans of /proc"
    );

    let mine = sa.wait_records_for(&pids, Duration::from_secs(120));
    for c in &mine {
        match c.status.state {
            CoredumpState::Stored => assert!(c.status.core_size > 1 << 20),
            CoredumpState::RateLimited => {
                assert_eq!(c.status.raw_size, 0, "refused before any byte")
            }
            // One crasher, one signature: beyond the first and last 5 the server's retention
            // drops the core after it was captured whole, and keeps the record.
            CoredumpState::Evicted => {
                assert!(c.status.raw_size > 1 << 20, "captured, then evicted");
                assert!(c.status.message.contains("evicted"), "{}", c.status.message);
            }
            other => panic!("unexpected state {other:?} for {}", c.metadata.name),
        }
        assert_eq!(c.spec.signal, SIGSEGV, "{}", c.metadata.name);
    }
    let stored = mine
        .iter()
        .filter(|c| c.status.state == CoredumpState::Stored)
        .count();
    let evicted = mine
        .iter()
        .filter(|c| c.status.state == CoredumpState::Evicted)
        .count();
    eprintln!(
        "socket storm: {stored} stored, {evicted} evicted by retention, {} rejected",
        100 - stored - evicted
    );
}

/// Processes running `coredump-detector handle` right now.
fn handler_processes() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).nth(1) == Some(&b"handle"[..]))
        })
        .count()
}
