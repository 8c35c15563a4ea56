//! The crashed process's memory, read back from the core a block at a time through a small
//! cache: the unwinder asks for one word at a time, mostly on one or two stack pages, so a few
//! cached blocks serve nearly every read while memory stays bounded whatever the core size.

use std::io::{Read, Seek, SeekFrom};

use coredump_corefile::CoreFile;

/// Bytes read from the core per cache miss (aligned to this in the core file).
const BLOCK: u64 = 64 << 10;

/// Random access to dumped memory with at most `max_blocks` blocks cached.
pub(crate) struct CoreMemory<'c, R> {
    core: &'c CoreFile,
    reader: R,
    blocks: Vec<(u64, Vec<u8>)>,
    max_blocks: usize,
    /// Reads that failed on I/O (as opposed to "not dumped"): a damaged core.
    pub(crate) io_errors: u32,
}

impl<'c, R: Read + Seek> CoreMemory<'c, R> {
    pub(crate) fn new(core: &'c CoreFile, reader: R, max_blocks: usize) -> Self {
        CoreMemory {
            core,
            reader,
            blocks: Vec::new(),
            max_blocks: max_blocks.max(2),
            io_errors: 0,
        }
    }

    /// The parsed core this memory belongs to.
    pub(crate) fn core_file(&self) -> &'c CoreFile {
        self.core
    }

    /// The core file offset of `vaddr`, and how many bytes from there are in the file.
    fn locate(&self, vaddr: u64) -> Option<(u64, u64)> {
        self.core.segments.iter().find_map(|s| {
            let into = vaddr.checked_sub(s.vaddr)?;
            let left = s.available_bytes(self.core.file_len).checked_sub(into)?;
            (left > 0).then_some((s.file_offset + into, left))
        })
    }

    /// The cached block starting at core offset `start`, read on a miss.
    fn block(&mut self, start: u64) -> Option<&[u8]> {
        if let Some(i) = self.blocks.iter().position(|(s, _)| *s == start) {
            // Most recently used last.
            let hit = self.blocks.remove(i);
            self.blocks.push(hit);
        } else {
            let len = BLOCK.min(self.core.file_len.saturating_sub(start));
            let mut buf = vec![0u8; len as usize];
            let read = self
                .reader
                .seek(SeekFrom::Start(start))
                .and_then(|_| self.reader.read_exact(&mut buf));
            if read.is_err() {
                self.io_errors += 1;
                return None;
            }
            if self.blocks.len() >= self.max_blocks {
                self.blocks.remove(0);
            }
            self.blocks.push((start, buf));
        }
        self.blocks.last().map(|(_, b)| b.as_slice())
    }

    /// Fills `out` from process memory at `vaddr`; false when any byte was not dumped or
    /// could not be read.
    pub(crate) fn read(&mut self, vaddr: u64, out: &mut [u8]) -> bool {
        let mut done = 0;
        while done < out.len() {
            let Some(addr) = vaddr.checked_add(done as u64) else {
                return false;
            };
            let Some((offset, left)) = self.locate(addr) else {
                return false;
            };
            let start = offset - offset % BLOCK;
            let Some(block) = self.block(start) else {
                return false;
            };
            let from = (offset - start) as usize;
            let n = (out.len() - done)
                .min(block.len().saturating_sub(from))
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            if n == 0 {
                return false;
            }
            out[done..done + n].copy_from_slice(&block[from..from + n]);
            done += n;
        }
        true
    }

    /// One little-endian 64-bit word.
    pub(crate) fn u64_le(&mut self, vaddr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(vaddr, &mut b).then(|| u64::from_le_bytes(b))
    }

    /// `len` bytes at `vaddr`, when all were dumped.
    pub(crate) fn bytes(&mut self, vaddr: u64, len: usize) -> Option<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read(vaddr, &mut v).then_some(v)
    }
}
