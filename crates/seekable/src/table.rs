//! The seek table: its encoding as zstd's seekable format defines it, and its parsing from the
//! end of a file.

use std::io::{self, Read, Seek, SeekFrom};

/// Magic of a skippable frame holding the seek table.
pub(crate) const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// Magic at the very end of a seekable file.
pub(crate) const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// Footer: number of frames (u32), descriptor (u8), magic (u32).
pub(crate) const FOOTER: u64 = 9;
/// Bit 7 of the descriptor: entries carry a checksum.
const CHECKSUM_FLAG: u8 = 0x80;
/// Tables larger than this are not believed (a 1 TiB core in 4 MiB frames needs 2 MiB).
const MAX_TABLE: u64 = 64 << 20;

/// One frame of a seekable file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Offset of the frame in the file.
    pub compressed_offset: u64,
    /// Its size in the file.
    pub compressed_size: u32,
    /// Offset of its first byte in the decompressed data.
    pub decompressed_offset: u64,
    /// Decompressed bytes it holds.
    pub decompressed_size: u32,
}

/// Every frame of a seekable file, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeekTable {
    /// The frames.
    pub frames: Vec<Frame>,
}

impl SeekTable {
    /// Decompressed size of the whole file.
    pub fn decompressed_len(&self) -> u64 {
        self.frames
            .last()
            .map(|f| f.decompressed_offset + u64::from(f.decompressed_size))
            .unwrap_or(0)
    }

    /// The index of the frame holding decompressed offset `pos`.
    pub fn frame_at(&self, pos: u64) -> Option<usize> {
        let i = self
            .frames
            .partition_point(|f| f.decompressed_offset + u64::from(f.decompressed_size) <= pos);
        (i < self.frames.len()).then_some(i)
    }

    /// The skippable frame to append after the last data frame.
    pub(crate) fn encode(sizes: &[(u32, u32)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + sizes.len() * 8 + FOOTER as usize);
        let content = sizes.len() as u64 * 8 + FOOTER;
        out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        out.extend_from_slice(&(content as u32).to_le_bytes());
        for (c, d) in sizes {
            out.extend_from_slice(&c.to_le_bytes());
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&(sizes.len() as u32).to_le_bytes());
        out.push(0);
        out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
        out
    }

    /// Reads the table at the end of `r` (a file of `len` bytes); `Ok(None)` when the file does
    /// not end in one, or it does not add up to the file (then it is read as a plain stream).
    pub fn read<R: Read + Seek>(r: &mut R, len: u64) -> io::Result<Option<SeekTable>> {
        if len < FOOTER + 8 {
            return Ok(None);
        }
        let mut footer = [0u8; FOOTER as usize];
        r.seek(SeekFrom::Start(len - FOOTER))?;
        r.read_exact(&mut footer)?;
        let u32_at =
            |b: &[u8], at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        if u32_at(&footer, 5) != SEEKABLE_MAGIC {
            return Ok(None);
        }
        let count = u64::from(u32_at(&footer, 0));
        let descriptor = footer[4];
        let entry = if descriptor & CHECKSUM_FLAG != 0 {
            12
        } else {
            8
        };
        let table_len = count * entry;
        if table_len > MAX_TABLE || table_len + FOOTER + 8 > len {
            return Ok(None);
        }
        let start = len - FOOTER - table_len - 8;
        let mut bytes = vec![0u8; (table_len + 8) as usize];
        r.seek(SeekFrom::Start(start))?;
        r.read_exact(&mut bytes)?;
        if u32_at(&bytes, 0) != SKIPPABLE_MAGIC
            || u64::from(u32_at(&bytes, 4)) != table_len + FOOTER
        {
            return Ok(None);
        }
        let mut frames = Vec::with_capacity(count as usize);
        let (mut c_off, mut d_off) = (0u64, 0u64);
        for i in 0..count as usize {
            let at = 8 + i * entry as usize;
            let c = u32_at(&bytes, at);
            let d = u32_at(&bytes, at + 4);
            frames.push(Frame {
                compressed_offset: c_off,
                compressed_size: c,
                decompressed_offset: d_off,
                decompressed_size: d,
            });
            c_off += u64::from(c);
            d_off += u64::from(d);
        }
        if c_off != start {
            return Ok(None);
        }
        Ok(Some(SeekTable { frames }))
    }
}
