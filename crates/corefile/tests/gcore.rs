//! Real cores: gdb's `gcore` dumps a live `sleep` child (no core_pattern
//! involved), and the parse must agree with the kernel, the filesystem and
//! `eu-readelf` about that process.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use coredump_corefile::{
    AT_ENTRY, CoreFileError, LoadSegment, Machine, parse_core, parse_core_bytes,
};

/// A core of a `sleep` process and what we know about that process.
struct Fixture {
    bytes: Vec<u8>,
    pid: u32,
    exe: PathBuf,
    /// An environment entry of the child, so it is on its stack.
    env_entry: Vec<u8>,
}

/// Kills and reaps the child however the test ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(make_fixture)
}

fn make_fixture() -> Fixture {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let value = format!("pattern-{}-{nanos}-0123456789abcdef", std::process::id());
    let child = Command::new("sleep")
        .arg("30")
        .env("COREDUMP_COREFILE_TEST", &value)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let child = Reaped(child);
    let pid = child.0.id();
    let me = std::fs::read_link("/proc/self/exe").unwrap();
    let exe_link = format!("/proc/{pid}/exe");
    // Dump only after the child has become `sleep`.
    wait_until("the child to exec sleep", Duration::from_secs(10), || {
        std::fs::read_link(&exe_link).is_ok_and(|p| p != me)
    });
    let exe = std::fs::read_link(&exe_link).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("core");
    let log_path = dir.path().join("gcore.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let gcore = Command::new("gcore")
        .arg("-o")
        .arg(&prefix)
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("gcore (gdb) is needed, see scripts/install-deps.sh: {e}"));
    let mut gcore = Reaped(gcore);
    wait_until("gcore", Duration::from_secs(120), || {
        gcore.0.try_wait().unwrap().is_some()
    });
    let path = dir.path().join(format!("core.{pid}"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("no core at {}: {e}; gcore said:\n{log}", path.display())
    });
    drop(child);
    Fixture {
        bytes,
        pid,
        exe,
        env_entry: format!("COREDUMP_COREFILE_TEST={value}").into_bytes(),
    }
}

#[test]
fn gcore_core_describes_the_live_process() {
    let f = fixture();
    let core = parse_core_bytes(&f.bytes).unwrap();
    let machine = if cfg!(target_arch = "x86_64") {
        Machine::X86_64
    } else if cfg!(target_arch = "aarch64") {
        Machine::Aarch64
    } else {
        core.machine
    };
    assert_eq!(core.machine, machine);
    assert_eq!(core.file_len, f.bytes.len() as u64);
    assert!(core.is_complete(), "{:?}", core.incomplete_segments());
    assert_eq!(core.note_errors, vec![]);

    assert_eq!(core.prstatus.len(), 1, "sleep has one thread");
    assert_eq!(core.prstatus[0].pid, f.pid);
    assert_eq!(core.prstatus[0].signal, 0, "gcore dumps a live process");
    let ps = core.psinfo.as_ref().unwrap();
    assert_eq!(ps.pid, f.pid);
    assert_eq!(ps.fname, "sleep");
    assert!(ps.args.starts_with("sleep"), "{:?}", ps.args);
    // The child runs as we do, and /proc/self belongs to our uid and gid.
    let meta = std::fs::metadata("/proc/self").unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((ps.uid, ps.gid), (meta.uid(), meta.gid()));

    let exe = f.exe.to_str().unwrap();
    assert_eq!(core.executable_path(), Some(exe));
    let exe_maps: Vec<_> = core.mapped_files.iter().filter(|m| m.path == exe).collect();
    assert!(exe_maps.iter().any(|m| m.file_offset == 0), "{exe_maps:?}");
    let entry = core.auxv_value(AT_ENTRY).unwrap();
    assert_eq!(core.mapping_at(entry).map(|m| m.path.as_str()), Some(exe));
}

#[test]
fn gcore_core_memory_holds_the_environment_pattern() {
    let f = fixture();
    let core = parse_core_bytes(&f.bytes).unwrap();
    let mut file = Cursor::new(&f.bytes);
    let addr = core
        .find_in_memory(&mut file, &f.env_entry)
        .unwrap()
        .unwrap();
    let read = core
        .read_memory(&mut file, addr, f.env_entry.len())
        .unwrap()
        .unwrap();
    assert_eq!(read, f.env_entry);
    let seg = core.segments.iter().find(|s| s.holds(addr)).unwrap();
    assert_ne!(
        seg.flags & LoadSegment::WRITE,
        0,
        "environment is on the writable stack"
    );
    // A pattern that is not there is not found.
    let absent = [f.env_entry.as_slice(), b"-not-in-memory"].concat();
    assert_eq!(core.find_in_memory(&mut file, &absent).unwrap(), None);
}

/// The `Build ID:` that `eu-readelf -n` prints for `path`.
fn readelf_build_id(path: &Path) -> String {
    let out = Command::new("eu-readelf")
        .arg("-n")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "eu-readelf failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .unwrap();
    line.trim().to_owned()
}

