//! The capture path on the real kernel: crashing processes, the real `core_pattern` pipe, the
//! real handler binary, `list` and `export`. Every test holds the machine-wide kernel-settings
//! lock (serialized across test binaries) and restores `core_pattern` on every exit path.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{FakePodCgroup, SmallFs, Standalone, crasher};
use coredump_api::CoredumpState;
use coredump_corefile::parse_core_bytes;

const SIGSEGV: i32 = 11;
const SIGABRT: i32 = 6;

#[test]
fn crash_is_captured_complete_and_described() {
    let sa = Standalone::start(&[]);
    let seed = 0x5eed_0001;
    let crash = crasher(8, seed, "mixed", "segv", false);
    let pid = crash.pid;
    let (signal, dumped) = crash.wait(Duration::from_secs(30));
    assert_eq!(signal, SIGSEGV);
    assert!(
        dumped,
        "the kernel must report a core dump through the pipe"
    );

    let record = sa.wait_record(pid, Duration::from_secs(30));
    assert_eq!(record.status.state, CoredumpState::Stored, "{record:?}");
    assert_eq!(record.spec.signal, SIGSEGV);
    assert_eq!(record.spec.signal_name, "SIGSEGV");
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
    assert_eq!(record.metadata.namespace, "host");
    assert!(record.status.stored_size > 0 && record.status.stored_size < record.status.raw_size);

    // Rich metadata read from the core: threads and the executable's build-id.
    assert!(record.spec.threads >= 1, "{record:?}");
    assert_eq!(
        record.spec.build_id.as_deref(),
        Some(build_id_of(&coredump_testkit::bins::crasher()).as_str())
    );

    let core = sa.export(&record.metadata.name);
    assert_eq!(core.len() as u64, record.status.raw_size);
    assert_eq!(core.len() as u64, record.status.core_size);
    common::assert_whole_crasher_core(&core, pid, SIGSEGV, seed);
}

/// The GNU build-id of an executable, as elfutils reads it.
fn build_id_of(exe: &std::path::Path) -> String {
    let out = std::process::Command::new("eu-readelf")
        .arg("-n")
        .arg(exe)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .unwrap_or_else(|| panic!("no build-id in {}: {text}", exe.display()))
        .trim()
        .to_string()
}

#[test]
fn size_limit_truncates_and_keeps_a_readable_prefix() {
    let sa = Standalone::start(&["--max-core-size", "1Mi"]);
    let crash = crasher(16, 7, "random", "abrt", false);
    let pid = crash.pid;
    let (signal, _) = crash.wait(Duration::from_secs(30));
    assert_eq!(signal, SIGABRT);
    let record = sa.wait_record(pid, Duration::from_secs(30));
    assert_eq!(record.status.state, CoredumpState::Truncated, "{record:?}");
    assert!(
        record.status.message.contains("limit"),
        "{}",
        record.status.message
    );
    assert!(
        record.status.raw_size > 16 << 20,
        "the whole core was drained and counted"
    );
    let core = sa.export(&record.metadata.name);
    assert_eq!(core.len(), 1 << 20);
    assert_eq!(record.status.core_size, 1 << 20);
    let parsed = parse_core_bytes(&core).unwrap();
    assert_eq!(parsed.prstatus[0].pid, pid, "notes survive in the prefix");
    assert_eq!(parsed.prstatus[0].signal, SIGABRT);
    assert!(
        !parsed.is_complete(),
        "segments beyond the prefix are reported missing"
    );
}

#[test]
fn restart_after_sigkill_repairs_core_pattern_and_keeps_records() {
    let mut sa = Standalone::start(&[]);
    let original = sa.settings.original_pattern().to_string();
    let crash = crasher(1, 3, "text", "segv", false);
    let pid = crash.pid;
    crash.wait(Duration::from_secs(30));
    let before = sa.wait_record(pid, Duration::from_secs(30));

    sa.kill();
    assert_eq!(
        sa.settings.current_pattern(),
        sa.expected_pattern(),
        "SIGKILL leaves our pattern"
    );
    sa.spawn();
    assert_eq!(sa.records().iter().filter(|c| c.spec.pid == pid).count(), 1);
    let crash = crasher(1, 4, "text", "segv", false);
    let pid2 = crash.pid;
    crash.wait(Duration::from_secs(30));
    sa.wait_record(pid2, Duration::from_secs(30));
    assert!(sa.stop(), "clean stop; log:\n{}", sa.log());
    assert_eq!(
        sa.settings.current_pattern(),
        original,
        "restored the pattern from before the first start"
    );
    let after = sa.records();
    assert_eq!(after.iter().find(|c| c.spec.pid == pid), Some(&before));
}

