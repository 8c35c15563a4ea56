//! Reading the crashed process's memory back out of a core's `PT_LOAD`
//! segments, a bounded piece at a time, never more than the data holds.

use std::io::{self, Read, Seek, SeekFrom};

use crate::model::CoreFile;

/// How much of a segment [`CoreFile::find_in_memory`] holds at once.
const SEARCH_CHUNK: usize = 1 << 20;

fn read_exact_at<R: Read + Seek>(r: &mut R, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    r.seek(SeekFrom::Start(offset))?;
    r.read_exact(buf)
}

impl CoreFile {
    /// The dumped bytes of segment `seg` (index into [`CoreFile::segments`]):
    /// all `file_size` bytes, or fewer when the data is truncated.
    pub fn segment_bytes<R: Read + Seek>(&self, r: &mut R, seg: usize) -> io::Result<Vec<u8>> {
        let segment = self.segments.get(seg).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("segment {seg} of {}", self.segments.len()),
            )
        })?;
        let len = usize::try_from(segment.available_bytes(self.file_len))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut buf = vec![0; len];
        read_exact_at(r, segment.file_offset, &mut buf)?;
        Ok(buf)
    }

    /// The `len` bytes of process memory at `vaddr`, or `None` when any of
    /// them was not dumped (or lies beyond truncated data).
    pub fn read_memory<R: Read + Seek>(
        &self,
        r: &mut R,
        vaddr: u64,
        len: usize,
    ) -> io::Result<Option<Vec<u8>>> {
        let mut out = vec![0; len];
        let mut done = 0;
        while done < len {
            let Some(addr) = vaddr.checked_add(done as u64) else {
                return Ok(None);
            };
            let found = self.segments.iter().find_map(|s| {
                let into = addr.checked_sub(s.vaddr)?;
                let left = s.available_bytes(self.file_len).checked_sub(into)?;
                (left > 0).then_some((s.file_offset + into, left))
            });
            let Some((offset, left)) = found else {
                return Ok(None);
            };
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(len - done);
            read_exact_at(r, offset, &mut out[done..done + n])?;
            done += n;
        }
        Ok(Some(out))
    }

    /// The address of the first occurrence of `pattern` in dumped memory,
    /// searching segment by segment in program header order (a match that
    /// straddles two segments is not found). `None` for an empty pattern.
    pub fn find_in_memory<R: Read + Seek>(
        &self,
        r: &mut R,
        pattern: &[u8],
    ) -> io::Result<Option<u64>> {
        if pattern.is_empty() {
            return Ok(None);
        }
        let keep = pattern.len() - 1;
        let mut buf = Vec::with_capacity(SEARCH_CHUNK + keep);
        for segment in &self.segments {
            let available = segment.available_bytes(self.file_len);
            buf.clear();
            // `buf` holds the segment bytes from `buf_start` on.
            let mut buf_start = 0u64;
            let mut next = 0u64;
            while next < available {
                let n = usize::try_from(available - next)
                    .unwrap_or(usize::MAX)
                    .min(SEARCH_CHUNK);
                let old = buf.len();
                buf.resize(old + n, 0);
                read_exact_at(r, segment.file_offset + next, &mut buf[old..])?;
                next += n as u64;
                if let Some(at) = buf.windows(pattern.len()).position(|w| w == pattern) {
                    // A corrupt segment can claim bytes past the end of the address space;
                    // a match there has no address (the wrapped one would name other memory).
                    match segment.vaddr.checked_add(buf_start + at as u64) {
                        Some(addr) => return Ok(Some(addr)),
                        None => break,
                    }
                }
                // Keep the tail that could start a match across chunks.
                let drop = buf.len().saturating_sub(keep);
                buf.drain(..drop);
                buf_start += drop as u64;
            }
        }
        Ok(None)
    }
}
