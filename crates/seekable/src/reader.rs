//! Reading the decompressed bytes of a zstd file at any offset: one frame decoded per seek in
//! a seekable file, a forward decode in a plain one.

use std::io::{self, Read, Seek, SeekFrom};

use crate::table::{Frame, SeekTable};

/// `Read + Seek` over the decompressed content of a zstd file.
pub struct SeekableReader<R: Read + Seek> {
    inner: Option<R>,
    len: u64,
    pos: u64,
    mode: Mode<R>,
}

enum Mode<R: Read + Seek> {
    /// A seek table: decode the frame holding `pos`, keep the last one decoded.
    Indexed {
        table: SeekTable,
        cached: Option<(usize, Vec<u8>)>,
        frames: FrameDecoder,
    },
    /// One long stream (blobs written before the seekable format): decode forward, start over
    /// for a backward seek. `at` is the decoded position.
    Stream {
        decoder: Option<zstd::stream::Decoder<'static, io::BufReader<R>>>,
        at: u64,
    },
}

impl<R: Read + Seek> SeekableReader<R> {
    /// Opens `inner`. With a seek table the decompressed length comes from it; a plain stream
    /// needs `plain_len` (e.g. `status.coreSize`) for seeks from the end, else they fail.
    pub fn new(mut inner: R, plain_len: Option<u64>) -> io::Result<Self> {
        let file_len = inner.seek(SeekFrom::End(0))?;
        let table = SeekTable::read(&mut inner, file_len)?;
        inner.seek(SeekFrom::Start(0))?;
        let (len, mode) = match table {
            Some(table) => (
                table.decompressed_len(),
                Mode::Indexed {
                    table,
                    cached: None,
                    frames: FrameDecoder::new()?,
                },
            ),
            None => (
                plain_len.unwrap_or(u64::MAX),
                Mode::Stream {
                    decoder: None,
                    at: 0,
                },
            ),
        };
        Ok(SeekableReader {
            inner: Some(inner),
            len,
            pos: 0,
            mode,
        })
    }

    /// The file reader back, rewound to its start (for a caller that streams a plain file).
    pub fn into_inner(mut self) -> io::Result<R> {
        let mut inner = match self.inner.take() {
            Some(r) => r,
            None => match std::mem::replace(
                &mut self.mode,
                Mode::Stream {
                    decoder: None,
                    at: 0,
                },
            ) {
                Mode::Stream {
                    decoder: Some(d), ..
                } => d.finish().into_inner(),
                _ => return Err(io::Error::other("reader lost after an error")),
            },
        };
        inner.seek(SeekFrom::Start(0))?;
        Ok(inner)
    }

    /// Whether the file had a seek table (random access costs one frame).
    pub fn is_indexed(&self) -> bool {
        matches!(self.mode, Mode::Indexed { .. })
    }

    /// Decompressed length (`u64::MAX` for a plain stream whose length was not given).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether there is nothing to read.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The seek table of an indexed file.
    pub fn table(&self) -> Option<&SeekTable> {
        match &self.mode {
            Mode::Indexed { table, .. } => Some(table),
            Mode::Stream { .. } => None,
        }
    }

