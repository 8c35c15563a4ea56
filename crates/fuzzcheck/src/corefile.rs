//! ELF core headers and notes, and the memory reads done on a parsed core.

use std::io::Cursor;

use coredump_corefile::{LoadSegment, parse_core_bytes};

/// Parses the input as a core, then reads from it the way the agent and the analysis do.
/// Reads stay within the file, and memory found by a search reads back as the pattern.
pub fn corefile(data: &[u8]) {
    let Ok(core) = parse_core_bytes(data) else {
        return;
    };
    let file_len = data.len() as u64;
    assert_eq!(core.file_len, file_len);
    let mut r = Cursor::new(data);
    for i in core.incomplete_segments() {
        assert!(
            i < core.segments.len(),
            "incomplete segment {i} out of range"
        );
    }
    for (i, seg) in core.segments.iter().enumerate().take(64) {
        let available = seg.available_bytes(file_len);
        assert!(available <= seg.file_size);
        match core.segment_bytes(&mut r, i) {
            Ok(bytes) => assert_eq!(bytes.len() as u64, available, "segment {i}"),
            Err(e) => panic!("segment {i} within the file could not be read: {e}"),
        }
        let len = available.min(16) as usize;
        if let Ok(Some(mem)) = core.read_memory(&mut r, seg.vaddr, len) {
            assert_eq!(mem.len(), len);
        }
        let _ = core.mapping_at(seg.vaddr);
    }
    let _ = core.executable_path();
    let _ = core.main_executable_base();
    if let Ok(Some(build_id)) = core.main_executable_build_id(&mut r) {
        assert!(
            build_id.bytes().all(|b| b.is_ascii_hexdigit()),
            "build id {build_id:?}"
        );
    }
    // A pattern from the file itself: likely to be in some segment's bytes.
    let at = data.len() / 2;
    let pattern = &data[at..data.len().min(at + 4)];
    if let Ok(Some(addr)) = core.find_in_memory(&mut r, pattern) {
        let found = core.read_memory(&mut r, addr, pattern.len());
        // Where segments overlap, reads take the first one and the search may match in another.
        let same_bytes = matches!(&found, Ok(Some(m)) if m == pattern);
        assert!(
            same_bytes || (matches!(found, Ok(Some(_))) && overlapping(&core.segments, file_len)),
            "pattern found at {addr:#x} reads back as {found:?}"
        );
    }
}

/// Whether the dumped parts of two segments share an address.
fn overlapping(segments: &[LoadSegment], file_len: u64) -> bool {
    let range = |s: &LoadSegment| {
        let end = s.vaddr.saturating_add(s.available_bytes(file_len));
        (s.vaddr, end)
    };
    segments.iter().enumerate().any(|(i, a)| {
        let (a0, a1) = range(a);
        segments[i + 1..].iter().any(|b| {
            let (b0, b1) = range(b);
            a0 < b1 && b0 < a1
        })
    })
}
