//! Builds small ELF core files byte by byte, so tests know every field
//! (including the ones `gcore` leaves at zero, like the signal) and can cover
//! other architectures and byte orders than the machine's.

#![allow(dead_code)]

pub mod fixtures;

pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
pub const EM_S390: u16 = 22;

pub const NT_PRSTATUS: u32 = 1;
pub const NT_PRPSINFO: u32 = 3;
pub const NT_AUXV: u32 = 6;
pub const NT_SIGINFO: u32 = 0x5349_4749;
pub const NT_FILE: u32 = 0x4649_4c45;

/// Writes integers in a chosen byte order.
#[derive(Clone, Copy)]
pub struct Order {
    pub big: bool,
}

impl Order {
    pub fn u16(self, out: &mut Vec<u8>, v: u16) {
        out.extend_from_slice(&if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }
    pub fn u32(self, out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }
    pub fn u64(self, out: &mut Vec<u8>, v: u64) {
        out.extend_from_slice(&if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        });
    }
    pub fn put_u16(self, out: &mut [u8], at: usize, v: u16) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        out[at..at + 2].copy_from_slice(&b);
    }
    pub fn put_u32(self, out: &mut [u8], at: usize, v: u32) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        out[at..at + 4].copy_from_slice(&b);
    }
    pub fn put_u64(self, out: &mut [u8], at: usize, v: u64) {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        out[at..at + 8].copy_from_slice(&b);
    }
}

/// One note to write.
pub struct Note {
    pub name: &'static [u8],
    pub n_type: u32,
    pub desc: Vec<u8>,
}

/// One PT_LOAD to write: `data` is what the core holds (may be shorter
/// than `mem_size`, as for a skipped mapping).
pub struct Load {
    pub vaddr: u64,
    pub data: Vec<u8>,
    pub mem_size: u64,
    pub flags: u32,
}

/// Where things ended up in the built file.
#[derive(Debug, Clone)]
pub struct Layout {
    pub phdr_end: usize,
    pub notes: std::ops::Range<usize>,
    pub loads: Vec<std::ops::Range<usize>>,
}

pub struct CoreBuilder {
    pub machine: u16,
    pub order: Order,
    pub e_type: u16,
    pub notes: Vec<Note>,
    pub loads: Vec<Load>,
    /// Write e_phnum = PN_XNUM and the real count in section header 0.
    pub xnum: bool,
}

impl CoreBuilder {
    pub fn new(machine: u16) -> Self {
        CoreBuilder {
            machine,
            order: Order { big: false },
            e_type: 4,
            notes: Vec::new(),
            loads: Vec::new(),
            xnum: false,
        }
    }

    pub fn note(mut self, name: &'static [u8], n_type: u32, desc: Vec<u8>) -> Self {
        self.notes.push(Note { name, n_type, desc });
        self
    }

    pub fn load(mut self, vaddr: u64, data: Vec<u8>, flags: u32) -> Self {
        let mem_size = data.len() as u64;
        self.loads.push(Load {
            vaddr,
            data,
            mem_size,
            flags,
        });
        self
    }

    pub fn build(&self) -> (Vec<u8>, Layout) {
        let o = self.order;
        let phnum = self.loads.len() + 1;
        let phdr_end = 64 + phnum * 56;

        let mut notes = Vec::new();
        for n in &self.notes {
            let namesz = n.name.len() + 1;
            o.u32(&mut notes, namesz as u32);
            o.u32(&mut notes, n.desc.len() as u32);
            o.u32(&mut notes, n.n_type);
            notes.extend_from_slice(n.name);
            notes.push(0);
            pad4(&mut notes);
            notes.extend_from_slice(&n.desc);
            pad4(&mut notes);
        }
        let notes_range = phdr_end..phdr_end + notes.len();

        let mut offset = notes_range.end.next_multiple_of(16);
        let mut load_ranges = Vec::new();
        for l in &self.loads {
            load_ranges.push(offset..offset + l.data.len());
            offset += l.data.len().next_multiple_of(16);
        }
        let shoff = offset;

        let mut out = Vec::new();
        out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, if o.big { 2 } else { 1 }, 1, 0]);
        out.extend_from_slice(&[0; 8]);
        o.u16(&mut out, self.e_type);
        o.u16(&mut out, self.machine);
        o.u32(&mut out, 1); // e_version
        o.u64(&mut out, 0); // e_entry
        o.u64(&mut out, 64); // e_phoff
        o.u64(&mut out, if self.xnum { shoff as u64 } else { 0 });
        o.u32(&mut out, 0); // e_flags
        o.u16(&mut out, 64); // e_ehsize
        o.u16(&mut out, 56); // e_phentsize
        o.u16(&mut out, if self.xnum { 0xffff } else { phnum as u16 });
        o.u16(&mut out, if self.xnum { 64 } else { 0 }); // e_shentsize
        o.u16(&mut out, if self.xnum { 1 } else { 0 }); // e_shnum
        o.u16(&mut out, 0); // e_shstrndx
        assert_eq!(out.len(), 64);

        phdr(
            o,
            &mut out,
            4,
            0,
            notes_range.start as u64,
            0,
            notes.len() as u64,
            0,
        );
        for (l, r) in self.loads.iter().zip(&load_ranges) {
            phdr(
                o,
                &mut out,
                1,
                l.flags,
                r.start as u64,
                l.vaddr,
                l.data.len() as u64,
                l.mem_size,
            );
        }
        assert_eq!(out.len(), phdr_end);
        out.extend_from_slice(&notes);
        for (l, r) in self.loads.iter().zip(&load_ranges) {
            out.resize(r.start, 0);
            out.extend_from_slice(&l.data);
        }
        out.resize(shoff, 0);
        if self.xnum {
            // Section header 0: only sh_info (at 44) carries the count.
            let mut sh = vec![0u8; 64];
            o.put_u32(&mut sh, 44, phnum as u32);
            out.extend_from_slice(&sh);
        }
        (
            out,
            Layout {
                phdr_end,
                notes: notes_range,
                loads: load_ranges,
            },
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn phdr(
    o: Order,
    out: &mut Vec<u8>,
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
) {
    o.u32(out, p_type);
    o.u32(out, flags);
    o.u64(out, offset);
    o.u64(out, vaddr);
    o.u64(out, 0); // p_paddr
    o.u64(out, filesz);
    o.u64(out, memsz);
    o.u64(out, if p_type == 4 { 4 } else { 1 });
}

fn pad4(v: &mut Vec<u8>) {
    v.resize(v.len().next_multiple_of(4), 0);
}

/// A 64-bit `elf_prstatus` of `len` bytes (336 on x86_64, 392 on aarch64).
pub fn prstatus(
    o: Order,
    len: usize,
    pid: u32,
    ppid: u32,
    pgrp: u32,
    sid: u32,
    cursig: u16,
) -> Vec<u8> {
    let mut d = vec![0u8; len];
    o.put_u32(&mut d, 0, u32::from(cursig)); // pr_info.si_signo
    o.put_u16(&mut d, 12, cursig);
    o.put_u32(&mut d, 32, pid);
    o.put_u32(&mut d, 36, ppid);
    o.put_u32(&mut d, 40, pgrp);
    o.put_u32(&mut d, 44, sid);
    // Registers: a recognisable filler that must not leak into the fields.
    for b in &mut d[112..] {
        *b = 0xa5;
    }
    d
}

/// A 64-bit `elf_prpsinfo`.
pub fn psinfo(o: Order, pid: u32, uid: u32, gid: u32, fname: &[u8], args: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; 136];
    d[1] = b'R';
    o.put_u32(&mut d, 16, uid);
    o.put_u32(&mut d, 20, gid);
    o.put_u32(&mut d, 24, pid);
    o.put_u32(&mut d, 28, 1);
    d[40..40 + fname.len()].copy_from_slice(fname);
    d[56..56 + args.len()].copy_from_slice(args);
    d
}

