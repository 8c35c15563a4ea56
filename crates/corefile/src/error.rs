//! Why a core file could not be read, with the offsets involved.

use std::io;

/// A core file that cannot be parsed at all. Problems inside single notes do
/// not fail the parse; they are listed in [`crate::CoreFile::note_errors`].
#[derive(Debug, thiserror::Error)]
pub enum CoreFileError {
    /// The reader failed.
    #[error("reading the core file at offset {offset}: {source}")]
    Io {
        /// Where the read or seek was aimed.
        offset: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The data does not start with the ELF magic.
    #[error("not an ELF file: starts with {found:02x?}")]
    NotElf {
        /// The first bytes found (up to four).
        found: Vec<u8>,
    },
    /// A valid ELF file of a kind this crate does not read (e.g. 32-bit).
    #[error("unsupported ELF file: {what}")]
    Unsupported {
        /// What is unsupported.
        what: String,
    },
    /// An ELF file, but not `ET_CORE`.
    #[error("not a core file: ELF type {e_type} (a core is 4)")]
    NotCore {
        /// The `e_type` found.
        e_type: u16,
    },
    /// The file ends before a structure that must be complete to go on.
    #[error("core file truncated: {what} needs bytes {start}..{end}, the file has {file_len}")]
    Truncated {
        /// The structure that is cut off.
        what: &'static str,
        /// Its first byte.
        start: u64,
        /// One past its last byte.
        end: u64,
        /// The length of the data.
        file_len: u64,
    },
    /// A header field makes no sense.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// The structure at fault.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

impl CoreFileError {
    pub(crate) fn io(offset: u64, source: io::Error) -> Self {
        CoreFileError::Io { offset, source }
    }
}
