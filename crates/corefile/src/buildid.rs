//! The GNU build-id of the crashed program, read from the core itself.
//!
//! The kernel's default `coredump_filter` dumps the first page of every ELF
//! mapping precisely so that the build-id can be found: the ELF header there
//! leads to the program headers, whose `PT_NOTE` (normally in that same
//! page) holds `NT_GNU_BUILD_ID`. With the build-id a debugger can fetch the
//! exact binary and symbols later, whatever was deployed since.

use std::io::{self, Read, Seek};
use std::mem::size_of;

use object::Endianness;
use object::elf::{self, FileHeader32, FileHeader64};
use object::read::elf::{FileHeader, NoteIterator, ProgramHeader};

use crate::elf::{EI_CLASS, EI_NIDENT};
use crate::model::CoreFile;

/// `AT_PHDR`: where the program headers of the executable are mapped.
pub const AT_PHDR: u64 = 3;
/// `AT_PAGESZ`: the page size.
pub const AT_PAGESZ: u64 = 6;
/// `AT_ENTRY`: the executable's entry point.
pub const AT_ENTRY: u64 = 9;

/// Bounds on what is read from process memory for one image.
const MAX_HEADERS: usize = 64 * 1024;
const MAX_NOTES: u64 = 64 * 1024;

impl CoreFile {
    /// Where the main executable's ELF header is mapped: the lowest mapping
    /// at file offset 0 of the file that holds `AT_PHDR` / `AT_ENTRY`, or
    /// without `NT_FILE` the page holding `AT_PHDR`, or without auxv the first
    /// `NT_FILE` mapping at offset 0.
    pub fn main_executable_base(&self) -> Option<u64> {
        let phdr = self.auxv_value(AT_PHDR);
        let anchors = [phdr, self.auxv_value(AT_ENTRY)];
        let exe = anchors
            .into_iter()
            .flatten()
            .find_map(|a| self.mapping_at(a));
        let from_files = exe.and_then(|exe| {
            self.mapped_files
                .iter()
                .filter(|m| m.path == exe.path && m.file_offset == 0)
                .map(|m| m.start)
                .min()
        });
        if from_files.is_some() {
            return from_files;
        }
        if let Some(phdr) = phdr {
            let page = self
                .auxv_value(AT_PAGESZ)
                .filter(|p| p.is_power_of_two())
                .unwrap_or(4096);
            return Some(phdr & !(page - 1));
        }
        self.mapped_files
            .iter()
            .find(|m| m.file_offset == 0)
            .map(|m| m.start)
    }

    /// The main executable's GNU build-id as lowercase hex, read from the
    /// dumped memory. `Ok(None)` when the pages holding its ELF header,
    /// program headers or note were not dumped, or hold no build-id.
    pub fn main_executable_build_id<R: Read + Seek>(
        &self,
        r: &mut R,
    ) -> io::Result<Option<String>> {
        let Some(base) = self.main_executable_base() else {
            return Ok(None);
        };
        let Some(ident) = self.read_memory(r, base, EI_NIDENT)? else {
            return Ok(None);
        };
        if ident[..4] != elf::ELFMAG[..] {
            return Ok(None);
        }
        match ident[EI_CLASS] {
            elf::ELFCLASS64 => self.image_build_id::<FileHeader64<Endianness>, R>(r, base),
            elf::ELFCLASS32 => self.image_build_id::<FileHeader32<Endianness>, R>(r, base),
            _ => Ok(None),
        }
    }

    /// The build-id of the ELF image whose header is mapped at `base`.
    fn image_build_id<Elf, R>(&self, r: &mut R, base: u64) -> io::Result<Option<String>>
    where
        Elf: FileHeader<Endian = Endianness>,
        R: Read + Seek,
    {
        let Some(header_bytes) = self.read_memory(r, base, size_of::<Elf>())? else {
            return Ok(None);
        };
        let Ok(header) = Elf::parse(&header_bytes[..]) else {
            return Ok(None);
        };
        let Ok(endian) = header.endian() else {
            return Ok(None);
        };
        // The header and program headers as mapped: file offsets equal
        // offsets from `base` in the first mapping.
        let phoff: u64 = header.e_phoff(endian).into();
        let table = usize::from(header.e_phnum(endian))
            .checked_mul(usize::from(header.e_phentsize(endian)));
        let Some(span) = table
            .and_then(|t| usize::try_from(phoff).ok()?.checked_add(t))
            .filter(|&s| s <= MAX_HEADERS)
        else {
            return Ok(None);
        };
        let Some(image) = self.read_memory(r, base, span.max(header_bytes.len()))? else {
            return Ok(None);
        };
        let Ok(phdrs) = header.program_headers(endian, &image[..]) else {
            return Ok(None);
        };

        // Load bias: the first PT_LOAD maps file offset p_offset at p_vaddr.
        let Some(first) = phdrs
            .iter()
            .filter(|p| p.p_type(endian) == elf::PT_LOAD)
            .min_by_key(|p| p.p_vaddr(endian).into())
        else {
            return Ok(None);
        };
        let link_base = first
            .p_vaddr(endian)
            .into()
            .wrapping_sub(first.p_offset(endian).into());
        let bias = base.wrapping_sub(link_base);

        for ph in phdrs.iter().filter(|p| p.p_type(endian) == elf::PT_NOTE) {
            let size = ph.p_filesz(endian).into().min(MAX_NOTES) as usize;
            let addr = bias.wrapping_add(ph.p_vaddr(endian).into());
            let Some(notes) = self.read_memory(r, addr, size)? else {
                continue;
            };
            let Ok(mut iter) = NoteIterator::<Elf>::new(endian, ph.p_align(endian), &notes) else {
                continue;
            };
            while let Ok(Some(note)) = iter.next() {
                if note.name() == elf::ELF_NOTE_GNU
                    && note.n_type(endian) == elf::NT_GNU_BUILD_ID
                    && !note.desc().is_empty()
                {
                    let hex = note.desc().iter().map(|b| format!("{b:02x}")).collect();
                    return Ok(Some(hex));
                }
            }
        }
        Ok(None)
    }
}
