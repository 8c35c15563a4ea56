//! The ELF header and program header table of a core, read with bounds
//! checks against the real length of the data, so a truncated core says
//! which structure is cut off instead of failing somewhere inside a parser.

use std::io::{Read, Seek, SeekFrom};
use std::mem::size_of;

use object::Endianness;
use object::elf::{self, FileHeader64, ProgramHeader64, SectionHeader64};
use object::read::elf::{FileHeader as _, ProgramHeader as _, SectionHeader as _};

use crate::error::CoreFileError;
use crate::model::{LoadSegment, Machine};

/// More program headers than any process can have mappings; a larger count
/// in a header is corruption, not a core.
const MAX_PROGRAM_HEADERS: u64 = 1 << 22;

/// Length of `e_ident`.
pub(crate) const EI_NIDENT: usize = 16;
/// Index of the class byte in `e_ident`.
pub(crate) const EI_CLASS: usize = 4;

/// A `PT_NOTE` segment's place in the file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoteSegment {
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

/// What the header and program headers say.
pub(crate) struct Headers {
    pub(crate) endian: Endianness,
    pub(crate) machine: Machine,
    pub(crate) loads: Vec<LoadSegment>,
    pub(crate) notes: Vec<NoteSegment>,
}

/// Reads `len` bytes at `offset`, which the caller has checked are in the file.
pub(crate) fn read_at<R: Read + Seek>(
    r: &mut R,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, CoreFileError> {
    r.seek(SeekFrom::Start(offset))
        .map_err(|e| CoreFileError::io(offset, e))?;
    let mut buf = vec![0; len];
    r.read_exact(&mut buf)
        .map_err(|e| CoreFileError::io(offset, e))?;
    Ok(buf)
}

/// Fails with `Truncated` unless `start..start+len` lies within the file.
fn check_within(
    what: &'static str,
    start: u64,
    len: u64,
    file_len: u64,
) -> Result<(), CoreFileError> {
    let end = start
        .checked_add(len)
        .ok_or_else(|| CoreFileError::Malformed {
            what,
            detail: format!("range {start}+{len} overflows"),
        })?;
    if end > file_len {
        return Err(CoreFileError::Truncated {
            what,
            start,
            end,
            file_len,
        });
    }
    Ok(())
}

fn malformed(what: &'static str, detail: impl Into<String>) -> CoreFileError {
    CoreFileError::Malformed {
        what,
        detail: detail.into(),
    }
}

/// Reads and checks the ELF header and program header table.
pub(crate) fn read_headers<R: Read + Seek>(
    r: &mut R,
    file_len: u64,
) -> Result<Headers, CoreFileError> {
    let magic_len = file_len.min(4) as usize;
    let magic = read_at(r, 0, magic_len)?;
    if !elf::ELFMAG.starts_with(&magic) {
        return Err(CoreFileError::NotElf { found: magic });
    }
    check_within("ELF magic", 0, elf::ELFMAG.len() as u64, file_len)?;
    let header_len = size_of::<FileHeader64<Endianness>>() as u64;
    if file_len >= EI_NIDENT as u64 {
        let ident = read_at(r, 0, EI_NIDENT)?;
        match ident[EI_CLASS] {
            elf::ELFCLASS64 => {}
            elf::ELFCLASS32 => {
                return Err(CoreFileError::Unsupported {
                    what: "32-bit (ELFCLASS32) core files".to_owned(),
                });
            }
            other => return Err(malformed("ELF header", format!("EI_CLASS {other}"))),
        }
    }
    check_within("ELF header", 0, header_len, file_len)?;
    let header_bytes = read_at(r, 0, header_len as usize)?;
    let header = FileHeader64::<Endianness>::parse(&header_bytes[..])
        .map_err(|e| malformed("ELF header", e.to_string()))?;
    let endian = header
        .endian()
        .map_err(|e| malformed("ELF header", e.to_string()))?;

    let e_type = header.e_type(endian);
    if e_type != elf::ET_CORE {
        return Err(CoreFileError::NotCore { e_type });
    }
    let machine = Machine::from_e_machine(header.e_machine(endian));

    let phnum = program_header_count(r, header, endian, file_len)?;
    if phnum == 0 {
        return Ok(Headers {
            endian,
            machine,
            loads: Vec::new(),
            notes: Vec::new(),
        });
    }
    let entsize = size_of::<ProgramHeader64<Endianness>>() as u64;
    if u64::from(header.e_phentsize(endian)) != entsize {
        return Err(malformed(
            "ELF header",
            format!(
                "e_phentsize {} (expected {entsize})",
                header.e_phentsize(endian)
            ),
        ));
    }
    let phoff = header.e_phoff(endian);
    let table_len = phnum * entsize;
    check_within("program header table", phoff, table_len, file_len)?;
    let table = read_at(r, phoff, table_len as usize)?;
    let phdrs =
        object::pod::slice_from_all_bytes::<ProgramHeader64<Endianness>>(&table).map_err(|()| {
            malformed(
                "program header table",
                "size is not a multiple of the entry",
            )
        })?;

    let mut loads = Vec::new();
    let mut notes = Vec::new();
    for ph in phdrs {
        match ph.p_type(endian) {
            elf::PT_LOAD => loads.push(LoadSegment {
                vaddr: ph.p_vaddr(endian),
                file_offset: ph.p_offset(endian),
                file_size: ph.p_filesz(endian),
                mem_size: ph.p_memsz(endian),
                flags: ph.p_flags(endian),
            }),
            elf::PT_NOTE => notes.push(NoteSegment {
                offset: ph.p_offset(endian),
                size: ph.p_filesz(endian),
            }),
            _ => {}
        }
    }
    Ok(Headers {
        endian,
        machine,
        loads,
        notes,
    })
}

/// `e_phnum`, or with `PN_XNUM` (more than 65534 segments, common for big
/// processes) the `sh_info` of section header 0.
fn program_header_count<R: Read + Seek>(
    r: &mut R,
    header: &FileHeader64<Endianness>,
    endian: Endianness,
    file_len: u64,
) -> Result<u64, CoreFileError> {
    let e_phnum = header.e_phnum(endian);
    let count = if e_phnum != elf::PN_XNUM {
        u64::from(e_phnum)
    } else {
        let shoff = header.e_shoff(endian);
        let shsize = size_of::<SectionHeader64<Endianness>>();
        if shoff == 0 || usize::from(header.e_shentsize(endian)) != shsize {
            return Err(malformed(
                "ELF header",
                "PN_XNUM without a section header 0",
            ));
        }
        check_within("section header 0", shoff, shsize as u64, file_len)?;
        let bytes = read_at(r, shoff, shsize)?;
        let (section0, _) = object::pod::from_bytes::<SectionHeader64<Endianness>>(&bytes)
            .map_err(|()| malformed("section header 0", "too short"))?;
        u64::from(section0.sh_info(endian))
    };
    if count > MAX_PROGRAM_HEADERS {
        return Err(malformed("ELF header", format!("{count} program headers")));
    }
    Ok(count)
}
