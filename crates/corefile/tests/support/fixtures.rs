//! The synthetic cores the tests share.

#![allow(dead_code)]

use coredump_corefile::{AT_ENTRY, AT_PAGESZ, AT_PHDR, LoadSegment};

use super::*;

pub const LE: Order = Order { big: false };
pub const BE: Order = Order { big: true };
pub const BUILD_ID: [u8; 20] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe,
    0x00, 0xff, 0x7f, 0x80,
];
pub const BUILD_ID_HEX: &str = "0123456789abcdef1032547698badcfe00ff7f80";
pub const PATTERN: &[u8] = b"coredump-corefile synthetic pattern";
pub const STACK: u64 = 0x7ffd_0000_0000;

pub fn stack_with_pattern(at: usize) -> Vec<u8> {
    let mut stack = vec![0u8; 8192];
    stack[at..at + PATTERN.len()].copy_from_slice(PATTERN);
    stack
}

/// A crashed x86_64 non-PIE program with two threads.
pub fn x86_64_fixture() -> (Vec<u8>, Layout) {
    CoreBuilder::new(EM_X86_64)
        .note(
            b"CORE",
            NT_PRSTATUS,
            prstatus(LE, 336, 4242, 1, 4242, 4200, 11),
        )
        .note(
            b"CORE",
            NT_PRPSINFO,
            psinfo(LE, 4242, 1000, 1001, b"crasher", b"/app/crasher --flag"),
        )
        .note(b"CORE", NT_SIGINFO, siginfo(LE, 11, 0, 1, 0xdead_beef))
        .note(b"LINUX", NT_PRSTATUS, vec![0xff; 336])
        .note(
            b"CORE",
            NT_FILE,
            nt_file(
                LE,
                4096,
                &[
                    (0x40_0000, 0x40_1000, 0, "/app/crasher"),
                    (0x40_1000, 0x40_3000, 1, "/app/crasher"),
                    (
                        0x7f00_0000_0000,
                        0x7f00_0000_2000,
                        0,
                        "/usr/lib/x86_64-linux-gnu/libc.so.6",
                    ),
                ],
            ),
        )
        .note(
            b"CORE",
            NT_AUXV,
            auxv(
                LE,
                &[
                    (AT_PHDR, 0x40_0040),
                    (AT_PAGESZ, 4096),
                    (AT_ENTRY, 0x40_1000),
                ],
            ),
        )
        .note(
            b"CORE",
            NT_PRSTATUS,
            prstatus(LE, 336, 4243, 1, 4242, 4200, 11),
        )
        .load(
            0x40_0000,
            elf_image(LE, EM_X86_64, 2, 0x40_0000, &BUILD_ID),
            LoadSegment::READ,
        )
        .load(
            STACK,
            stack_with_pattern(5000),
            LoadSegment::READ | LoadSegment::WRITE,
        )
        .build()
}
