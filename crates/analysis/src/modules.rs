//! The ELF images the crashed process had mapped: paths and address ranges from `NT_FILE`, load
//! bias and GNU build ID from each image's ELF header and notes as they sit in the process's
//! memory (the kernel dumps the first page of every ELF mapping for exactly this).

use std::io::{Read, Seek};

use object::Endianness;
use object::elf::{self, FileHeader64};
use object::read::elf::{FileHeader, NoteIterator, ProgramHeader};

use crate::memory::CoreMemory;

/// Bounds on what is read from process memory for one image's headers and notes.
const MAX_PHDRS_BYTES: usize = 64 << 10;
const MAX_NOTE_BYTES: u64 = 64 << 10;

/// One mapped ELF image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Path as the kernel named it (`NT_FILE`).
    pub path: String,
    /// Lowest and highest (exclusive) address mapped from this file.
    pub start: u64,
    /// See `start`.
    pub end: u64,
    /// Where file offset 0 is mapped: the image's ELF header.
    pub base: u64,
    /// Added to the image's own (stated) addresses to get process addresses; `None` when the
    /// header page was not in the core.
    pub bias: Option<u64>,
    /// GNU build ID, lowercase hex, when its note was in the core.
    pub build_id: Option<String>,
    /// Start addresses of every mapping of this file (a binary source may key on them).
    pub mappings: Vec<u64>,
}

impl Image {
    /// Whether `addr` lies in one of the image's mappings' overall range.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

/// Lists the ELF images of the core, bounded by `max`: one per file mapped at offset 0, in
/// address order. Files whose header page holds no ELF magic (data files, fonts) are left out
/// when their header page was dumped; mapped files without a dumped header stay in (their bias
/// may come from the binary later).
pub(crate) fn images<R: Read + Seek>(mem: &mut CoreMemory<'_, R>, max: usize) -> Vec<Image> {
    let core = mem.core_file();
    let mut out: Vec<Image> = Vec::new();
    let files = core.mapped_files.clone();
    for m in files.iter().filter(|m| m.file_offset == 0) {
        if out.len() >= max {
            break;
        }
        if out.iter().any(|i| i.path == m.path && i.contains(m.start)) {
            continue;
        }
        // Every mapping of the same file from this base on, up to the next offset-0 mapping
        // of it (a library mapped twice is two images).
        let mut start = m.start;
        let mut end = m.end;
        let mut mappings = Vec::new();
        for other in files
            .iter()
            .filter(|o| o.path == m.path && o.start >= m.start)
        {
            if other.file_offset == 0 && other.start != m.start {
                break;
            }
            start = start.min(other.start);
            end = end.max(other.end);
            mappings.push(other.start);
        }
        let header = read_header(mem, m.start);
        if header == Header::NotElf {
            continue;
        }
        let (bias, build_id) = match header {
            Header::Elf { bias, build_id } => (Some(bias), build_id),
            _ => (None, None),
        };
        out.push(Image {
            path: m.path.clone(),
            start,
            end,
            base: m.start,
            bias,
            build_id,
            mappings,
        });
    }
    out
}

#[derive(Debug, PartialEq, Eq)]
enum Header {
    /// The page was not dumped (or not readable).
    Missing,
    /// The page holds something else.
    NotElf,
    /// A 64-bit ELF image.
    Elf { bias: u64, build_id: Option<String> },
}

fn read_header<R: Read + Seek>(mem: &mut CoreMemory<'_, R>, base: u64) -> Header {
    let size = std::mem::size_of::<FileHeader64<Endianness>>();
    let Some(bytes) = mem.bytes(base, size) else {
        return Header::Missing;
    };
    if bytes[..4] != elf::ELFMAG[..] {
        return Header::NotElf;
    }
    let Ok(header) = FileHeader64::<Endianness>::parse(&bytes[..]) else {
        return Header::NotElf;
    };
    let Ok(endian) = header.endian() else {
        return Header::NotElf;
    };
    let phoff = header.e_phoff(endian);
    let span = usize::from(header.e_phnum(endian))
        .checked_mul(usize::from(header.e_phentsize(endian)))
        .and_then(|t| usize::try_from(phoff).ok()?.checked_add(t))
        .filter(|&s| s <= MAX_PHDRS_BYTES);
    let Some(span) = span else {
        return Header::Missing;
    };
    let Some(image) = mem.bytes(base, span.max(size)) else {
        return Header::Missing;
    };
    let Ok(phdrs) = header.program_headers(endian, &image[..]) else {
        return Header::Missing;
    };
    let Some(first) = phdrs
        .iter()
        .filter(|p| p.p_type(endian) == elf::PT_LOAD)
        .min_by_key(|p| p.p_vaddr(endian))
    else {
        return Header::Missing;
    };
    let link_base = first.p_vaddr(endian).wrapping_sub(first.p_offset(endian));
    let bias = base.wrapping_sub(link_base);
    let mut build_id = None;
    for ph in phdrs.iter().filter(|p| p.p_type(endian) == elf::PT_NOTE) {
        let len = ph.p_filesz(endian).min(MAX_NOTE_BYTES) as usize;
        let Some(notes) = mem.bytes(bias.wrapping_add(ph.p_vaddr(endian)), len) else {
            continue;
        };
        build_id = gnu_build_id::<FileHeader64<Endianness>>(endian, ph.p_align(endian), &notes);
        if build_id.is_some() {
            break;
        }
    }
    Header::Elf { bias, build_id }
}

/// The `NT_GNU_BUILD_ID` in a block of ELF notes, as lowercase hex.
pub(crate) fn gnu_build_id<Elf: FileHeader<Endian = Endianness>>(
    endian: Endianness,
    align: <Elf as FileHeader>::Word,
    notes: &[u8],
) -> Option<String> {
    let mut iter = NoteIterator::<Elf>::new(endian, align, notes).ok()?;
    while let Ok(Some(note)) = iter.next() {
        if note.name() == elf::ELF_NOTE_GNU
            && note.n_type(endian) == elf::NT_GNU_BUILD_ID
            && !note.desc().is_empty()
        {
            return Some(hex::encode(note.desc()));
        }
    }
    None
}
