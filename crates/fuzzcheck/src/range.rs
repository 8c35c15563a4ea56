//! The `Range` header of a core download.

use coredump_apiserver::ApiError;
use coredump_apiserver::http::core::{ByteRange, parse_range};

/// Parses a `Range` header against a content size, both taken from the input. A range
/// answered lies within the content; a header of the plain form `bytes=A-B` gets the answer
/// RFC 9110 gives.
pub fn range(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        // A size (small, or any u64) and a free-form header.
        let (size, header) = if mode & 2 == 0 || rest.len() < 8 {
            (u64::from(mode >> 2), rest)
        } else {
            let (n, header) = rest.split_at(8);
            (u64::from_le_bytes(n.try_into().unwrap_or_default()), header)
        };
        let Ok(header) = std::str::from_utf8(header) else {
            return;
        };
        check(&parse_range(Some(header), size), size);
    } else {
        // Three numbers: the size and a first-last range, checked against the model.
        let mut n = [0u64; 3];
        for (i, chunk) in rest.chunks(8).take(3).enumerate() {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            n[i] = u64::from_le_bytes(b) >> ((mode >> 1) & 0x3f);
        }
        let [size, first, last] = n;
        let got = parse_range(Some(&format!("bytes={first}-{last}")), size);
        check(&got, size);
        let want = (first < size && first <= last).then(|| ByteRange {
            start: first,
            end: last.min(size - 1),
        });
        match (got, want) {
            (Ok(Some(g)), Some(w)) => assert_eq!(g, w),
            (Err(_), None) => {}
            (got, want) => panic!("bytes={first}-{last} of {size}: {got:?}, want {want:?}"),
        }
        if first > 0 {
            // The suffix form: the last `first` bytes.
            let got = parse_range(Some(&format!("bytes=-{first}")), size);
            check(&got, size);
            let want = (size > 0).then(|| ByteRange {
                start: size.saturating_sub(first),
                end: size - 1,
            });
            match (got, want) {
                (Ok(Some(g)), Some(w)) => assert_eq!(g, w),
                (Err(_), None) => {}
                (got, want) => panic!("bytes=-{first} of {size}: {got:?}, want {want:?}"),
            }
        }
    }
}

fn check(result: &Result<Option<ByteRange>, ApiError>, size: u64) {
    match result {
        Ok(Some(r)) => assert!(
            r.start <= r.end && r.end < size,
            "{r:?} outside a content of {size} bytes"
        ),
        Ok(None) => {}
        Err(ApiError::RangeNotSatisfiable { size: s }) => assert_eq!(*s, size),
        Err(e) => panic!("unexpected error {e:?}"),
    }
}
