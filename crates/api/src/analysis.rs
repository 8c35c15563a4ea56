//! What the analysis of a core found: a symbolized backtrace per thread, the mapped ELF images
//! with their build IDs, and what limited the result. Stored in `Coredump.status.analysis`;
//! computed by the ingest after capture, never on the crash path.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label carrying the crash signature, so `kubectl get coredumps -l` can select one problem.
pub const SIGNATURE_LABEL: &str = "coredump.fujitsu.com/signature";

/// The analysis of one core.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "com.fujitsu.coredump.v1alpha1.Analysis")]
pub struct Analysis {
    /// Threads, the crashing thread first; at most a bounded number.
    #[serde(default)]
    pub threads: Vec<ThreadBacktrace>,
    /// Threads of the core left out to stay within bounds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted_threads: u32,
    /// Mapped ELF images, the main executable first: what a debugger needs, by build ID.
    #[serde(default)]
    pub modules: Vec<Module>,
    /// True when nothing limited the result: the core was whole, every frame's binary was
    /// readable and every unwind ended at the stack's root.
    #[serde(default)]
    pub complete: bool,
    /// What limited the result, one sentence each (truncated core, missing binary, stripped
    /// binary, unreadable stack, time limit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One thread's stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "com.fujitsu.coredump.v1alpha1.ThreadBacktrace")]
pub struct ThreadBacktrace {
    /// Thread id (as the crashed process's pid namespace saw it).
    pub tid: u32,
    /// The thread that received the fatal signal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub crashed: bool,
    /// Innermost frame first.
    #[serde(default)]
    pub frames: Vec<Frame>,
    /// More frames than the bound: the outermost ones are left out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Why unwinding stopped before the stack's root, when it did (unreadable stack memory,
    /// no unwind information, a loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// One stack frame.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "com.fujitsu.coredump.v1alpha1.Frame")]
pub struct Frame {
    /// Instruction address in the crashed process (hex); for callers, the return address.
    pub pc: String,
    /// Path of the mapped file holding `pc`, as the kernel named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Offset of `pc` from the module's load address (hex): stable across ASLR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// GNU build ID of the module (hex).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "buildID")]
    pub build_id: Option<String>,
    /// Function name, demangled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Source file, when debug information was available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Source line, when debug information was available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// A function inlined into the next frame (same `pc`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inlined: bool,
}

/// One mapped ELF image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "com.fujitsu.coredump.v1alpha1.Module")]
pub struct Module {
    /// Path as the kernel named it.
    pub path: String,
    /// Load address (hex).
    pub base: String,
    /// GNU build ID (hex), when its note was in the core.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "buildID")]
    pub build_id: Option<String>,
    /// Whether the binary itself was available to the analysis (unwind tables, symbols).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binary: bool,
}

/// Function names (exact, or prefixes ending in `::`/`.`) of crash-reporting machinery.
const MACHINERY: &[&str] = &[
    "raise",
    "abort",
    "__GI_raise",
    "__GI_abort",
    "__pthread_kill_implementation",
    "__pthread_kill_internal",
    "__pthread_kill",
    "pthread_kill",
    "__assert_fail",
    "__assert_fail_base",
    "__assert_perror_fail",
    "__libc_message",
    "__libc_fatal",
    "__fortify_fail",
    "__stack_chk_fail",
    "__chk_fail",
    "malloc_printerr",
    "std::panicking::",
    "core::panicking::",
    "std::sys::pal::unix::abort_internal",
    "std::sys::abort_internal",
    "std::process::abort",
    "rust_panic",
    "rust_begin_unwind",
    "std::sys::backtrace::",
    "__rust_start_panic",
    "__rust_abort",
    "__rustc::",
    "panic_abort::",
    "core::option::expect_failed",
    "core::result::unwrap_failed",
    "core::option::unwrap_failed",
    "runtime.raise",
    "runtime.raiseproc",
    "runtime.dieFromSignal",
    "runtime.crash",
    "runtime.fatalpanic",
    "runtime.fatalthrow",
    "runtime.throw",
    "runtime.sighandler",
    "runtime.sigtrampgo",
    "runtime.sigfwdgo",
    "runtime.sigfwd",
    "runtime.badsignal",
    "<signal handler called>",
    "runtime.sigtramp",
    "runtime.sigpanic",
    "runtime.gopanic",
    "runtime.panicmem",
    "runtime.panicmemAddr",
    "runtime.startpanic_m",
    "runtime.dopanic_m",
    "runtime.abort",
    "gsignal",
];

/// Whether `function` only reports a crash rather than causing it (`abort`, `raise`,
/// `__assert_fail`, Rust's panic runtime, Go's `runtime.crash` path): crash signatures and
/// summaries skip these frames.
pub fn is_crash_machinery(function: &str) -> bool {
    // `std::panicking::begin_panic_handler::{{closure}}` and `runtime.fatalpanic.func1`.
    let base = function.split("::{").next().unwrap_or(function);
    MACHINERY.iter().any(|m| {
        if m.ends_with("::") || m.ends_with('.') {
            base.starts_with(m)
        } else {
            base == *m
                || base.starts_with(&format!("{m}.func"))
                || base.starts_with(&format!("{m}::"))
        }
    })
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Frame {
    /// `function (file:line)`, or `module+offset`, or the bare address: one line for tables
    /// and logs.
    pub fn describe(&self) -> String {
        let place = match (&self.module, &self.offset) {
            (Some(m), Some(o)) => {
                format!("{}+{o}", m.rsplit('/').next().unwrap_or(m))
            }
            _ => self.pc.clone(),
        };
        match (&self.function, &self.file, self.line) {
            (Some(f), Some(file), Some(line)) => format!("{f} ({file}:{line})"),
            (Some(f), _, _) => format!("{f} ({place})"),
            _ => place,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_and_omissions() {
        let a = Analysis {
            threads: vec![ThreadBacktrace {
                tid: 7,
                crashed: true,
                frames: vec![Frame {
                    pc: "0x401000".into(),
                    build_id: Some("ab".into()),
                    ..Frame::default()
                }],
                ..ThreadBacktrace::default()
            }],
            complete: true,
            ..Analysis::default()
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["threads"][0]["frames"][0]["buildID"], "ab");
        assert_eq!(v["threads"][0]["crashed"], true);
        assert!(v["threads"][0]["frames"][0].get("inlined").is_none());
        assert!(v.get("problems").is_none());
        let back: Analysis = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn describe_prefers_source_then_symbol_then_offset() {
        let mut f = Frame {
            pc: "0x7f00".into(),
            module: Some("/usr/lib/libc.so.6".into()),
            offset: Some("0x1234".into()),
            ..Frame::default()
        };
        assert_eq!(f.describe(), "libc.so.6+0x1234");
        f.function = Some("abort".into());
        assert_eq!(f.describe(), "abort (libc.so.6+0x1234)");
        f.file = Some("a.c".into());
        f.line = Some(3);
        assert_eq!(f.describe(), "abort (a.c:3)");
    }
}
