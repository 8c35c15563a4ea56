//! Decoding of the process notes in a core's `PT_NOTE` segments.
//!
//! The layouts are the kernel's (`elf_prstatus`, `elf_prpsinfo`, `siginfo_t`,
//! the `NT_FILE` table, auxv) for 64-bit Linux, whose leading fields are the
//! same on every architecture; only fixed offsets into bounds-checked
//! slices are read, and a malformed note is recorded and skipped.

use object::elf::{self, FileHeader64};
use object::read::elf::NoteIterator;
use object::{Endian, Endianness};

use crate::model::{Machine, MappedFile, NoteError, PrStatus, PsInfo, SigInfo};

/// Linux core notes are padded to 4 bytes whatever the ELF class.
const CORE_NOTE_ALIGN: u64 = 4;

/// Offsets in the 64-bit `struct elf_prstatus` (before the registers).
mod prstatus {
    pub const CURSIG: usize = 12;
    pub const PID: usize = 32;
    pub const PPID: usize = 36;
    pub const PGRP: usize = 40;
    pub const SID: usize = 44;
    /// `pr_reg` starts here; a shorter note is not a prstatus.
    pub const MIN_LEN: usize = 112;
}

/// Offsets in the 64-bit `struct elf_prpsinfo`.
mod prpsinfo {
    pub const UID: usize = 16;
    pub const GID: usize = 20;
    pub const PID: usize = 24;
    pub const FNAME: usize = 40;
    pub const FNAME_LEN: usize = 16;
    pub const PSARGS: usize = 56;
    pub const PSARGS_LEN: usize = 80;
    pub const LEN: usize = PSARGS + PSARGS_LEN;
}

/// The notes decoded so far, over all note segments.
#[derive(Default)]
pub(crate) struct Notes {
    pub(crate) prstatus: Vec<PrStatus>,
    pub(crate) psinfo: Option<PsInfo>,
    pub(crate) siginfo: Option<SigInfo>,
    pub(crate) mapped_files: Vec<MappedFile>,
    pub(crate) auxv: Vec<(u64, u64)>,
    pub(crate) errors: Vec<NoteError>,
}

/// Little helpers over a note descriptor in the core's byte order.
struct Desc<'a> {
    bytes: &'a [u8],
    endian: Endianness,
}

impl Desc<'_> {
    fn u32(&self, at: usize) -> Option<u32> {
        let b = self.bytes.get(at..at.checked_add(4)?)?;
        Some(self.endian.read_u32_bytes(b.try_into().ok()?))
    }

    fn i32(&self, at: usize) -> Option<i32> {
        self.u32(at).map(|v| v as i32)
    }

    fn i16(&self, at: usize) -> Option<i16> {
        let b = self.bytes.get(at..at.checked_add(2)?)?;
        Some(self.endian.read_u16_bytes(b.try_into().ok()?) as i16)
    }

    fn u64(&self, at: usize) -> Option<u64> {
        let b = self.bytes.get(at..at.checked_add(8)?)?;
        Some(self.endian.read_u64_bytes(b.try_into().ok()?))
    }

    /// A NUL-padded fixed-size string field.
    fn c_string(&self, at: usize, len: usize) -> Option<String> {
        let field = self.bytes.get(at..at.checked_add(len)?)?;
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        Some(String::from_utf8_lossy(&field[..end]).into_owned())
    }
}

impl Notes {
    /// Decodes the notes in one `PT_NOTE` segment's bytes. `cut` says the
    /// segment was cut short by the end of the file, so a broken last note is
    /// expected rather than an error.
    pub(crate) fn add_segment(
        &mut self,
        endian: Endianness,
        machine: Machine,
        data: &[u8],
        segment_offset: u64,
        cut: bool,
    ) {
        let mut iter =
            match NoteIterator::<FileHeader64<Endianness>>::new(endian, CORE_NOTE_ALIGN, data) {
                Ok(iter) => iter,
                Err(e) => return self.error(segment_offset, 0, e.to_string()),
            };
        loop {
            match iter.next() {
                Ok(Some(note)) => {
                    if note.name() != elf::ELF_NOTE_CORE {
                        continue;
                    }
                    let n_type = note.n_type(endian);
                    let desc = Desc {
                        bytes: note.desc(),
                        endian,
                    };
                    if let Err(reason) = self.decode(n_type, &desc, machine) {
                        self.error(segment_offset, n_type, reason.to_owned());
                    }
                }
                Ok(None) => break,
                Err(_) if cut => break,
                Err(e) => {
                    self.error(segment_offset, 0, e.to_string());
                    break;
                }
            }
        }
    }

    fn error(&mut self, segment_offset: u64, n_type: u32, reason: String) {
        self.errors.push(NoteError {
            segment_offset,
            n_type,
            reason,
        });
    }

