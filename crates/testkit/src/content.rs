//! Deterministic memory content for crash tests and benchmarks. The same `(seed, kind)` always
//! yields the same bytes at the same offset, so a test can regenerate any block and look for it
//! in a core file without keeping the original around.

/// What the memory looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Incompressible bytes.
    Random,
    /// Words from a small vocabulary: compresses like logs or heaps of strings.
    Text,
    /// Zero pages (untouched heap).
    Zero,
    /// Rotating 1 MiB blocks of random, text and zero: a typical process.
    Mixed,
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Kind, String> {
        match s {
            "random" => Ok(Kind::Random),
            "text" => Ok(Kind::Text),
            "zero" => Ok(Kind::Zero),
            "mixed" => Ok(Kind::Mixed),
            _ => Err(format!("unknown content kind {s:?}")),
        }
    }
}

/// Size of one content block: generation restarts its generator at every block boundary, so
/// any block can be produced on its own.
pub const BLOCK: usize = 1 << 20;

const WORDS: &[&[u8]] = &[
    b"error ",
    b"request ",
    b"handler ",
    b"pod ",
    b"timeout ",
    b"the ",
    b"and ",
    b"connection ",
    b"retry ",
    b"0x7ffd5e3a ",
    b"user=42 ",
    b"GET /api/v1 ",
    b"\n",
    b"INFO ",
    b"WARN ",
    b"null ",
];

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Fills `out` with block number `index` of the content `(seed, kind)`; `out.len()` is at most
/// [`BLOCK`].
pub fn block(seed: u64, kind: Kind, index: u64, out: &mut [u8]) {
    let mut state = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(index.wrapping_mul(0xbf58_476d_1ce4_e5b9))
        | 1;
    let kind = match kind {
        Kind::Mixed => [Kind::Random, Kind::Text, Kind::Zero][(index % 3) as usize],
        k => k,
    };
    match kind {
        Kind::Zero | Kind::Mixed => out.fill(0),
        Kind::Random => {
            for chunk in out.chunks_mut(8) {
                let v = xorshift(&mut state).to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
        }
        Kind::Text => {
            let mut i = 0;
            while i < out.len() {
                let w = WORDS[(xorshift(&mut state) % WORDS.len() as u64) as usize];
                let n = w.len().min(out.len() - i);
                out[i..i + n].copy_from_slice(&w[..n]);
                i += n;
            }
        }
    }
}

/// Fills `out` (any length) with the content starting at offset 0.
pub fn fill(seed: u64, kind: Kind, out: &mut [u8]) {
    for (i, chunk) in out.chunks_mut(BLOCK).enumerate() {
        block(seed, kind, i as u64, chunk);
    }
}

/// A marker that starts the crasher's buffer: unique per seed, easy to find in a core.
pub fn marker(seed: u64) -> Vec<u8> {
    format!("COREDUMP-DETECTOR-CRASHER-MARK:{seed:016x}:").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_deterministic_and_distinct() {
        let mut a = vec![0u8; 4096];
        let mut b = vec![0u8; 4096];
        block(7, Kind::Random, 3, &mut a);
        block(7, Kind::Random, 3, &mut b);
        assert_eq!(a, b);
        block(7, Kind::Random, 4, &mut b);
        assert_ne!(a, b);
        block(8, Kind::Random, 3, &mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn mixed_rotates_kinds() {
        let mut v = vec![0u8; 3 * BLOCK];
        fill(1, Kind::Mixed, &mut v);
        assert!(v[..BLOCK].iter().any(|&x| x != 0));
        assert!(v[BLOCK..2 * BLOCK].iter().all(|&x| x.is_ascii()));
        assert!(v[2 * BLOCK..].iter().all(|&x| x == 0));
    }
}
