//! Cores built byte by byte: every field checked exactly, other
//! architectures and byte orders, typed errors.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Cursor;

use coredump_corefile::{
    AT_ENTRY, AT_PAGESZ, AT_PHDR, CoreFile, CoreFileError, LoadSegment, Machine, MappedFile,
    PrStatus, PsInfo, SigInfo, parse_core, parse_core_bytes,
};
use support::fixtures::*;
use support::*;

/// What `support::prstatus` writes into `pr_reg`: every byte 0xa5.
const REG_FILL: u64 = 0xa5a5_a5a5_a5a5_a5a5;

#[test]
fn x86_64_core_every_field() {
    let (bytes, layout) = x86_64_fixture();
    let core = parse_core_bytes(&bytes).unwrap();
    let expected = CoreFile {
        machine: Machine::X86_64,
        file_len: bytes.len() as u64,
        segments: vec![
            LoadSegment {
                vaddr: 0x40_0000,
                file_offset: layout.loads[0].start as u64,
                file_size: 4096,
                mem_size: 4096,
                flags: LoadSegment::READ,
            },
            LoadSegment {
                vaddr: STACK,
                file_offset: layout.loads[1].start as u64,
                file_size: 8192,
                mem_size: 8192,
                flags: LoadSegment::READ | LoadSegment::WRITE,
            },
        ],
        prstatus: vec![
            PrStatus {
                pid: 4242,
                ppid: 1,
                pgrp: 4242,
                sid: 4200,
                signal: 11,
                registers: vec![REG_FILL; 27],
            },
            PrStatus {
                pid: 4243,
                ppid: 1,
                pgrp: 4242,
                sid: 4200,
                signal: 11,
                registers: vec![REG_FILL; 27],
            },
        ],
        psinfo: Some(PsInfo {
            pid: 4242,
            uid: 1000,
            gid: 1001,
            fname: "crasher".into(),
            args: "/app/crasher --flag".into(),
        }),
        siginfo: Some(SigInfo {
            signo: 11,
            code: 1,
            errno: 0,
            fault_addr: Some(0xdead_beef),
        }),
        mapped_files: vec![
            MappedFile {
                start: 0x40_0000,
                end: 0x40_1000,
                file_offset: 0,
                path: "/app/crasher".into(),
            },
            MappedFile {
                start: 0x40_1000,
                end: 0x40_3000,
                file_offset: 4096,
                path: "/app/crasher".into(),
            },
            MappedFile {
                start: 0x7f00_0000_0000,
                end: 0x7f00_0000_2000,
                file_offset: 0,
                path: "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
            },
        ],
        auxv: vec![
            (AT_PHDR, 0x40_0040),
            (AT_PAGESZ, 4096),
            (AT_ENTRY, 0x40_1000),
        ],
        notes_complete: true,
        note_errors: vec![],
    };
    assert_eq!(core, expected);
    assert!(core.is_complete());
    assert_eq!(core.executable_path(), Some("/app/crasher"));
    assert_eq!(core.main_executable_base(), Some(0x40_0000));
    let mut r = Cursor::new(&bytes);
    assert_eq!(
        core.main_executable_build_id(&mut r).unwrap().as_deref(),
        Some(BUILD_ID_HEX)
    );
    assert_eq!(
        core.find_in_memory(&mut r, PATTERN).unwrap(),
        Some(STACK + 5000)
    );
    assert_eq!(
        core.segment_bytes(&mut r, 1).unwrap(),
        stack_with_pattern(5000)
    );
}

#[test]
fn aarch64_pie_without_nt_file_finds_build_id_from_auxv() {
    let base = 0x5555_5555_0000;
    let (bytes, _) = CoreBuilder::new(EM_AARCH64)
        .note(b"CORE", NT_PRSTATUS, prstatus(LE, 392, 77, 76, 77, 70, 6))
        .note(
            b"CORE",
            NT_AUXV,
            auxv(LE, &[(AT_PAGESZ, 65536), (AT_PHDR, base + 64)]),
        )
        .load(
            base,
            elf_image(LE, EM_AARCH64, 3, 0, &BUILD_ID),
            LoadSegment::READ,
        )
        .build();
    let core = parse_core_bytes(&bytes).unwrap();
    assert_eq!(core.machine, Machine::Aarch64);
    assert_eq!(
        core.prstatus,
        vec![PrStatus {
            pid: 77,
            ppid: 76,
            pgrp: 77,
            sid: 70,
            signal: 6,
            registers: vec![REG_FILL; 34],
        }]
    );
    assert_eq!(core.executable_path(), None);
    assert_eq!(core.main_executable_base(), Some(base));
    let id = core
        .main_executable_build_id(&mut Cursor::new(&bytes))
        .unwrap();
    assert_eq!(id.as_deref(), Some(BUILD_ID_HEX));
}