#[test]
fn second_instance_is_refused_while_one_owns_the_pattern() {
    let sa = Standalone::start(&[]);
    let other = tempfile::tempdir_in("/var/tmp").unwrap();
    let out = std::process::Command::new(common::detector())
        .arg("standalone")
        .arg("--data-dir")
        .arg(other.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already owned"), "{err}");
    assert_eq!(
        sa.settings.current_pattern(),
        sa.expected_pattern(),
        "the owner's pattern is untouched"
    );
}

#[test]
fn storm_of_100_crashes_is_captured_or_counted() {
    let sa = Standalone::start(&["--max-handlers", "8", "--max-compressing", "2"]);
    let mut pids = Vec::new();
    for batch in 0..5 {
        let crashes: Vec<_> = (0..20)
            .map(|i| crasher(1, 1000 + batch * 20 + i, "mixed", "segv", true))
            .collect();
        let mut crashes = crashes;
        for c in crashes.iter_mut() {
            c.go();
        }
        for c in crashes {
            pids.push(c.pid);
            let (signal, _) = c.wait(Duration::from_secs(60));
            assert_eq!(signal, SIGSEGV);
        }
    }
    let mine = sa.wait_records_for(&pids, Duration::from_secs(120));
    for c in &mine {
        match c.status.state {
            CoredumpState::Stored => assert!(c.status.core_size > 1 << 20),
            CoredumpState::RateLimited => {
                assert!(c.status.raw_size > 1 << 20, "drained and counted")
            }
            // One crasher, one signature: beyond the first and last 5 the server's retention
            // drops the core after it was captured whole, and keeps the record.
            CoredumpState::Evicted => {
                assert!(c.status.raw_size > 1 << 20, "captured, then evicted");
                assert!(c.status.message.contains("evicted"), "{}", c.status.message);
            }
            other => panic!("unexpected state {other:?} for {}", c.metadata.name),
        }
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
        "storm: {stored} stored, {evicted} evicted by retention, {} rate-limited",
        100 - stored - evicted
    );
}

#[test]
fn sigkill_of_the_handler_mid_write_leaves_no_half_entry() {
    let sa = Standalone::start(&["--max-compressing", "0"]);
    // --max-compressing 0: raw spooling, so a 512 MiB core takes long enough to kill mid-write.
    let mut crash = crasher(512, 9, "random", "segv", true);
    let pid = crash.pid;
    crash.go();
    let handler = coredump_testkit::poll::wait_for(
        "handler process",
        Duration::from_secs(20),
        Duration::from_millis(1),
        || find_handler_of(pid),
    )
    .unwrap();
    // Let it write some of the core, then kill it.
    coredump_testkit::poll::wait_for(
        "partial spool write",
        Duration::from_secs(20),
        Duration::from_millis(1),
        || spool_bytes(&sa.data().join("spool")).filter(|&b| b > 8 << 20),
    )
    .unwrap();
    rustix::process::kill_process(handler, rustix::process::Signal::KILL).unwrap();
    let (signal, _) = crash.wait(Duration::from_secs(60));
    assert_eq!(signal, SIGSEGV);
    let record = sa.wait_record(pid, Duration::from_secs(30));
    assert_eq!(record.status.state, CoredumpState::Failed, "{record:?}");
    assert!(
        record.status.blob_path.is_empty(),
        "no partial core is published"
    );
    let leftovers: Vec<_> = walk(&sa.data().join("blobs"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".core"))
        .collect();
    assert!(leftovers.is_empty(), "no core blobs: {leftovers:?}");
}

fn find_handler_of(pid: u32) -> Option<rustix::process::Pid> {
    for entry in std::fs::read_dir("/proc").ok()? {
        let entry = entry.ok()?;
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.len() > 2 && args[1] == b"handle" && args[2] == pid.to_string().as_bytes() {
            let n: i32 = entry.file_name().to_str()?.parse().ok()?;
            return rustix::process::Pid::from_raw(n);
        }
    }
    None
}

fn spool_bytes(spool: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(
        walk(spool)
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.blocks() * 512)
            .sum(),
    )
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn crash_in_a_kubepods_cgroup_yields_pod_uid_and_container_id() {
    let sa = Standalone::start(&[]);
    let cases = [
        (
            // systemd driver, containerd.
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f1c2d3e_4a5b_4c6d_8e7f_9a0b1c2d3e4f.slice/cri-containerd-1111111111111111111111111111111111111111111111111111111111111111.scope",
            "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
            "containerd://1111111111111111111111111111111111111111111111111111111111111111",
        ),
        (
            // cgroupfs driver, guaranteed QoS (no QoS level).
            "/kubepods/pod0a0b0c0d-1e1f-4a2b-9c3d-4e5f6a7b8c9d/2222222222222222222222222222222222222222222222222222222222222222",
            "0a0b0c0d-1e1f-4a2b-9c3d-4e5f6a7b8c9d",
            "containerd://2222222222222222222222222222222222222222222222222222222222222222",
        ),
        (
            // systemd driver, CRI-O, best effort.
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod9e8d7c6b_5a49_4382_a1b0_c9d8e7f6a5b4.slice/crio-3333333333333333333333333333333333333333333333333333333333333333.scope",
            "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4",
            "cri-o://3333333333333333333333333333333333333333333333333333333333333333",
        ),
    ];
    for (path, pod_uid, container_id) in cases {
        let cgroup = FakePodCgroup::create(path);
        let mut crash = crasher(1, 11, "text", "segv", true);
        let pid = crash.pid;
        cgroup.enter(pid);
        let seen = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(seen.contains(path), "crasher placed in {path}: {seen}");
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
        // The blob sits in the seed's layout: <namespace>/<podUID>/<container>/.
        assert!(
            record.status.blob_path.starts_with(&format!(
                "host/{pod_uid}/{}/",
                &container_id[container_id.len() - 64..][..12]
            )),
            "{}",
            record.status.blob_path
        );
        drop(cgroup);
    }
}

/// A full disk: with about 192 MiB free and a 64 MiB floor, a core of 320 MiB of random
/// (incompressible) memory is kept only up to the floor and marked Truncated, the filesystem
/// never runs out of space while it is written, the core stored before stays intact, and the
/// next crash is still recorded (Skipped: no room for its core) rather than lost.
#[test]
fn a_full_disk_truncates_at_the_floor_and_loses_no_record() {
    // Room for standalone's copy of itself (a debug build is large) plus about 192 MiB.
    let binary_mib = std::fs::metadata(common::detector()).unwrap().len() >> 20;
    let fs = SmallFs::mount(binary_mib + 200);
    let sa = Standalone::start_on(
        fs.path(),
        &["--capture", "pipe", "--min-free", "64Mi"],
        false,
    );
    println!("free space after start: {} MiB", fs.free() >> 20);

    let first = crasher(4, 1, "random", "segv", false);
    let first_pid = first.pid;
    assert_eq!(first.wait(Duration::from_secs(30)).0, SIGSEGV);
    let stored = sa.wait_record(first_pid, Duration::from_secs(30));
    assert_eq!(stored.status.state, CoredumpState::Stored, "{stored:?}");
    let stored_core = sa.export(&stored.metadata.name);
    assert_eq!(stored_core.len() as u64, stored.status.core_size);

    // Watch the free space while the big core is written.
    let lowest = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (lowest, done) = (lowest.clone(), done.clone());
        let path = fs.path().to_path_buf();
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while !done.load(std::sync::atomic::Ordering::Acquire)
                && std::time::Instant::now() < deadline
            {
                let st = rustix::fs::statvfs(&path).unwrap();
                lowest.fetch_min(
                    st.f_bavail * st.f_frsize,
                    std::sync::atomic::Ordering::AcqRel,
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let room = fs.free().saturating_sub(64 << 20);
    let big = crasher(320, 2, "random", "abrt", false);
    let big_pid = big.pid;
    assert_eq!(big.wait(Duration::from_secs(60)).0, SIGABRT);
    let truncated = sa.wait_record(big_pid, Duration::from_secs(60));
    done.store(true, std::sync::atomic::Ordering::Release);
    watcher.join().unwrap();
    let lowest = lowest.load(std::sync::atomic::Ordering::Acquire);
    println!(
        "free space: lowest {} MiB during the 320 MiB capture, {} MiB after",
        lowest >> 20,
        fs.free() >> 20
    );
    assert_eq!(
        truncated.status.state,
        CoredumpState::Truncated,
        "{truncated:?}"
    );
    assert!(
        truncated.status.message.contains("free-space floor"),
        "{}",
        truncated.status.message
    );
    assert!(
        truncated.status.raw_size > 320 << 20,
        "the whole core was drained and counted"
    );
    // The capture stays above the floor; the record store's own few writes are not held to it.
    assert!(
        lowest >= 60 << 20,
        "the filesystem went {} KiB below the floor",
        ((64 << 20) - lowest) >> 10
    );
    let prefix = sa.export(&truncated.metadata.name);
    assert_eq!(prefix.len() as u64, truncated.status.core_size);
    println!(
        "kept {} MiB of the {} MiB free above the floor",
        prefix.len() >> 20,
        room >> 20
    );
    assert!(
        prefix.len() as u64 >= room / 4 * 3,
        "the core filled the disk up to near the floor: kept {} of {room} bytes",
        prefix.len()
    );
    let parsed = parse_core_bytes(&prefix).unwrap();
    assert_eq!(
        parsed.prstatus[0].pid, big_pid,
        "notes survive in the prefix"
    );
    assert_eq!(
        sa.export(&stored.metadata.name),
        stored_core,
        "the core stored before is intact"
    );

    let next = crasher(4, 3, "random", "segv", false);
    let next_pid = next.pid;
    assert_eq!(next.wait(Duration::from_secs(30)).0, SIGSEGV);
    let last = sa.wait_record(next_pid, Duration::from_secs(30));
    // The big capture stopped at the floor plus the compressor's batch reserve, which it gave
    // back when done: a small core fits again, whole.
    assert_eq!(
        (last.status.state, last.status.core_size),
        (CoredumpState::Stored, last.status.raw_size),
        "{last:?} with {} MiB free",
        fs.free() >> 20
    );
    assert_eq!(
        sa.export(&last.metadata.name).len() as u64,
        last.status.raw_size
    );
    println!(
        "after the full disk, the next crash is {:?}: {}",
        last.status.state, last.status.message
    );
    drop(sa);
}
