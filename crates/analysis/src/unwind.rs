//! Unwinding one thread with framehop, loading a binary's unwind tables and symbols the first
//! time a frame lands in it (so binaries no stack touches are never read).

use std::io::{Read, Seek};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use coredump_api::{Frame, ThreadBacktrace};
use coredump_corefile::PrStatus;
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};

use crate::binary::{self, ReadBounds, Symbolizer};
use crate::memory::CoreMemory;
use crate::modules::Image;
use crate::{Binaries, Limits};

/// Functions a runtime makes the faulting code appear to call: Go's signal handler pushes the
/// faulting pc and resumes in `runtime.sigpanic`, so the frame below it starts at an
/// instruction pointer (possibly a function's first instruction), not after a call.
const INJECTED_CALLS: &[&str] = &["runtime.sigpanic", "runtime.sigpanic0"];

/// `user_regs_struct` indexes.
const RBP: usize = 4;
const RIP: usize = 16;
const RSP: usize = 19;

/// `mov $15, %rax; syscall` (`rt_sigreturn`): the signal trampoline of glibc (`__restore_rt`),
/// musl and Go (`runtime.sigreturn__sigaction`). A return address pointing at it means the
/// frame below is a signal frame.
const SIGRETURN: [u8; 9] = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];
/// Where `rbp`, `rsp` and `rip` sit in the `ucontext_t` the trampoline finds at its stack
/// pointer (`uc_flags`, `uc_link`, `uc_stack` take 40 bytes, then `struct sigcontext`: r8-r15,
/// rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip).
const UC_RBP: u64 = 40 + 10 * 8;
const UC_RSP: u64 = 40 + 15 * 8;
const UC_RIP: u64 = 40 + 16 * 8;

enum State {
    NotTried,
    /// No binary, or an unreadable one: frame pointers and offsets only.
    Unavailable,
    Loaded {
        bias: u64,
        symbolizer: Symbolizer,
        /// `.text` (stated range and bytes), to recognise signal trampolines.
        text: Option<(Range<u64>, Arc<[u8]>)>,
    },
}

/// The process's images and whatever has been loaded of them so far.
pub(crate) struct Loaded<'b> {
    images: Vec<Image>,
    state: Vec<State>,
    binaries: &'b dyn Binaries,
    unwinder: UnwinderX86_64<Arc<[u8]>>,
    cache: CacheX86_64,
    bounds: ReadBounds,
    problems: Vec<String>,
}

impl<'b> Loaded<'b> {
    pub(crate) fn new(images: Vec<Image>, binaries: &'b dyn Binaries, limits: &Limits) -> Self {
        let state = images.iter().map(|_| State::NotTried).collect();
        Loaded {
            images,
            state,
            binaries,
            unwinder: UnwinderX86_64::new(),
            cache: CacheX86_64::new(),
            bounds: ReadBounds {
                max_text: limits.max_text_bytes,
                max_unwind: limits.max_unwind_bytes,
                max_debug: limits.max_debug_bytes,
                max_symbols: limits.max_symbols,
            },
            problems: Vec::new(),
        }
    }

    /// Images with whether their binary was loaded.
    pub(crate) fn images(&self) -> Vec<(&Image, bool)> {
        self.images
            .iter()
            .zip(&self.state)
            .map(|(i, s)| (i, matches!(s, State::Loaded { .. })))
            .collect()
    }

    pub(crate) fn problems(&self) -> Vec<String> {
        self.problems.clone()
    }

    fn image_at(&self, addr: u64) -> Option<usize> {
        self.images.iter().position(|i| i.contains(addr))
    }

