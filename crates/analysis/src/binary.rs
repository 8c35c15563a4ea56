//! One mapped binary, read through a caller-supplied reader (never a path): its unwind tables
//! for the unwinder, and its symbols and DWARF line tables for symbolization. Only the sections
//! needed are read, each within a size bound; a binary too large to symbolize fully keeps what
//! fits (the symbol table without DWARF) and says so.

use std::borrow::Cow;
use std::io::{Read, Seek};
use std::ops::Range;
use std::sync::Arc;

use object::read::ReadCache;
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, SymbolKind};

/// What a binary source hands out: a seekable reader over the file's bytes.
pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

type Reader = gimli::EndianArcSlice<gimli::RunTimeEndian>;

/// Unwind sections copied out of the binary, for framehop.
#[derive(Default)]
pub(crate) struct UnwindSections {
    pub(crate) text_svma: Option<Range<u64>>,
    pub(crate) text: Option<Vec<u8>>,
    pub(crate) got_svma: Option<Range<u64>>,
    pub(crate) eh_frame_svma: Option<Range<u64>>,
    pub(crate) eh_frame: Option<Vec<u8>>,
    pub(crate) eh_frame_hdr_svma: Option<Range<u64>>,
    pub(crate) eh_frame_hdr: Option<Vec<u8>>,
    pub(crate) debug_frame: Option<Vec<u8>>,
}

impl UnwindSections {
    pub(crate) fn has_cfi(&self) -> bool {
        self.eh_frame.is_some() || self.debug_frame.is_some()
    }
}

/// A function symbol: start (stated address), size, demangled name.
struct Symbol {
    start: u64,
    size: u64,
    name: String,
}

/// Symbols and line tables of one binary (from the binary itself or its separate debug file).
#[derive(Default)]
pub(crate) struct Symbolizer {
    symbols: Vec<Symbol>,
    dwarf: Option<addr2line::Context<Reader>>,
    /// Why symbolization is weaker than it could be (for the analysis's problems).
    pub(crate) notes: Vec<String>,
}

/// One symbolized (possibly inlined) frame at a stated address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Symbolized {
    pub(crate) function: Option<String>,
    pub(crate) file: Option<String>,
    pub(crate) line: Option<u32>,
}

/// The parts of a binary the analysis uses.
pub(crate) struct Binary {
    pub(crate) unwind: UnwindSections,
    /// `p_vaddr - p_offset` of the first `PT_LOAD`: with the address file offset 0 is mapped
    /// at, gives the load bias when the core lacks the header page.
    pub(crate) link_base: Option<u64>,
    pub(crate) symbolizer: Symbolizer,
}

/// Size bounds for reading one binary.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadBounds {
    /// `.text` larger than this is not copied (the unwinder then skips prologue analysis).
    pub(crate) max_text: u64,
    /// Unwind tables larger than this are not copied.
    pub(crate) max_unwind: u64,
    /// DWARF sections over this sum are not loaded (symbols only).
    pub(crate) max_debug: u64,
    /// At most this many symbols are kept.
    pub(crate) max_symbols: usize,
}

fn range<'d>(s: &impl ObjectSection<'d>) -> Range<u64> {
    s.address()..s.address().saturating_add(s.size())
}

fn section_copy<'d>(
    file: &impl Object<'d>,
    name: &str,
    max: u64,
) -> (Option<Range<u64>>, Option<Vec<u8>>) {
    let Some(s) = file.section_by_name(name) else {
        return (None, None);
    };
    if s.size() > max {
        return (Some(range(&s)), None);
    }
    let data = s.uncompressed_data().ok().map(Cow::into_owned);
    (Some(range(&s)), data)
}

/// Reads `binary` (the mapped file) and, when given, `debug` (its separate debug file).
pub(crate) fn load(
    binary: Box<dyn ReadSeek>,
    debug: Option<Box<dyn ReadSeek>>,
    bounds: ReadBounds,
) -> Result<Binary, String> {
    let cache = ReadCache::new(binary);
    let file = object::File::parse(&cache).map_err(|e| format!("not a readable ELF file: {e}"))?;
    let mut unwind = UnwindSections::default();
    (unwind.text_svma, unwind.text) = section_copy(&file, ".text", bounds.max_text);
    unwind.got_svma = file.section_by_name(".got").map(|s| range(&s));
    (unwind.eh_frame_svma, unwind.eh_frame) = section_copy(&file, ".eh_frame", bounds.max_unwind);
    (unwind.eh_frame_hdr_svma, unwind.eh_frame_hdr) =
        section_copy(&file, ".eh_frame_hdr", bounds.max_unwind);
    (_, unwind.debug_frame) = section_copy(&file, ".debug_frame", bounds.max_unwind);
    let link_base = file
        .segments()
        .filter(|s| s.size() > 0)
        .min_by_key(|s| s.address())
        .map(|s| s.address().wrapping_sub(s.file_range().0));

    let mut symbolizer = Symbolizer::default();
    let debug_file = match debug {
        Some(d) => {
            let debug_cache = ReadCache::new(d);
            match object::File::parse(&debug_cache) {
                Ok(df) => {
                    symbolizer = Symbolizer::from_file(&df, bounds);
                    symbolizer.notes.retain(|n| !n.contains("no symbol table"));
                    true
                }
                Err(e) => {
                    symbolizer
                        .notes
                        .push(format!("separate debug file unreadable: {e}"));
                    false
                }
            }
        }
        None => false,
    };
    if !debug_file {
        let notes = std::mem::take(&mut symbolizer.notes);
        symbolizer = Symbolizer::from_file(&file, bounds);
        symbolizer.notes.extend(notes);
    } else if symbolizer.symbols.is_empty() {
        symbolizer.symbols = symbols(&file, bounds.max_symbols);
    }
    Ok(Binary {
        unwind,
        link_base,
        symbolizer,
    })
}

