//! Reads ELF core files: which process crashed, with which signal, what it
//! had mapped, and the build-id of its executable, without loading the
//! memory the core holds.
//!
//! The agent uses it to describe a stored core (pid, command, signal,
//! executable and build-id) and tests use it to check that a captured core
//! is the real one (a pattern the crashed program wrote is in its memory).
//! Only headers and notes are read by [`parse_core`]; memory is read on
//! demand through [`CoreFile::read_memory`] and friends. A core cut short
//! (a full disk, a size limit) still parses as long as its headers are
//! there: [`CoreFile::notes_complete`] and [`CoreFile::incomplete_segments`]
//! say what is missing. 64-bit cores of either byte order are read; the
//! note layouts are Linux's.

#![deny(missing_docs)]
#![forbid(unsafe_code)]
// Tests may unwrap: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod buildid;
mod elf;
mod error;
mod memory;
mod model;
mod notes;

use std::io::{Cursor, Read, Seek, SeekFrom};

pub use buildid::{AT_ENTRY, AT_PAGESZ, AT_PHDR};
pub use error::CoreFileError;
pub use model::{CoreFile, LoadSegment, Machine, MappedFile, NoteError, PrStatus, PsInfo, SigInfo};

/// A single `PT_NOTE` segment larger than this is corruption (thousands of
/// threads and a million mappings fit well below it); it is skipped.
const MAX_NOTE_SEGMENT: u64 = 256 << 20;

/// Parses the headers and notes of the core file in `reader` (a file, or a
/// `Cursor` over bytes). Reads nothing from the `PT_LOAD` contents.
pub fn parse_core(mut reader: impl Read + Seek) -> Result<CoreFile, CoreFileError> {
    let file_len = reader
        .seek(SeekFrom::End(0))
        .map_err(|e| CoreFileError::io(0, e))?;
    let headers = elf::read_headers(&mut reader, file_len)?;

    let mut notes = notes::Notes::default();
    let mut notes_complete = true;
    for seg in &headers.notes {
        let available = seg.size.min(file_len.saturating_sub(seg.offset));
        let cut = available < seg.size;
        notes_complete &= !cut;
        if available > MAX_NOTE_SEGMENT {
            notes.errors.push(NoteError {
                segment_offset: seg.offset,
                n_type: 0,
                reason: format!("note segment of {} bytes skipped", seg.size),
            });
            continue;
        }
        // Bounded by MAX_NOTE_SEGMENT just above.
        let data = elf::read_at(&mut reader, seg.offset, available as usize)?;
        notes.add_segment(headers.endian, headers.machine, &data, seg.offset, cut);
    }

    Ok(CoreFile {
        machine: headers.machine,
        file_len,
        segments: headers.loads,
        prstatus: notes.prstatus,
        psinfo: notes.psinfo,
        siginfo: notes.siginfo,
        mapped_files: notes.mapped_files,
        auxv: notes.auxv,
        notes_complete,
        note_errors: notes.errors,
    })
}

/// [`parse_core`] over a byte slice.
pub fn parse_core_bytes(data: &[u8]) -> Result<CoreFile, CoreFileError> {
    parse_core(Cursor::new(data))
}