/// A 128-byte `siginfo_t` with a fault address.
pub fn siginfo(o: Order, signo: i32, errno: i32, code: i32, addr: u64) -> Vec<u8> {
    let mut d = vec![0u8; 128];
    o.put_u32(&mut d, 0, signo as u32);
    o.put_u32(&mut d, 4, errno as u32);
    o.put_u32(&mut d, 8, code as u32);
    o.put_u64(&mut d, 16, addr);
    d
}

/// An `NT_FILE` table: (start, end, page offset, path).
pub fn nt_file(o: Order, page_size: u64, entries: &[(u64, u64, u64, &str)]) -> Vec<u8> {
    let mut d = Vec::new();
    o.u64(&mut d, entries.len() as u64);
    o.u64(&mut d, page_size);
    for (start, end, page, _) in entries {
        o.u64(&mut d, *start);
        o.u64(&mut d, *end);
        o.u64(&mut d, *page);
    }
    for (_, _, _, path) in entries {
        d.extend_from_slice(path.as_bytes());
        d.push(0);
    }
    d
}

/// An auxv ending with AT_NULL.
pub fn auxv(o: Order, pairs: &[(u64, u64)]) -> Vec<u8> {
    let mut d = Vec::new();
    for (k, v) in pairs.iter().chain(&[(0, 0)]) {
        o.u64(&mut d, *k);
        o.u64(&mut d, *v);
    }
    d
}

/// The first page of a small 64-bit ELF executable image: header, two
/// program headers (PT_LOAD at `link_vaddr`, PT_NOTE) and a GNU build-id
/// note, as it would be mapped at its load address.
pub fn elf_image(o: Order, machine: u16, e_type: u16, link_vaddr: u64, build_id: &[u8]) -> Vec<u8> {
    let mut img = Vec::new();
    img.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, if o.big { 2 } else { 1 }, 1, 0]);
    img.extend_from_slice(&[0; 8]);
    o.u16(&mut img, e_type);
    o.u16(&mut img, machine);
    o.u32(&mut img, 1);
    o.u64(&mut img, link_vaddr + 0x1000); // e_entry
    o.u64(&mut img, 64); // e_phoff
    o.u64(&mut img, 0);
    o.u32(&mut img, 0);
    o.u16(&mut img, 64);
    o.u16(&mut img, 56);
    o.u16(&mut img, 2);
    o.u16(&mut img, 64);
    o.u16(&mut img, 0);
    o.u16(&mut img, 0);
    let note_off = 64 + 2 * 56;
    let note_len = 16 + build_id.len();
    // PT_LOAD of the first page, PT_NOTE right after the program headers.
    for (p_type, off, len) in [
        (1u32, 0u64, 0x1000u64),
        (4, note_off as u64, note_len as u64),
    ] {
        o.u32(&mut img, p_type);
        o.u32(&mut img, 4);
        o.u64(&mut img, off);
        o.u64(&mut img, link_vaddr + off);
        o.u64(&mut img, link_vaddr + off);
        o.u64(&mut img, len);
        o.u64(&mut img, len);
        o.u64(&mut img, if p_type == 1 { 0x1000 } else { 4 });
    }
    o.u32(&mut img, 4);
    o.u32(&mut img, build_id.len() as u32);
    o.u32(&mut img, 3); // NT_GNU_BUILD_ID
    img.extend_from_slice(b"GNU\0");
    img.extend_from_slice(build_id);
    img.resize(0x1000, 0xcc);
    img
}

/// splitmix64, for deterministic garbage.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
