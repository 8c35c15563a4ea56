//! What a core file holds, as plain values.
//!
//! Separate from the parsing so that the agent and the API can pass these
//! around (and tests can compare them) without the reader.

/// The CPU architecture a core was written for (`e_machine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Machine {
    /// `EM_X86_64`.
    X86_64,
    /// `EM_AARCH64`.
    Aarch64,
    /// Any other `e_machine` value.
    Other(u16),
}

impl Machine {
    /// Words in this machine's `pr_reg` (0 for machines whose layout is not known here).
    pub fn register_count(self) -> usize {
        match self {
            Machine::X86_64 => 27,
            Machine::Aarch64 => 34,
            Machine::Other(_) => 0,
        }
    }

    pub(crate) fn from_e_machine(e_machine: u16) -> Machine {
        match e_machine {
            object::elf::EM_X86_64 => Machine::X86_64,
            object::elf::EM_AARCH64 => Machine::Aarch64,
            other => Machine::Other(other),
        }
    }
}

/// A `PT_LOAD` program header: one dumped (or skipped) memory range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadSegment {
    /// Start address in the crashed process.
    pub vaddr: u64,
    /// Where its bytes start in the core file.
    pub file_offset: u64,
    /// How many bytes the core holds (0 when the range was not dumped).
    pub file_size: u64,
    /// Size of the range in memory.
    pub mem_size: u64,
    /// `PF_R` / `PF_W` / `PF_X` bits.
    pub flags: u32,
}

impl LoadSegment {
    /// `PF_X`: the range was executable.
    pub const EXECUTE: u32 = object::elf::PF_X;
    /// `PF_W`: the range was writable.
    pub const WRITE: u32 = object::elf::PF_W;
    /// `PF_R`: the range was readable.
    pub const READ: u32 = object::elf::PF_R;

    /// How many of the segment's bytes a file of `file_len` bytes holds.
    pub fn available_bytes(&self, file_len: u64) -> u64 {
        self.file_size
            .min(file_len.saturating_sub(self.file_offset))
    }

    /// True when all `file_size` bytes are within a file of `file_len` bytes.
    pub fn is_complete(&self, file_len: u64) -> bool {
        self.available_bytes(file_len) == self.file_size
    }

    /// True when `vaddr` lies in the dumped part of the segment.
    pub fn holds(&self, vaddr: u64) -> bool {
        vaddr >= self.vaddr && vaddr - self.vaddr < self.file_size
    }
}

/// One thread's `NT_PRSTATUS` (the fields common to every 64-bit Linux arch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrStatus {
    /// Thread id (`pr_pid`).
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Process group id.
    pub pgrp: u32,
    /// Session id.
    pub sid: u32,
    /// `pr_cursig`: the signal that killed the process (0 in a core that a
    /// debugger wrote from a live process, e.g. `gcore`).
    pub signal: i32,
    /// `pr_reg`: the thread's general-purpose registers in the kernel's order for the
    /// architecture (x86_64 `user_regs_struct`: 27 words, `rip` at 16, `rsp` at 19, `rbp` at 4;
    /// aarch64 `user_pt_regs`: `x0..x30`, `sp`, `pc`, `pstate`). Empty for other machines, fewer
    /// words when the note is short. See [`Machine::register_count`].
    pub registers: Vec<u64>,
}

/// The process's `NT_PRPSINFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsInfo {
    /// Process id.
    pub pid: u32,
    /// Real user id (as the crashed process saw it).
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// `pr_fname`: the command name, at most 15 bytes (lossy UTF-8).
    pub fname: String,
    /// `pr_psargs`: the start of the command line, at most 79 bytes, arguments
    /// separated by spaces (lossy UTF-8).
    pub args: String,
}

/// The `NT_SIGINFO` of the signal that caused the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigInfo {
    /// `si_signo`.
    pub signo: i32,
    /// `si_code` (positive: sent by the kernel, e.g. `SEGV_MAPERR`).
    pub code: i32,
    /// `si_errno`.
    pub errno: i32,
    /// `si_addr` for the fault signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
    /// SIGTRAP) raised by the kernel.
    pub fault_addr: Option<u64>,
}

/// One `NT_FILE` entry: a file-backed mapping of the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedFile {
    /// Start address.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// Offset in the file, in bytes.
    pub file_offset: u64,
    /// Path of the file as the kernel named it (lossy UTF-8, possibly with a
    /// ` (deleted)` suffix).
    pub path: String,
}

/// A note that was present but could not be decoded; the rest of the core
/// is still read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteError {
    /// File offset of the note segment holding it.
    pub segment_offset: u64,
    /// The note's `n_type` (0 when the note header itself is broken).
    pub n_type: u32,
    /// What is wrong.
    pub reason: String,
}

/// Everything [`crate::parse_core`] reads from a core file, without the
/// memory contents (read those with [`CoreFile::segment_bytes`] and
/// friends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreFile {
    /// Architecture.
    pub machine: Machine,
    /// Length of the data that was parsed (a truncated core is shorter than
    /// its headers say).
    pub file_len: u64,
    /// `PT_LOAD` segments in program header order.
    pub segments: Vec<LoadSegment>,
    /// One entry per thread; the kernel writes the thread that crashed first.
    pub prstatus: Vec<PrStatus>,
    /// Process information, when present.
    pub psinfo: Option<PsInfo>,
    /// The signal that caused the dump, when present.
    pub siginfo: Option<SigInfo>,
    /// File-backed mappings (`NT_FILE`), in the kernel's (address) order.
    pub mapped_files: Vec<MappedFile>,
    /// The auxiliary vector as `(key, value)` pairs, without `AT_NULL`.
    pub auxv: Vec<(u64, u64)>,
    /// False when a `PT_NOTE` segment runs past the end of the data, so the
    /// notes above may be missing some entries.
    pub notes_complete: bool,
    /// Notes that were present but malformed.
    pub note_errors: Vec<NoteError>,
}

impl CoreFile {
    /// The value of auxv entry `key` (e.g. `AT_PHDR` = 3, `AT_ENTRY` = 9).
    pub fn auxv_value(&self, key: u64) -> Option<u64> {
        self.auxv.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// Indexes into [`CoreFile::segments`] of segments the data cuts short.
    pub fn incomplete_segments(&self) -> Vec<usize> {
        (0..self.segments.len())
            .filter(|&i| !self.segments[i].is_complete(self.file_len))
            .collect()
    }

    /// True when every note and every segment is within the data.
    pub fn is_complete(&self) -> bool {
        self.notes_complete && self.incomplete_segments().is_empty()
    }

    /// The `NT_FILE` mapping that contains `addr`.
    pub fn mapping_at(&self, addr: u64) -> Option<&MappedFile> {
        self.mapped_files
            .iter()
            .find(|m| m.start <= addr && addr < m.end)
    }

    /// Path of the main executable: the `NT_FILE` mapping holding the program
    /// headers (`AT_PHDR`) or entry point (`AT_ENTRY`) from auxv.
    pub fn executable_path(&self) -> Option<&str> {
        [crate::AT_PHDR, crate::AT_ENTRY]
            .into_iter()
            .filter_map(|key| self.auxv_value(key))
            .find_map(|addr| self.mapping_at(addr))
            .map(|m| m.path.as_str())
    }
}
