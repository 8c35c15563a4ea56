//! ELF core headers and notes, and the memory reads done on a parsed core.

use std::io::Cursor;

use coredump_corefile::parse_core_bytes;

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
        assert!(
            matches!(&found, Ok(Some(m)) if m == pattern),
            "pattern found at {addr:#x} reads back as {found:?}"
        );
    }
}