    /// Loads image `i`'s binary once: unwind tables into the unwinder, symbols kept.
    fn ensure(&mut self, i: usize) {
        if !matches!(self.state[i], State::NotTried) {
            return;
        }
        self.state[i] = State::Unavailable;
        let image = self.images[i].clone();
        let name = image.path.clone();
        let Some(reader) = self.binaries.binary(&image) else {
            self.problems.push(match &image.build_id {
                Some(id) => format!("binary {name} (build ID {id}) not available: frames in it unwound by frame pointers, not symbolized"),
                None => format!("binary {name} not available: frames in it unwound by frame pointers, not symbolized"),
            });
            return;
        };
        let debug = image
            .build_id
            .as_deref()
            .and_then(|id| self.binaries.debuginfo(id));
        let loaded = match binary::load(reader, debug, self.bounds) {
            Ok(b) => b,
            Err(e) => {
                self.problems.push(format!("binary {name}: {e}"));
                return;
            }
        };
        let Some(bias) = image
            .bias
            .or_else(|| loaded.link_base.map(|l| image.base.wrapping_sub(l)))
        else {
            self.problems
                .push(format!("binary {name}: load address unknown"));
            return;
        };
        for note in &loaded.symbolizer.notes {
            self.problems.push(format!("binary {name}: {note}"));
        }
        if !loaded.unwind.has_cfi() {
            self.problems.push(format!(
                "binary {name}: no unwind tables, frames in it unwound by frame pointers"
            ));
        }
        let u = loaded.unwind;
        let arc = |v: Option<Vec<u8>>| v.map(Arc::<[u8]>::from);
        let text = arc(u.text);
        let info = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: u.text_svma.clone(),
            text: text.clone(),
            got_svma: u.got_svma,
            eh_frame_svma: u.eh_frame_svma,
            eh_frame: arc(u.eh_frame),
            eh_frame_hdr_svma: u.eh_frame_hdr_svma,
            eh_frame_hdr: arc(u.eh_frame_hdr),
            debug_frame: arc(u.debug_frame),
            ..ExplicitModuleSectionInfo::default()
        };
        self.unwinder
            .add_module(Module::new(name, image.start..image.end, bias, info));
        self.state[i] = State::Loaded {
            bias,
            symbolizer: loaded.symbolizer,
            text: u.text_svma.zip(text),
        };
    }

    /// Whether `addr` is the first instruction of a signal trampoline.
    fn is_sigreturn(&mut self, addr: u64) -> bool {
        let Some(i) = self.image_at(addr) else {
            return false;
        };
        self.ensure(i);
        let State::Loaded {
            bias,
            text: Some((range, bytes)),
            ..
        } = &self.state[i]
        else {
            return false;
        };
        let svma = addr.wrapping_sub(*bias);
        if !range.contains(&svma) {
            return false;
        }
        let at = (svma - range.start) as usize;
        bytes.get(at..at + SIGRETURN.len()) == Some(&SIGRETURN[..])
    }

    /// The frames (inlined ones first) for one unwound address.
    fn frames_at(&mut self, address: FrameAddress) -> Vec<Frame> {
        let pc = address.address();
        let lookup = address.address_for_lookup();
        let Some(i) = self.image_at(lookup) else {
            return vec![Frame {
                pc: format!("{pc:#x}"),
                ..Frame::default()
            }];
        };
        self.ensure(i);
        let image = &self.images[i];
        let base = Frame {
            pc: format!("{pc:#x}"),
            module: Some(image.path.clone()),
            offset: Some(format!("{:#x}", pc.wrapping_sub(image.base))),
            build_id: image.build_id.clone(),
            ..Frame::default()
        };
        let State::Loaded {
            bias, symbolizer, ..
        } = &self.state[i]
        else {
            return vec![base];
        };
        if !symbolizer.has_names() {
            return vec![base];
        }
        let found = symbolizer.lookup(lookup.wrapping_sub(*bias));
        let n = found.len();
        found
            .into_iter()
            .enumerate()
            .map(|(k, s)| Frame {
                function: s.function,
                file: s.file,
                line: s.line,
                inlined: k + 1 < n,
                ..base.clone()
            })
            .collect()
    }
}

/// Unwinds one thread from its registers, keeping at most `max` frames.
pub(crate) fn thread<R: Read + Seek>(
    loaded: &mut Loaded<'_>,
    mem: &mut CoreMemory<'_, R>,
    status: &PrStatus,
    crashed: bool,
    max: usize,
    limits: &Limits,
    started: Instant,
) -> ThreadBacktrace {
    let mut out = ThreadBacktrace {
        tid: status.pid,
        crashed,
        ..ThreadBacktrace::default()
    };
    let reg = |i: usize| status.registers.get(i).copied();
    let (Some(ip), Some(sp), Some(bp)) = (reg(RIP), reg(RSP), reg(RBP)) else {
        out.stopped = Some("registers missing from the thread's note".to_owned());
        return out;
    };
    let mut regs = UnwindRegsX86_64::new(ip, sp, bp);
    let mut address = FrameAddress::from_instruction_pointer(ip);
    loop {
        if out.frames.len() >= max {
            out.truncated = true;
            out.frames.truncate(max);
            break;
        }
        if started.elapsed() > limits.deadline {
            out.stopped = Some("time limit reached".to_owned());
            break;
        }
        // Make sure the unwinder knows this frame's module before it unwinds it.
        if let Some(i) = loaded.image_at(address.address_for_lookup()) {
            loaded.ensure(i);
        }
        out.frames.extend(loaded.frames_at(address));
        let mut read = |addr: u64| mem.u64_le(addr).ok_or(());
        let step = loaded
            .unwinder
            .unwind_frame(address, &mut regs, &mut loaded.cache, &mut read);
        match step {
            Ok(Some(ra)) if loaded.is_sigreturn(ra) => {
                // A signal frame: the interrupted context is in the ucontext at the stack
                // pointer, and its pc is where the signal hit, not a return address.
                out.frames.push(Frame {
                    pc: format!("{ra:#x}"),
                    function: Some("<signal handler called>".to_owned()),
                    ..Frame::default()
                });
                let sp = regs.sp();
                let (Some(ip), Some(new_sp), Some(bp)) = (
                    mem.u64_le(sp.wrapping_add(UC_RIP)),
                    mem.u64_le(sp.wrapping_add(UC_RSP)),
                    mem.u64_le(sp.wrapping_add(UC_RBP)),
                ) else {
                    out.stopped = Some("signal frame not in the core".to_owned());
                    break;
                };
                regs = UnwindRegsX86_64::new(ip, new_sp, bp);
                address = FrameAddress::from_instruction_pointer(ip);
            }
            Ok(Some(ra)) => {
                let injected = out
                    .frames
                    .last()
                    .and_then(|f| f.function.as_deref())
                    .is_some_and(|f| INJECTED_CALLS.contains(&f));
                if injected {
                    // Not a return address: the pc where the fault happened.
                    address = FrameAddress::from_instruction_pointer(ra);
                } else {
                    match FrameAddress::from_return_address(ra) {
                        Some(next) => address = next,
                        None => break,
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                out.stopped = Some(format!("unwinding stopped: {e}"));
                break;
            }
        }
    }
    out
}
