//! Builds the crashers once per test binary and makes cores of them with gdb's `gcore`.

#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use coredump_analysis::{Binaries, Image, ReadSeek};
use coredump_api::ThreadBacktrace;

pub use coredump_testkit::native::C_SOURCE as SOURCE;

/// The C crashers, with a scratch directory for cores.
pub struct Crashers {
    pub debug: PathBuf,
    pub stripped: PathBuf,
    pub debug_file: PathBuf,
    pub moved: PathBuf,
    dir: PathBuf,
}

pub fn crashers() -> &'static Crashers {
    static C: OnceLock<Crashers> = OnceLock::new();
    C.get_or_init(|| {
        let c = coredump_testkit::native::c();
        Crashers {
            debug: c.debug.clone(),
            stripped: c.stripped.clone(),
            debug_file: c.debug_file.clone(),
            moved: c.moved.clone(),
            dir: c.dir.clone(),
        }
    })
}

/// A core in memory.
pub struct Core {
    pub bytes: Vec<u8>,
}

impl Crashers {
    /// A core of the debug build crashing in `mode`.
    pub fn core(&self, mode: &str, args: &[&str]) -> Core {
        self.core_of(&self.debug, mode, args)
    }

    /// A core of `bin` crashing in `mode`, written by gdb's `gcore` at the fatal signal.
    pub fn core_of(&self, bin: &Path, mode: &str, args: &[&str]) -> Core {
        self.core_full(bin, "echo", mode, args)
    }

    /// [`Crashers::core_of`] with a gdb command run before the program starts.
    pub fn core_with(&self, bin: &Path, gdb_setup: &str, mode: &str) -> Core {
        self.core_full(bin, gdb_setup, mode, &[])
    }

    fn core_full(&self, bin: &Path, gdb_setup: &str, mode: &str, args: &[&str]) -> Core {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = self.dir.join(format!("core-{n}"));
        let out = Command::new("gdb")
            .args(["-nx", "-batch", "-ex", gdb_setup, "-ex", "run", "-ex"])
            .arg(format!("gcore {}", file.display()))
            .arg("--args")
            .arg(bin)
            .arg(mode)
            .args(args)
            .output()
            .unwrap();
        let bytes = std::fs::read(&file).unwrap_or_else(|e| {
            panic!(
                "gdb wrote no core ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let _ = std::fs::remove_file(&file);
        Core {
            bytes: kernel_layout(&bytes),
        }
    }
}

impl Core {
    pub fn reader(&self) -> Cursor<Vec<u8>> {
        Cursor::new(self.bytes.clone())
    }

    pub fn truncated(&self, keep: usize) -> Core {
        Core {
            bytes: self.bytes[..keep.min(self.bytes.len())].to_vec(),
        }
    }

    pub fn binaries(&self) -> TestFiles {
        TestFiles { debuginfo: None }
    }
}

/// Binaries for the tests: the files this test built and mapped, opened by the path in the
/// core (fine here: every mapped file is the test's own or the system's libraries). The
/// agent's source opens files it kept by build ID instead.
pub struct TestFiles {
    debuginfo: Option<PathBuf>,
}

impl TestFiles {
    pub fn with_debuginfo(self, path: &Path) -> TestFiles {
        TestFiles {
            debuginfo: Some(path.to_path_buf()),
        }
    }
}

impl Binaries for TestFiles {
    fn binary(&self, image: &Image) -> Option<Box<dyn ReadSeek>> {
        let f = std::fs::File::open(&image.path).ok()?;
        Some(Box::new(f))
    }

    fn debuginfo(&self, _build_id: &str) -> Option<Box<dyn ReadSeek>> {
        let f = std::fs::File::open(self.debuginfo.as_ref()?).ok()?;
        Some(Box::new(f))
    }
}

pub fn functions(t: &ThreadBacktrace) -> Vec<String> {
    t.frames
        .iter()
        .map(|f| f.function.clone().unwrap_or_default())
        .collect()
}

/// The 1-based line of the first line of the crasher's source containing `text`.
pub fn line_of(text: &str) -> u32 {
    SOURCE
        .lines()
        .position(|l| l.contains(text))
        .map(|i| i as u32 + 1)
        .unwrap()
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) as usize
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// gdb writes the notes after the memory; the kernel writes them first, right after the
/// program headers. Rewrites a gcore core into the kernel's order (x86_64, little endian), so
/// truncation cuts memory before notes as it does for real.
fn kernel_layout(core: &[u8]) -> Vec<u8> {
    const PT_NOTE: u32 = 4;
    let phoff = u64_at(core, 0x20) as usize;
    let phentsize = u16_at(core, 0x36);
    let phnum = u16_at(core, 0x38);
    let headers_end = phoff + phnum * phentsize;
    let mut order: Vec<usize> = (0..phnum).collect();
    let kind =
        |i: usize| u32::from_le_bytes(core[phoff + i * phentsize..][..4].try_into().unwrap());
    order.sort_by_key(|&i| if kind(i) == PT_NOTE { 0 } else { 1 });
    let mut out = core[..headers_end].to_vec();
    for i in order {
        let ph = phoff + i * phentsize;
        let (offset, size) = (
            u64_at(core, ph + 8) as usize,
            u64_at(core, ph + 32) as usize,
        );
        let new_offset = out.len() as u64;
        out.extend_from_slice(&core[offset..offset + size]);
        out[ph + 8..ph + 16].copy_from_slice(&new_offset.to_le_bytes());
    }
    out
}