    /// Decodes frame `i` of an indexed file into `out` (cleared first), writing each byte once:
    /// no zeroing, no intermediate copy, `out`'s allocation reused. Serving a whole core frame
    /// by frame this way costs the decompression alone (see `coredump-apiserver`'s `core`).
    pub fn decode_frame(&mut self, i: usize, out: &mut Vec<u8>) -> io::Result<()> {
        let Mode::Indexed { table, frames, .. } = &mut self.mode else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a zstd stream without seek table has no frames to decode",
            ));
        };
        let frame = table.frames.get(i).copied().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("no zstd frame {i}"))
        })?;
        let inner = self
            .inner
            .as_mut()
            .ok_or_else(|| io::Error::other("reader lost after an error"))?;
        frames.decode(inner, i, frame, out)
    }

    fn read_indexed(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Mode::Indexed {
            table,
            cached,
            frames,
        } = &mut self.mode
        else {
            return Ok(0);
        };
        let Some(i) = table.frame_at(self.pos) else {
            return Ok(0);
        };
        let frame = table.frames[i];
        if cached.as_ref().map(|(c, _)| *c) != Some(i) {
            let inner = self
                .inner
                .as_mut()
                .ok_or_else(|| io::Error::other("reader lost after an error"))?;
            // Reuse the previous frame's allocation.
            let mut data = cached.take().map(|(_, d)| d).unwrap_or_default();
            frames.decode(inner, i, frame, &mut data)?;
            *cached = Some((i, data));
        }
        let Some((_, data)) = cached.as_ref() else {
            return Ok(0);
        };
        let from = (self.pos - frame.decompressed_offset) as usize;
        let n = buf.len().min(data.len() - from);
        buf[..n].copy_from_slice(&data[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }

    fn read_stream(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Mode::Stream { decoder, at } = &mut self.mode else {
            return Ok(0);
        };
        if decoder.is_none() || *at > self.pos {
            let mut inner = match decoder.take() {
                Some(d) => d.finish().into_inner(),
                None => self
                    .inner
                    .take()
                    .ok_or_else(|| io::Error::other("reader lost after an error"))?,
            };
            inner.seek(SeekFrom::Start(0))?;
            *decoder = Some(zstd::stream::Decoder::new(inner)?);
            *at = 0;
        }
        let Some(d) = decoder.as_mut() else {
            return Ok(0);
        };
        if *at < self.pos {
            let skip = self.pos - *at;
            let skipped = io::copy(&mut d.take(skip), &mut io::sink())?;
            *at += skipped;
            if skipped < skip {
                return Ok(0);
            }
        }
        let n = d.read(buf)?;
        *at += n as u64;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Decodes single frames with one reused zstd context and compressed-input buffer.
struct FrameDecoder {
    context: zstd::bulk::Decompressor<'static>,
    compressed: Vec<u8>,
}

impl FrameDecoder {
    fn new() -> io::Result<Self> {
        Ok(FrameDecoder {
            context: zstd::bulk::Decompressor::new()?,
            compressed: Vec::new(),
        })
    }

    /// Reads frame `i` (`frame`) from `inner` and decodes it into `out`.
    fn decode<R: Read + Seek>(
        &mut self,
        inner: &mut R,
        i: usize,
        frame: Frame,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        self.compressed.clear();
        inner.seek(SeekFrom::Start(frame.compressed_offset))?;
        let want = u64::from(frame.compressed_size);
        let got = inner
            .by_ref()
            .take(want)
            .read_to_end(&mut self.compressed)?;
        if (got as u64) < want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("zstd frame {i} ends after {got} of its {want} bytes"),
            ));
        }
        out.clear();
        out.reserve(frame.decompressed_size as usize);
        // Writes into `out`'s spare capacity, which it never reads: `out` is not zeroed first.
        self.context
            .decompress_to_buffer(&self.compressed[..], out)?;
        if out.len() != frame.decompressed_size as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "zstd frame {i} holds {} bytes, its seek table entry says {}",
                    out.len(),
                    frame.decompressed_size
                ),
            ));
        }
        Ok(())
    }
}

impl<R: Read + Seek> Read for SeekableReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.len {
            return Ok(0);
        }
        match self.mode {
            Mode::Indexed { .. } => self.read_indexed(buf),
            Mode::Stream { .. } => self.read_stream(buf),
        }
    }
}

