//! Damaged synthetic cores: every truncation point, reads at segment
//! bounds, garbage and mutations.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Cursor, ErrorKind};

use coredump_corefile::{CoreFileError, LoadSegment, parse_core_bytes};
use support::fixtures::*;
use support::*;

#[test]
fn every_prefix_parses_or_fails_cleanly() {
    let (bytes, layout) = x86_64_fixture();
    let full = parse_core_bytes(&bytes).unwrap();
    let pattern_at = layout.loads[1].start + 5000;
    for len in 0..=bytes.len() {
        let result = parse_core_bytes(&bytes[..len]);
        if len < layout.phdr_end {
            assert!(
                matches!(result, Err(CoreFileError::Truncated { .. })),
                "len {len}: {result:?}"
            );
            continue;
        }
        let core = result.unwrap_or_else(|e| panic!("len {len}: {e}"));
        assert_eq!(core.segments, full.segments, "headers are whole at {len}");
        assert_eq!(core.notes_complete, len >= layout.notes.end, "len {len}");
        // Whatever notes were read are the full core's, in order.
        assert!(full.prstatus.starts_with(&core.prstatus), "len {len}");
        assert!(
            core.psinfo.is_none() || core.psinfo == full.psinfo,
            "len {len}"
        );
        assert!(
            core.note_errors.is_empty(),
            "len {len}: {:?}",
            core.note_errors
        );
        if len >= layout.notes.end {
            assert_eq!(
                (&core.prstatus, &core.mapped_files, &core.auxv),
                (&full.prstatus, &full.mapped_files, &full.auxv)
            );
        }
        let incomplete: Vec<usize> = (0..2).filter(|&i| layout.loads[i].end > len).collect();
        assert_eq!(core.incomplete_segments(), incomplete, "len {len}");
        for (i, seg) in core.segments.iter().enumerate() {
            let expect = layout.loads[i]
                .end
                .min(len)
                .saturating_sub(layout.loads[i].start);
            assert_eq!(
                seg.available_bytes(len as u64),
                expect as u64,
                "len {len} seg {i}"
            );
        }
        let mut r = Cursor::new(&bytes[..len]);
        let found = core
            .read_memory(&mut r, STACK + 5000, PATTERN.len())
            .unwrap();
        assert_eq!(
            found.is_some(),
            len >= pattern_at + PATTERN.len(),
            "len {len}"
        );
        assert_eq!(
            core.segment_bytes(&mut r, 1).unwrap().len(),
            layout.loads[1]
                .end
                .min(len)
                .saturating_sub(layout.loads[1].start)
        );
    }
}

#[test]
fn memory_reads_respect_segment_bounds() {
    let mib = 1 << 20;
    let mut big = vec![0u8; 3 * mib];
    // Straddles the first 1 MiB search chunk.
    big[mib - 10..mib - 10 + PATTERN.len()].copy_from_slice(PATTERN);
    let split = b"split-across-segments";
    let mut a = vec![1u8; 64];
    a[54..].copy_from_slice(&split[..10]);
    let mut b = vec![2u8; 64];
    b[..split.len() - 10].copy_from_slice(&split[10..]);
    let mut builder = CoreBuilder::new(EM_X86_64)
        .load(0x10_0000, big, LoadSegment::READ)
        .load(0x50_0000, a, LoadSegment::READ)
        .load(0x50_0040, b, LoadSegment::READ);
    // A mapping that was not dumped: memory size without file bytes.
    builder.loads.push(Load {
        vaddr: 0x60_0000,
        data: vec![],
        mem_size: 4096,
        flags: LoadSegment::READ,
    });
    let (bytes, _) = builder.build();
    let core = parse_core_bytes(&bytes).unwrap();
    let mut r = Cursor::new(&bytes);

    assert_eq!(
        core.find_in_memory(&mut r, PATTERN).unwrap(),
        Some(0x10_0000 + mib as u64 - 10)
    );
    assert_eq!(
        core.find_in_memory(&mut r, split).unwrap(),
        None,
        "per segment by contract"
    );
    assert_eq!(core.find_in_memory(&mut r, b"").unwrap(), None);
    assert_eq!(
        core.find_in_memory(&mut r, b"\x02\x02\x02").unwrap(),
        Some(0x50_0040 + 11)
    );
    // read_memory does join adjacent segments.
    assert_eq!(
        core.read_memory(&mut r, 0x50_0036, split.len())
            .unwrap()
            .as_deref(),
        Some(&split[..])
    );
    assert_eq!(core.read_memory(&mut r, 0x60_0000, 1).unwrap(), None);
    assert_eq!(
        core.read_memory(&mut r, 0x50_0070, 64).unwrap(),
        None,
        "runs past the end"
    );
    assert_eq!(core.read_memory(&mut r, u64::MAX, 2).unwrap(), None);
    assert_eq!(core.segment_bytes(&mut r, 3).unwrap(), Vec::<u8>::new());
    assert_eq!(
        core.segment_bytes(&mut r, 4).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

/// Parses `bytes` and, when that works, drives every reader over it.
fn exercise(bytes: &[u8]) -> bool {
    let Ok(core) = parse_core_bytes(bytes) else {
        return false;
    };
    let mut r = Cursor::new(bytes);
    let _ = core.executable_path();
    let _ = core.incomplete_segments();
    core.main_executable_build_id(&mut r).unwrap();
    core.find_in_memory(&mut r, PATTERN).unwrap();
    if !core.segments.is_empty() {
        core.segment_bytes(&mut r, 0).unwrap();
    }
    true
}

#[test]
fn garbage_and_mutations_never_panic() {
    let mut rng = Rng(7);
    let (good, layout) = x86_64_fixture();
    let mut parsed = 0;
    for round in 0..6000 {
        let bytes = match round % 3 {
            // Noise.
            0 => (0..rng.below(400)).map(|_| rng.next() as u8).collect(),
            // A plausible header followed by noise.
            1 => {
                let mut b = good[..64].to_vec();
                b.extend((0..rng.below(2000)).map(|_| rng.next() as u8));
                b
            }
            // The real fixture with a few header, program header or note bytes changed.
            _ => {
                let mut b = good.clone();
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(layout.notes.end);
                    b[at] = rng.next() as u8;
                }
                if rng.below(4) == 0 {
                    let field = 64 + rng.below(layout.phdr_end - 64 - 8);
                    b[field..field + 8].copy_from_slice(&rng.next().to_le_bytes());
                }
                b
            }
        };
        if exercise(&bytes) {
            parsed += 1;
        }
    }
    // Most single-byte mutations keep the core readable; noise never is.
    assert!(parsed > 1000, "only {parsed} inputs parsed");
}

/// Found by the `corefile` fuzz target: a segment at the top of the address space matched a
/// pattern at an address that wrapped around to 0x5ba, where there is no memory.
#[test]
fn a_match_past_the_end_of_the_address_space_has_no_address() {
    let data = b"0123456789 pattern 0123456789".to_vec();
    let (bytes, _) = CoreBuilder::new(EM_X86_64)
        .load(u64::MAX - 4, data, LoadSegment::READ)
        .build();
    let core = parse_core_bytes(&bytes).unwrap();
    let mut r = Cursor::new(&bytes);
    assert_eq!(
        core.find_in_memory(&mut r, b"0123").unwrap(),
        Some(u64::MAX - 4)
    );
    assert_eq!(core.find_in_memory(&mut r, b"pattern").unwrap(), None);
}