#[test]
fn gcore_core_build_id_matches_eu_readelf() {
    let f = fixture();
    let core = parse_core_bytes(&f.bytes).unwrap();
    let expected = readelf_build_id(&f.exe);
    assert_eq!(expected.len(), 40, "{expected}");
    let got = core
        .main_executable_build_id(&mut Cursor::new(&f.bytes))
        .unwrap();
    assert_eq!(got.as_deref(), Some(expected.as_str()));
}

/// (offset, size) of the PT_NOTE segments, read straight from the bytes.
fn note_ranges(bytes: &[u8]) -> Vec<(usize, usize)> {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let phoff = u64_at(32);
    let phnum = u16::from_le_bytes([bytes[56], bytes[57]]) as usize;
    (0..phnum)
        .map(|i| phoff + i * 56)
        .filter(|&ph| u32::from_le_bytes(bytes[ph..ph + 4].try_into().unwrap()) == 4)
        .map(|ph| (u64_at(ph + 8), u64_at(ph + 32)))
        .collect()
}

#[test]
fn gcore_core_truncated_prefixes() {
    let f = fixture();
    let full = parse_core_bytes(&f.bytes).unwrap();
    let phdr_end = 64 + 56 * (u16::from_le_bytes([f.bytes[56], f.bytes[57]]) as usize);
    for len in [0, 3, 10, 63, 64, phdr_end - 1] {
        let err = parse_core_bytes(&f.bytes[..len]).unwrap_err();
        assert!(
            matches!(err, CoreFileError::Truncated { .. }),
            "len {len}: {err}"
        );
    }

    let (notes_at, notes_len) = note_ranges(&f.bytes)[0];
    let mut file = Cursor::new(&f.bytes);
    let pattern_at = full
        .find_in_memory(&mut file, &f.env_entry)
        .unwrap()
        .unwrap();
    let seg_index = full
        .segments
        .iter()
        .position(|s| s.holds(pattern_at))
        .unwrap();
    let seg = full.segments[seg_index];
    let pattern_file_end =
        (seg.file_offset + (pattern_at - seg.vaddr)) as usize + f.env_entry.len();

    // Cut just before the end of the pattern, read through a real file.
    let dir = tempfile::tempdir().unwrap();
    let cut_path = dir.path().join("cut.core");
    let cut = pattern_file_end - 1;
    std::fs::write(&cut_path, &f.bytes[..cut]).unwrap();
    let core = parse_core(std::fs::File::open(&cut_path).unwrap()).unwrap();
    assert_eq!(core.segments, full.segments);
    assert_eq!(core.file_len, cut as u64);
    assert!(core.incomplete_segments().contains(&seg_index));
    assert_eq!(
        seg.available_bytes(cut as u64),
        cut as u64 - seg.file_offset
    );
    let mut cut_file = std::fs::File::open(&cut_path).unwrap();
    assert_eq!(
        core.read_memory(&mut cut_file, pattern_at, f.env_entry.len())
            .unwrap(),
        None
    );
    assert_eq!(
        core.find_in_memory(&mut cut_file, &f.env_entry).unwrap(),
        None
    );
    assert_eq!(
        core.segment_bytes(&mut cut_file, seg_index).unwrap(),
        f.bytes[seg.file_offset as usize..cut]
    );
    if notes_at > cut {
        // gcore writes the notes after the memory: they are all gone.
        assert!(!core.notes_complete && core.prstatus.is_empty() && core.psinfo.is_none());
    }

    // Cut inside the notes: what is there is read, the rest is flagged.
    let in_notes = notes_at + notes_len / 2;
    let core = parse_core_bytes(&f.bytes[..in_notes]).unwrap();
    assert!(!core.notes_complete);
    assert!(full.prstatus.starts_with(&core.prstatus));
    assert_eq!(core.note_errors, vec![]);

    // Cut right after the notes and the segments before them: nothing lost.
    let after = notes_at + notes_len;
    let core = parse_core_bytes(&f.bytes[..after]).unwrap();
    assert!(core.notes_complete);
    assert_eq!(
        (&core.prstatus, &core.psinfo, &core.mapped_files),
        (&full.prstatus, &full.psinfo, &full.mapped_files)
    );
}

#[test]
fn gcore_core_mutations_never_panic() {
    let f = fixture();
    let (notes_at, notes_len) = note_ranges(&f.bytes)[0];
    let phdr_end = 64 + 56 * (u16::from_le_bytes([f.bytes[56], f.bytes[57]]) as usize);
    let mut rng = support::Rng(99);
    let mut bytes = f.bytes.clone();
    for _ in 0..300 {
        let mut changed = Vec::new();
        for _ in 0..1 + rng.below(6) {
            let at = if rng.below(2) == 0 {
                rng.below(phdr_end)
            } else {
                notes_at + rng.below(notes_len)
            };
            changed.push((at, bytes[at]));
            bytes[at] = rng.next() as u8;
        }
        if let Ok(core) = parse_core_bytes(&bytes) {
            let mut r = Cursor::new(&bytes);
            let _ = core.executable_path();
            core.main_executable_build_id(&mut r).unwrap();
            core.read_memory(&mut r, core.auxv_value(AT_ENTRY).unwrap_or(0), 64)
                .unwrap();
        }
        for (at, old) in changed.into_iter().rev() {
            bytes[at] = old;
        }
    }
    assert_eq!(bytes, f.bytes, "mutations were undone");
}
