//! From a core to a cause: turns an ELF core (read through a seekable reader of its
//! decompressed bytes) and the binaries it had mapped (read through a [`Binaries`] source the
//! caller supplies, never by path) into a symbolized backtrace per thread, the list of mapped
//! images with their build IDs, and a crash signature.
//!
//! Why it is shaped this way: the analysis runs in the node agent after capture, so it must be
//! bounded whatever a tenant's process looked like. Memory is a few cached 64 KiB blocks of the
//! core plus the unwind tables and symbols of the binaries on the crashing stacks (each within
//! [`Limits`]); time is checked against a deadline between frames. Threads and registers come
//! from the core's notes; unwinding uses DWARF CFI (`.eh_frame`, `.debug_frame`) through
//! `framehop` wherever a binary is available and frame pointers elsewhere; symbols come from
//! DWARF (`addr2line`) or the symbol table. Whatever limits the result (a truncated core, a
//! missing or stripped binary, unreadable stack memory, the deadline) is stated in
//! [`Analysis::problems`] instead of failing the whole analysis.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod binary;
mod memory;
mod modules;
pub mod signature;
mod unwind;

use std::io::{Read, Seek};
use std::time::{Duration, Instant};

use coredump_api::{Analysis, Module};
use coredump_corefile::{CoreFile, Machine};

pub use binary::ReadSeek;
pub use modules::Image;

/// Where the analysis gets the binaries the process had mapped.
pub trait Binaries {
    /// The file mapped as `image` (the process's own file, kept by build ID or handed over
    /// at capture time), or `None` when it is not available.
    fn binary(&self, image: &Image) -> Option<Box<dyn ReadSeek>>;
    /// The separate debug information file for `build_id`, when one is known.
    fn debuginfo(&self, build_id: &str) -> Option<Box<dyn ReadSeek>> {
        let _ = build_id;
        None
    }
}

/// No binaries at all: frame pointers and module offsets only.
pub struct NoBinaries;

impl Binaries for NoBinaries {
    fn binary(&self, _: &Image) -> Option<Box<dyn ReadSeek>> {
        None
    }
}

/// The GNU build ID (lowercase hex) of the ELF file `file` reads, when it has one.
pub fn build_id_of(file: Box<dyn ReadSeek>) -> Option<String> {
    use object::Object;
    let cache = object::read::ReadCache::new(file);
    let parsed = object::File::parse(&cache).ok()?;
    parsed.build_id().ok().flatten().map(hex::encode)
}

/// Bounds of one analysis.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Threads unwound (the crashing one always, then the others in note order).
    pub max_threads: usize,
    /// Frames kept for the crashing thread.
    pub max_frames: usize,
    /// Frames kept for every other thread.
    pub max_other_frames: usize,
    /// Mapped images considered.
    pub max_modules: usize,
    /// Wall-clock budget; past it the analysis returns what it has.
    pub deadline: Duration,
    /// 64 KiB blocks of the core kept in memory.
    pub cache_blocks: usize,
    /// `.text` copied for prologue analysis up to this size.
    pub max_text_bytes: u64,
    /// Unwind tables copied up to this size.
    pub max_unwind_bytes: u64,
    /// DWARF loaded for a binary up to this total size.
    pub max_debug_bytes: u64,
    /// Symbols kept per binary.
    pub max_symbols: usize,
    /// Problems reported.
    pub max_problems: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_threads: 16,
            max_frames: 64,
            max_other_frames: 16,
            max_modules: 256,
            deadline: Duration::from_secs(10),
            cache_blocks: 64,
            max_text_bytes: 32 << 20,
            max_unwind_bytes: 32 << 20,
            max_debug_bytes: 256 << 20,
            max_symbols: 1 << 20,
            max_problems: 32,
        }
    }
}

/// What one analysis produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Backtraces, modules, problems.
    pub analysis: Analysis,
    /// The crash signature, when the crashing thread had a nameable frame.
    pub signature: Option<String>,
}

/// Why a core could not be analysed at all.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// Not an ELF core (or its headers are cut off).
    #[error("not a readable core: {0}")]
    Core(#[from] coredump_corefile::CoreFileError),
}