impl<R: Read + Seek> Seek for SeekableReader<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) if self.len != u64::MAX => self.len.checked_add_signed(d),
            SeekFrom::End(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the length of a zstd stream without seek table is not known",
                ));
            }
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;
    use crate::SeekableWriter;

    fn sample(len: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|i| {
                if i % 3000 < 1000 {
                    0
                } else {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 13) as u8
                }
            })
            .collect()
    }

    fn seekable(data: &[u8], frame: usize, workers: u32) -> Vec<u8> {
        let mut w = SeekableWriter::with_frame_size(Vec::new(), 1, workers, frame).unwrap();
        // Odd write sizes: frames must still end exactly at `frame`.
        for chunk in data.chunks(7777) {
            w.write_all(chunk).unwrap();
        }
        w.flush().unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn reads_anywhere_in_a_seekable_file() {
        let data = sample(1_000_000);
        for workers in [0, 2] {
            let file = seekable(&data, 64 << 10, workers);
            // Plain zstd decoders read it whole (the table is a skippable frame).
            assert_eq!(zstd::decode_all(&file[..]).unwrap(), data);
            let mut r = SeekableReader::new(Cursor::new(&file), None).unwrap();
            assert!(r.is_indexed());
            assert_eq!(r.len(), data.len() as u64);
            let table = SeekTable::read(&mut Cursor::new(&file), file.len() as u64)
                .unwrap()
                .unwrap();
            assert_eq!(table.frames.len(), 16);
            assert!(
                table.frames[..15]
                    .iter()
                    .all(|f| f.decompressed_size == 64 << 10)
            );
            for at in [999_000u64, 0, 65_535, 65_536, 500_001, 3] {
                let mut buf = vec![0u8; 1000];
                r.seek(SeekFrom::Start(at)).unwrap();
                r.read_exact(&mut buf).unwrap();
                assert_eq!(&buf[..], &data[at as usize..at as usize + 1000], "at {at}");
            }
            r.seek(SeekFrom::End(-10)).unwrap();
            let mut tail = Vec::new();
            r.read_to_end(&mut tail).unwrap();
            assert_eq!(tail, &data[data.len() - 10..]);
        }
    }

    #[test]
    fn whole_frames_decode_into_one_reused_buffer() {
        let data = sample(1_000_000);
        let file = seekable(&data, 64 << 10, 0);
        let mut r = SeekableReader::new(Cursor::new(&file), None).unwrap();
        let frames = r.table().unwrap().frames.clone();
        let mut out = Vec::new();
        // Backwards, so each frame overwrites a longer or equal previous one.
        for (i, f) in frames.iter().enumerate().rev() {
            r.decode_frame(i, &mut out).unwrap();
            let at = f.decompressed_offset as usize;
            assert_eq!(
                &out[..],
                &data[at..at + f.decompressed_size as usize],
                "frame {i}"
            );
        }
        assert!(r.decode_frame(frames.len(), &mut out).is_err());
        // Reads after whole-frame decodes still see the right bytes.
        let mut buf = [0u8; 100];
        r.seek(SeekFrom::Start(700_000)).unwrap();
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[..], &data[700_000..700_100]);
        let plain = zstd::encode_all(&data[..], 1).unwrap();
        let mut p = SeekableReader::new(Cursor::new(&plain), Some(data.len() as u64)).unwrap();
        assert!(p.table().is_none());
        assert!(p.decode_frame(0, &mut out).is_err());
    }

    #[test]
    fn the_reference_reader_reads_what_we_write() {
        let data = sample(300_000);
        let file = seekable(&data, 50_000, 0);
        let mut s = zstd_safe::seekable::Seekable::create();
        s.init_buff(&file).unwrap();
        assert_eq!(s.num_frames(), 6);
        let mut out = vec![0u8; 5000];
        let n = s.decompress(&mut out[..], 123_456).unwrap();
        assert_eq!(&out[..n], &data[123_456..123_456 + n]);
    }

    #[test]
    fn plain_streams_are_still_read() {
        let data = sample(200_000);
        let file = zstd::encode_all(&data[..], 1).unwrap();
        let mut r = SeekableReader::new(Cursor::new(&file), Some(data.len() as u64)).unwrap();
        assert!(!r.is_indexed());
        let mut buf = [0u8; 100];
        for at in [150_000u64, 10, 199_900] {
            r.seek(SeekFrom::Start(at)).unwrap();
            r.read_exact(&mut buf).unwrap();
            assert_eq!(&buf[..], &data[at as usize..at as usize + 100]);
        }
        let mut unknown = SeekableReader::new(Cursor::new(&file), None).unwrap();
        assert!(unknown.seek(SeekFrom::End(0)).is_err());
    }

    #[test]
    fn empty_and_damaged() {
        let empty = SeekableWriter::new(Vec::new(), 1, 0)
            .unwrap()
            .finish()
            .unwrap();
        let mut r = SeekableReader::new(Cursor::new(&empty), None).unwrap();
        assert!(r.is_indexed() && r.is_empty());
        let mut v = Vec::new();
        assert_eq!(r.read_to_end(&mut v).unwrap(), 0);
        // A table whose sizes do not add up to the file is not believed.
        let data = sample(100_000);
        let mut file = seekable(&data, 30_000, 0);
        let at = file.len() - 9 - 8 * 4 - 8 + 8; // first entry's compressed size
        file[at] ^= 1;
        let r = SeekableReader::new(Cursor::new(&file), Some(data.len() as u64)).unwrap();
        assert!(!r.is_indexed());
    }
}
