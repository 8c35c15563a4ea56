//! Cores stored as seekable zstd, so that reading a few pages of a 1 GiB core (a `Range`
//! request, a resumed download, the analysis of one stack page) costs one frame of
//! decompression, not every byte before it.
//!
//! The format is zstd's own seekable format (`contrib/seekable_format` in the zstd sources):
//! independent zstd frames of [`FRAME_SIZE`] decompressed bytes, then a skippable frame holding
//! the seek table (compressed and decompressed size of every frame) and a footer ending in the
//! magic `0x8F92EAB1`. Plain `zstd -d` reads such a file like any other (it skips the table).
//!
//! * [`SeekableWriter`]: a `Write` that ends a frame every [`FRAME_SIZE`] bytes and appends
//!   the table on [`SeekableWriter::finish`] (what the capture's compressor and the ingest use).
//! * [`SeekableReader`]: `Read + Seek` over the decompressed bytes of such a file, keeping one
//!   decompressed frame in memory. A blob written before this format (one long zstd stream,
//!   no table) is still read, decoding forward from the start as before.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod reader;
mod table;
mod writer;

pub use reader::SeekableReader;
pub use table::{Frame, SeekTable};
pub use writer::SeekableWriter;

/// Decompressed bytes per frame: 4 MiB keeps zstd level 1 within a few percent of one long
/// stream while a random read decodes at most 4 MiB.
pub const FRAME_SIZE: usize = 4 << 20;