/// Analyses the core whose decompressed bytes `core` reads, with binaries from `binaries`.
pub fn analyze<R: Read + Seek>(
    core: R,
    binaries: &dyn Binaries,
    limits: &Limits,
) -> Result<Outcome, AnalysisError> {
    let started = Instant::now();
    let mut core = core;
    let parsed = coredump_corefile::parse_core(&mut core)?;
    Ok(analyze_parsed(&parsed, core, binaries, limits, started))
}

/// [`analyze`] of an already parsed core.
pub fn analyze_parsed<R: Read + Seek>(
    parsed: &CoreFile,
    core: R,
    binaries: &dyn Binaries,
    limits: &Limits,
    started: Instant,
) -> Outcome {
    let mut problems = Problems::new(limits.max_problems);
    if !parsed.notes_complete {
        problems.push("core truncated inside its notes: threads or mappings may be missing");
    }
    let cut = parsed.incomplete_segments();
    if !cut.is_empty() {
        problems.push(format!(
            "core truncated: {} of {} memory segments are cut short ({} of the declared bytes present)",
            cut.len(),
            parsed.segments.len(),
            parsed.file_len
        ));
    }
    for e in parsed.note_errors.iter().take(4) {
        problems.push(format!("malformed note (type {}): {}", e.n_type, e.reason));
    }
    let mut mem = memory::CoreMemory::new(parsed, core, limits.cache_blocks);
    let images = modules::images(&mut mem, limits.max_modules);
    if parsed.mapped_files.is_empty() {
        problems.push("no NT_FILE note: mapped files unknown, frames are addresses only");
    }

    let mut loaded = unwind::Loaded::new(images, binaries, limits);
    let mut threads = Vec::new();
    let mut complete = parsed.is_complete();
    let signal = parsed
        .siginfo
        .map(|s| s.signo)
        .or_else(|| parsed.prstatus.first().map(|p| p.signal))
        .unwrap_or(0);
    match parsed.machine {
        Machine::X86_64 => {
            for (i, thread) in parsed.prstatus.iter().take(limits.max_threads).enumerate() {
                if started.elapsed() > limits.deadline {
                    problems.push(format!(
                        "time limit of {:?} reached after {i} threads",
                        limits.deadline
                    ));
                    complete = false;
                    break;
                }
                let max = if i == 0 {
                    limits.max_frames
                } else {
                    limits.max_other_frames
                };
                let t = unwind::thread(&mut loaded, &mut mem, thread, i == 0, max, limits, started);
                complete &= t.stopped.is_none();
                threads.push(t);
            }
        }
        other => {
            problems.push(format!("unwinding {other:?} cores is not supported"));
            complete = false;
        }
    }
    let omitted = parsed.prstatus.len().saturating_sub(threads.len());
    if mem.io_errors > 0 {
        problems.push(format!(
            "{} reads of the core failed: the stored core is damaged",
            mem.io_errors
        ));
        complete = false;
    }
    for p in loaded.problems() {
        complete = false;
        problems.push(p);
    }
    let signature = threads
        .first()
        .and_then(|t| signature::signature(signal, &t.frames));
    let modules = loaded
        .images()
        .iter()
        .map(|(image, has_binary)| Module {
            path: image.path.clone(),
            base: format!("{:#x}", image.base),
            build_id: image.build_id.clone(),
            binary: *has_binary,
        })
        .collect();
    Outcome {
        analysis: Analysis {
            threads,
            omitted_threads: u32::try_from(omitted).unwrap_or(u32::MAX),
            modules,
            complete: complete && problems.is_empty(),
            problems: problems.into_vec(),
        },
        signature,
    }
}

/// Problems, deduplicated and bounded.
struct Problems {
    items: Vec<String>,
    max: usize,
    dropped: usize,
}

impl Problems {
    fn new(max: usize) -> Self {
        Problems {
            items: Vec::new(),
            max,
            dropped: 0,
        }
    }

    fn push(&mut self, p: impl Into<String>) {
        let p = p.into();
        if self.items.contains(&p) {
            return;
        }
        if self.items.len() < self.max {
            self.items.push(p);
        } else {
            self.dropped += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn into_vec(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.items
                .push(format!("{} more problems not listed", self.dropped));
        }
        self.items
    }
}