    fn decode(&mut self, n_type: u32, d: &Desc<'_>, machine: Machine) -> Result<(), &'static str> {
        match n_type {
            elf::NT_PRSTATUS => self
                .prstatus
                .push(decode_prstatus(d, machine).ok_or("short NT_PRSTATUS")?),
            elf::NT_PRPSINFO if self.psinfo.is_none() => {
                self.psinfo = Some(decode_psinfo(d).ok_or("short NT_PRPSINFO")?);
            }
            elf::NT_SIGINFO if self.siginfo.is_none() => {
                self.siginfo = Some(decode_siginfo(d, machine).ok_or("short NT_SIGINFO")?);
            }
            elf::NT_FILE if self.mapped_files.is_empty() => {
                self.mapped_files = decode_file(d)?;
            }
            elf::NT_AUXV if self.auxv.is_empty() => self.auxv = decode_auxv(d),
            _ => {}
        }
        Ok(())
    }
}

fn decode_prstatus(d: &Desc<'_>, machine: Machine) -> Option<PrStatus> {
    if d.bytes.len() < prstatus::MIN_LEN {
        return None;
    }
    let registers = (0..machine.register_count())
        .map_while(|i| d.u64(prstatus::MIN_LEN + i * 8))
        .collect();
    Some(PrStatus {
        registers,
        pid: d.u32(prstatus::PID)?,
        ppid: d.u32(prstatus::PPID)?,
        pgrp: d.u32(prstatus::PGRP)?,
        sid: d.u32(prstatus::SID)?,
        signal: i32::from(d.i16(prstatus::CURSIG)?),
    })
}

fn decode_psinfo(d: &Desc<'_>) -> Option<PsInfo> {
    if d.bytes.len() < prpsinfo::LEN {
        return None;
    }
    Some(PsInfo {
        pid: d.u32(prpsinfo::PID)?,
        uid: d.u32(prpsinfo::UID)?,
        gid: d.u32(prpsinfo::GID)?,
        fname: d.c_string(prpsinfo::FNAME, prpsinfo::FNAME_LEN)?,
        // The kernel replaces the NULs between arguments with spaces.
        args: d.c_string(prpsinfo::PSARGS, prpsinfo::PSARGS_LEN)?,
    })
}

/// Signals whose kernel-raised `siginfo_t` carries a fault address, in the
/// generic Linux numbering that x86_64 and aarch64 share.
const FAULT_SIGNALS: [i32; 5] = [
    4,  /* ILL */
    5,  /* TRAP */
    7,  /* BUS */
    8,  /* FPE */
    11, /* SEGV */
];

fn decode_siginfo(d: &Desc<'_>, machine: Machine) -> Option<SigInfo> {
    let signo = d.i32(0)?;
    let errno = d.i32(4)?;
    let code = d.i32(8)?;
    let generic_numbering = matches!(machine, Machine::X86_64 | Machine::Aarch64);
    let fault_addr = if generic_numbering && code > 0 && FAULT_SIGNALS.contains(&signo) {
        // si_addr follows the three ints, 8-aligned.
        d.u64(16)
    } else {
        None
    };
    Some(SigInfo {
        signo,
        code,
        errno,
        fault_addr,
    })
}

/// `NT_FILE`: count, page size, `count` (start, end, page offset) triples,
/// then `count` NUL-terminated paths.
fn decode_file(d: &Desc<'_>) -> Result<Vec<MappedFile>, &'static str> {
    let count = d.u64(0).ok_or("short NT_FILE")?;
    let page_size = d.u64(8).ok_or("short NT_FILE")?;
    let table_len = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(24))
        .filter(|&len| len <= d.bytes.len().saturating_sub(16))
        .ok_or("NT_FILE count exceeds the note")?;
    let mut names = d.bytes[16 + table_len..].split(|&b| b == 0);
    let mut files = Vec::with_capacity(table_len / 24);
    for i in 0..table_len / 24 {
        let at = 16 + i * 24;
        let (start, end, page) = (d.u64(at), d.u64(at + 8), d.u64(at + 16));
        let (Some(start), Some(end), Some(page)) = (start, end, page) else {
            return Err("short NT_FILE entry");
        };
        let file_offset = page
            .checked_mul(page_size)
            .ok_or("NT_FILE offset overflows")?;
        let name = names.next().ok_or("NT_FILE has fewer paths than entries")?;
        files.push(MappedFile {
            start,
            end,
            file_offset,
            path: String::from_utf8_lossy(name).into_owned(),
        });
    }
    Ok(files)
}

fn decode_auxv(d: &Desc<'_>) -> Vec<(u64, u64)> {
    (0..d.bytes.len() / 16)
        .map_while(|i| {
            let key = d.u64(i * 16)?;
            let value = d.u64(i * 16 + 8)?;
            (key != 0).then_some((key, value))
        })
        .collect()
}
