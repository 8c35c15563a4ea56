//! Facts read from the core file itself, off the crash path: thread count, the faulting
//! address, the executable as the core maps it, and its GNU build-id (what a debugger needs to
//! find matching symbols). Only the start of the core (headers and notes) and a small window
//! around the executable's ELF header are decompressed; memory stays bounded whatever the
//! core size, and a core that does not parse simply yields no facts.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use coredump_corefile::{CoreFile, parse_core_bytes};

/// Bytes of the decompressed core read for headers and notes.
const PREFIX: usize = 4 << 20;
/// Bytes read at the executable's ELF header for its build-id note.
const EXE_WINDOW: usize = 64 << 10;
/// Never decompress further than this looking for the executable's header.
const MAX_SKIP: u64 = 1 << 30;

/// What the core itself says about the crash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreFacts {
    /// Threads in the core (`NT_PRSTATUS` notes).
    pub threads: u32,
    /// Faulting address from `NT_SIGINFO`, for signals that have one.
    pub fault_address: Option<u64>,
    /// Main executable path from the core's file mappings.
    pub executable: Option<String>,
    /// GNU build-id of the main executable, lowercase hex.
    pub build_id: Option<String>,
}

/// Reads facts from a zstd-compressed core; `None` if it is not a readable ELF core.
pub fn read_facts(zst: &Path) -> Option<CoreFacts> {
    let file = std::fs::File::open(zst).ok()?;
    let mut decoder = zstd::stream::Decoder::new(file).ok()?;
    let mut prefix = Vec::with_capacity(PREFIX);
    (&mut decoder)
        .take(PREFIX as u64)
        .read_to_end(&mut prefix)
        .ok()?;
    let core = parse_core_bytes(&prefix).ok()?;
    let mut windows = Windows {
        parts: vec![(0, prefix)],
        pos: 0,
    };
    if let Some(offset) = exe_header_offset(&core) {
        let have = windows.parts[0].1.len() as u64;
        if offset + EXE_WINDOW as u64 > have && offset < MAX_SKIP {
            // Skip to the executable's header, then keep a small window of it.
            let skip = offset.saturating_sub(have);
            if std::io::copy(&mut (&mut decoder).take(skip), &mut std::io::sink()).ok()
                == Some(skip)
            {
                let mut window = Vec::with_capacity(EXE_WINDOW);
                if (&mut decoder)
                    .take(EXE_WINDOW as u64)
                    .read_to_end(&mut window)
                    .is_ok()
                {
                    windows.parts.push((offset, window));
                }
            }
        }
    }
    Some(CoreFacts {
        threads: core.prstatus.len() as u32,
        fault_address: core.siginfo.as_ref().and_then(|s| s.fault_addr),
        executable: core.executable_path().map(str::to_string),
        build_id: core.main_executable_build_id(&mut windows).ok().flatten(),
    })
}

/// File offset in the core of the main executable's first mapped page.
fn exe_header_offset(core: &CoreFile) -> Option<u64> {
    let base = core.main_executable_base()?;
    core.segments
        .iter()
        .find(|s| s.holds(base))
        .map(|s| s.file_offset + (base - s.vaddr))
}

/// A sparse view of the decompressed core: a few windows at known offsets; reads outside them
/// fail, which the core reader reports as "not dumped".
struct Windows {
    parts: Vec<(u64, Vec<u8>)>,
    pos: u64,
}

impl Read for Windows {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        for (start, bytes) in &self.parts {
            let end = start + bytes.len() as u64;
            if self.pos >= *start && self.pos < end {
                let from = (self.pos - start) as usize;
                let n = buf.len().min(bytes.len() - from);
                buf[..n].copy_from_slice(&bytes[from..from + n]);
                self.pos += n as u64;
                return Ok(n);
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "outside the decompressed windows",
        ))
    }
}

impl Seek for Windows {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
            SeekFrom::End(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "the core's end is not known",
                ));
            }
        };
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_yields_no_facts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core.zst");
        std::fs::write(
            &path,
            zstd::encode_all(&b"not an elf core at all"[..], 1).unwrap(),
        )
        .unwrap();
        assert_eq!(read_facts(&path), None);
        std::fs::write(&path, b"not even zstd").unwrap();
        assert_eq!(read_facts(&path), None);
    }

    #[test]
    fn windows_serve_only_what_they_hold() {
        let mut w = Windows {
            parts: vec![(0, vec![1, 2, 3]), (100, vec![7, 8])],
            pos: 0,
        };
        let mut b = [0u8; 2];
        w.seek(SeekFrom::Start(101)).unwrap();
        assert_eq!(w.read(&mut b).unwrap(), 1);
        assert_eq!(b[0], 8);
        w.seek(SeekFrom::Start(50)).unwrap();
        assert!(w.read(&mut b).is_err());
    }
}
