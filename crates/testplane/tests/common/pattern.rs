//! The byte stream the fake server sends for large bodies: 1 MiB blocks of fixed pseudo-random
//! bytes whose first 8 bytes are the block index, so a reader can check every byte cheaply
//! (memcmp) and a shifted, repeated or dropped block is caught.

use std::sync::OnceLock;

pub const BLOCK: usize = 1 << 20;

fn base() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..BLOCK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    })
}

/// Block `index` of the stream.
pub fn block(index: u64) -> Vec<u8> {
    let mut block = base().to_vec();
    block[..8].copy_from_slice(&index.to_le_bytes());
    block
}

/// `len` bytes of the stream starting at `offset`.
pub fn slice(offset: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut at = offset;
    while out.len() < len {
        let index = at / BLOCK as u64;
        let start = (at % BLOCK as u64) as usize;
        let take = (BLOCK - start).min(len - out.len());
        out.extend_from_slice(&block(index)[start..start + take]);
        at += take as u64;
    }
    out
}

/// Checks a stream read in arbitrary pieces.
#[derive(Default)]
pub struct Checker {
    pub offset: u64,
    current: Option<(u64, Vec<u8>)>,
}

impl Checker {
    /// Checks the next piece; `Err(offset)` at the first wrong byte.
    pub fn check(&mut self, mut data: &[u8]) -> Result<(), u64> {
        while !data.is_empty() {
            let index = self.offset / BLOCK as u64;
            if self.current.as_ref().is_none_or(|(i, _)| *i != index) {
                self.current = Some((index, block(index)));
            }
            let expected = &self.current.as_ref().unwrap().1;
            let start = (self.offset % BLOCK as u64) as usize;
            let take = (BLOCK - start).min(data.len());
            if data[..take] != expected[start..start + take] {
                let bad = data[..take]
                    .iter()
                    .zip(&expected[start..])
                    .position(|(a, b)| a != b)
                    .unwrap();
                return Err(self.offset + bad as u64);
            }
            self.offset += take as u64;
            data = &data[take..];
        }
        Ok(())
    }
}