fn symbols<'d, O: Object<'d>>(file: &O, max: usize) -> Vec<Symbol> {
    let mut out = Vec::new();
    let take = |out: &mut Vec<Symbol>, syms: O::SymbolIterator<'_>| {
        for s in syms {
            if out.len() >= max {
                break;
            }
            if s.kind() != SymbolKind::Text || s.address() == 0 || !s.is_definition() {
                continue;
            }
            let Ok(name) = s.name() else { continue };
            out.push(Symbol {
                start: s.address(),
                size: s.size(),
                name: addr2line::demangle_auto(Cow::Borrowed(name), None).into_owned(),
            });
        }
    };
    take(&mut out, file.symbols());
    if out.is_empty() {
        take(&mut out, file.dynamic_symbols());
    }
    out.sort_by_key(|s| s.start);
    out
}

impl Symbolizer {
    fn from_file<'d, O: Object<'d>>(file: &O, bounds: ReadBounds) -> Symbolizer {
        let mut notes = Vec::new();
        let symbols = symbols(file, bounds.max_symbols);
        let has_symtab = file.symbols().next().is_some();
        let debug_bytes: u64 = file
            .sections()
            .filter(|s| {
                s.name()
                    .is_ok_and(|n| n.starts_with(".debug_") || n.starts_with(".zdebug_"))
            })
            .map(|s| s.size())
            .sum();
        let dwarf = if debug_bytes == 0 {
            if !has_symtab && file.dynamic_symbols().next().is_some() {
                notes.push(
                    "stripped: exported (dynamic) symbols only, no debug information".to_owned(),
                );
            } else if !has_symtab {
                notes.push("stripped: no symbol table and no debug information".to_owned());
            } else {
                notes.push("no debug information: functions from the symbol table only".to_owned());
            }
            None
        } else if debug_bytes > bounds.max_debug {
            notes.push(format!(
                "debug information of {debug_bytes} bytes over the {} byte bound: functions from the symbol table only",
                bounds.max_debug
            ));
            None
        } else {
            match load_dwarf(file) {
                Ok(ctx) => Some(ctx),
                Err(e) => {
                    notes.push(format!("debug information unreadable: {e}"));
                    None
                }
            }
        };
        Symbolizer {
            symbols,
            dwarf,
            notes,
        }
    }

    /// Whether this binary can name functions at all.
    pub(crate) fn has_names(&self) -> bool {
        !self.symbols.is_empty() || self.dwarf.is_some()
    }

    /// Frames at the stated address `svma`, innermost (inlined) first.
    pub(crate) fn lookup(&self, svma: u64) -> Vec<Symbolized> {
        let mut out = Vec::new();
        if let Some(ctx) = &self.dwarf
            && let Ok(mut frames) = ctx.find_frames(svma).skip_all_loads()
        {
            while let Ok(Some(f)) = frames.next() {
                if out.len() >= 32 {
                    break;
                }
                let function = f
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok().map(Cow::into_owned));
                let (file, line) = match &f.location {
                    Some(l) => (l.file.map(str::to_owned), l.line),
                    None => (None, None),
                };
                out.push(Symbolized {
                    function,
                    file,
                    line,
                });
            }
        }
        let symbol = self.symbol_at(svma).map(str::to_owned);
        match out.last_mut() {
            // The outermost DWARF frame is the real function: fill a missing name.
            Some(last) if last.function.is_none() => last.function = symbol,
            Some(_) => {}
            None => out.push(Symbolized {
                function: symbol,
                ..Symbolized::default()
            }),
        }
        out
    }

    fn symbol_at(&self, svma: u64) -> Option<&str> {
        let i = self.symbols.partition_point(|s| s.start <= svma);
        let s = self.symbols.get(i.checked_sub(1)?)?;
        // Size 0 (hand-written assembly): accept, the next symbol bounds it.
        (s.size == 0 || svma < s.start.saturating_add(s.size)).then_some(s.name.as_str())
    }
}

fn load_dwarf<'d, O: Object<'d>>(file: &O) -> Result<addr2line::Context<Reader>, String> {
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
        let data: Arc<[u8]> = match file.section_by_name(id.name()) {
            Some(s) => s
                .uncompressed_data()
                .map(|d| Arc::from(d.as_ref()))
                .unwrap_or_else(|_| Arc::from(&[][..])),
            None => Arc::from(&[][..]),
        };
        Ok(gimli::EndianArcSlice::new(data, endian))
    };
    let dwarf = gimli::Dwarf::load(load).map_err(|e| e.to_string())?;
    addr2line::Context::from_dwarf(dwarf).map_err(|e| e.to_string())
}