#[test]
fn big_endian_core_decodes_in_its_byte_order() {
    let mut builder = CoreBuilder::new(EM_S390)
        .note(
            b"CORE",
            NT_PRSTATUS,
            prstatus(BE, 336, 0x0102_0304, 2, 3, 4, 11),
        )
        .note(
            b"CORE",
            NT_PRPSINFO,
            psinfo(BE, 0x0102_0304, 0x0a0b, 0x0c0d, b"be", b"be x"),
        )
        .note(b"CORE", NT_SIGINFO, siginfo(BE, 11, 0, 1, 0x1234))
        .note(
            b"CORE",
            NT_FILE,
            nt_file(
                BE,
                4096,
                &[(0x1000, 0x2000, 0, "/be"), (0x2000, 0x3000, 3, "/be")],
            ),
        )
        .note(b"CORE", NT_AUXV, auxv(BE, &[(AT_PHDR, 0x1040)]))
        .load(
            0x1000,
            elf_image(BE, EM_S390, 2, 0x1000, &BUILD_ID),
            LoadSegment::READ,
        );
    builder.order = BE;
    let (bytes, _) = builder.build();
    let core = parse_core_bytes(&bytes).unwrap();
    assert_eq!(core.machine, Machine::Other(EM_S390));
    assert_eq!(
        core.prstatus[0],
        PrStatus {
            pid: 0x0102_0304,
            ppid: 2,
            pgrp: 3,
            sid: 4,
            signal: 11,
            registers: vec![],
        }
    );
    let ps = core.psinfo.clone().unwrap();
    assert_eq!(
        (ps.pid, ps.uid, ps.gid, ps.fname.as_str(), ps.args.as_str()),
        (0x0102_0304, 0x0a0b, 0x0c0d, "be", "be x")
    );
    // Signal numbers differ between architectures: no fault address guessed.
    assert_eq!(
        core.siginfo,
        Some(SigInfo {
            signo: 11,
            code: 1,
            errno: 0,
            fault_addr: None
        })
    );
    assert_eq!(
        core.mapped_files,
        vec![
            MappedFile {
                start: 0x1000,
                end: 0x2000,
                file_offset: 0,
                path: "/be".into()
            },
            MappedFile {
                start: 0x2000,
                end: 0x3000,
                file_offset: 3 * 4096,
                path: "/be".into()
            },
        ]
    );
    assert_eq!(core.auxv, vec![(AT_PHDR, 0x1040)]);
    let id = core
        .main_executable_build_id(&mut Cursor::new(&bytes))
        .unwrap();
    assert_eq!(id.as_deref(), Some(BUILD_ID_HEX));
}

#[test]
fn pn_xnum_reads_the_count_from_section_zero() {
    let mut builder = CoreBuilder::new(EM_X86_64);
    for i in 0..3u64 {
        builder = builder.load(0x1000 * (i + 1), vec![i as u8; 16], LoadSegment::READ);
    }
    builder.xnum = true;
    let (bytes, _) = builder.build();
    assert_eq!(&bytes[56..58], &[0xff, 0xff]);
    let core = parse_core_bytes(&bytes).unwrap();
    let vaddrs: Vec<u64> = core.segments.iter().map(|s| s.vaddr).collect();
    assert_eq!(vaddrs, [0x1000, 0x2000, 0x3000]);
    assert_eq!(
        core.segment_bytes(&mut Cursor::new(&bytes), 2).unwrap(),
        vec![2u8; 16]
    );
}

#[test]
fn errors_are_typed() {
    let truncated = |r: Result<CoreFile, CoreFileError>| match r {
        Err(CoreFileError::Truncated { what, .. }) => what,
        other => panic!("expected Truncated, got {other:?}"),
    };
    assert_eq!(truncated(parse_core_bytes(b"")), "ELF magic");
    assert_eq!(truncated(parse_core_bytes(b"\x7fEL")), "ELF magic");
    assert_eq!(
        truncated(parse_core_bytes(b"\x7fELF\x02\x01\x01")),
        "ELF header"
    );
    match parse_core_bytes(b"MZ\x90\x00 this is not ELF") {
        Err(CoreFileError::NotElf { found }) => assert_eq!(found, b"MZ\x90\x00"),
        other => panic!("{other:?}"),
    }
    let (good, layout) = x86_64_fixture();

    let mut elf32 = good.clone();
    elf32[4] = 1;
    assert!(
        matches!(
            parse_core_bytes(&elf32),
            Err(CoreFileError::Unsupported { .. })
        ),
        "32-bit"
    );

    let mut exec = good.clone();
    exec[16] = 2;
    assert!(matches!(
        parse_core_bytes(&exec),
        Err(CoreFileError::NotCore { e_type: 2 })
    ));

    // The test binary itself: a real ELF file that is not a core.
    let me = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    assert!(matches!(
        parse_core(me),
        Err(CoreFileError::NotCore { e_type: 2 | 3 })
    ));

    let mut bad_entsize = good.clone();
    bad_entsize[54] = 32;
    assert!(matches!(
        parse_core_bytes(&bad_entsize),
        Err(CoreFileError::Malformed { .. })
    ));

    assert_eq!(
        truncated(parse_core_bytes(&good[..layout.phdr_end - 1])),
        "program header table"
    );

    // Error messages carry the numbers.
    let msg = parse_core_bytes(&good[..100]).unwrap_err().to_string();
    assert!(msg.contains("64..") && msg.contains("100"), "{msg}");
}

#[test]
fn malformed_notes_are_reported_not_fatal() {
    let mut huge_file = nt_file(LE, 4096, &[(0x1000, 0x2000, 0, "/x")]);
    huge_file[..8].copy_from_slice(&1_000_000_000u64.to_le_bytes());
    let (bytes, layout) = CoreBuilder::new(EM_X86_64)
        .note(b"CORE", NT_PRSTATUS, vec![0; 50])
        .note(b"CORE", NT_FILE, huge_file)
        .note(b"CORE", NT_PRPSINFO, psinfo(LE, 9, 0, 0, b"ok", b"ok"))
        .build();
    let core = parse_core_bytes(&bytes).unwrap();
    assert_eq!(core.prstatus, vec![]);
    assert_eq!(core.mapped_files, vec![]);
    assert_eq!(core.psinfo.unwrap().fname, "ok");
    let errors: Vec<(u64, u32)> = core
        .note_errors
        .iter()
        .map(|e| (e.segment_offset, e.n_type))
        .collect();
    let at = layout.notes.start as u64;
    assert_eq!(errors, [(at, NT_PRSTATUS), (at, NT_FILE)]);
    assert!(core.notes_complete);
}
