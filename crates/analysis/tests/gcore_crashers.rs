//! Real crashers (C with debug info, stripped with a separate debug file, deep recursion,
//! several threads, a truncated core) made to crash under gdb, whose `gcore` writes the core the
//! way the kernel lays it out (notes, NT_FILE, the first page of each mapping). The kernel's own
//! cores go through the same analysis in the detector's end-to-end tests.

#![allow(clippy::unwrap_used)]

mod support;

use coredump_analysis::{Limits, NoBinaries, analyze};
use support::*;

#[test]
fn c_with_debug_info_names_functions_files_and_lines() {
    let c = crashers();
    let core = c.core("segv", &[]);
    let out = analyze(core.reader(), &core.binaries(), &Limits::default()).unwrap();
    let t = &out.analysis.threads[0];
    assert!(t.crashed);
    let names = functions(t);
    assert_eq!(
        &names[..3],
        ["store_value", "parse_record", "main"],
        "{t:#?}"
    );
    let top = &t.frames[0];
    assert!(top.file.as_deref().unwrap().ends_with("crash.c"), "{top:?}");
    assert_eq!(top.line, Some(line_of("void store_value")));
    assert!(
        top.build_id.as_deref().is_some_and(|b| b.len() == 40),
        "{top:?}"
    );
    assert!(out.signature.is_some());
    let exe = &out.analysis.modules[0];
    assert!(exe.path.ends_with("/crash"), "{:?}", out.analysis.modules);
    assert!(exe.binary);
}

#[test]
fn stripped_binary_with_separate_debug_file() {
    let c = crashers();
    let core = c.core_of(&c.stripped, "segv", &[]);
    // The stripped binary alone: no names in the executable, and the analysis says why.
    let bare = analyze(core.reader(), &core.binaries(), &Limits::default()).unwrap();
    let top = &bare.analysis.threads[0].frames[0];
    assert_eq!(top.function, None, "{top:?}");
    assert!(
        bare.analysis
            .problems
            .iter()
            .any(|p| p.contains("stripped")),
        "{:?}",
        bare.analysis.problems
    );
    // With the debug file found by build ID: names and lines again.
    let with_debug = core.binaries().with_debuginfo(&c.debug_file);
    let full = analyze(core.reader(), &with_debug, &Limits::default()).unwrap();
    let names = functions(&full.analysis.threads[0]);
    assert_eq!(&names[..3], ["store_value", "parse_record", "main"]);
    assert_eq!(
        full.analysis.threads[0].frames[0].line,
        Some(line_of("void store_value"))
    );
}

#[test]
fn deep_recursion_is_bounded() {
    let c = crashers();
    let core = c.core("recurse", &["5000"]);
    let limits = Limits::default();
    let out = analyze(core.reader(), &core.binaries(), &limits).unwrap();
    let t = &out.analysis.threads[0];
    assert_eq!(t.frames.len(), limits.max_frames);
    assert!(t.truncated);
    assert!(functions(t).iter().all(|f| f == "recurse"));
}

#[test]
fn every_thread_is_unwound_crashing_one_first() {
    let c = crashers();
    let core = c.core("threads", &[]);
    let out = analyze(core.reader(), &core.binaries(), &Limits::default()).unwrap();
    let threads = &out.analysis.threads;
    assert_eq!(threads.len(), 6, "{threads:#?}");
    assert!(threads[0].crashed && threads[1..].iter().all(|t| !t.crashed));
    assert_eq!(
        functions(&threads[0])[..2],
        ["worker_crash_inner", "worker_crash"]
    );
    let parked = threads
        .iter()
        .filter(|t| functions(t).iter().any(|f| f == "worker_park"))
        .count();
    assert_eq!(parked, 4, "{threads:#?}");
}

#[test]
fn same_bug_same_signature_other_bug_other_signature() {
    let c = crashers();
    let sig = |mode: &str| {
        let core = c.core(mode, &[]);
        analyze(core.reader(), &core.binaries(), &Limits::default())
            .unwrap()
            .signature
            .unwrap()
    };
    let first = sig("segv");
    assert_eq!(
        first,
        sig("segv"),
        "same bug, another run (other addresses)"
    );
    // The same bug in a copy of the program elsewhere (another build path) still matches.
    let moved = c.core_of(&c.moved, "segv", &[]);
    let moved_sig = analyze(moved.reader(), &moved.binaries(), &Limits::default())
        .unwrap()
        .signature
        .unwrap();
    assert_eq!(first, moved_sig);
    assert_ne!(first, sig("other"));
    // abort(): the signature skips raise/abort/__assert_fail and starts at the caller.
    let core = c.core("abort", &[]);
    let out = analyze(core.reader(), &core.binaries(), &Limits::default()).unwrap();
    let keys = coredump_analysis::signature::signature_frames(&out.analysis.threads[0].frames);
    assert_eq!(
        keys.first().map(String::as_str),
        Some("check_invariant"),
        "{keys:?}"
    );
}

#[test]
fn without_binaries_frame_pointers_and_offsets() {
    let c = crashers();
    let core = c.core("segv", &[]);
    let out = analyze(core.reader(), &NoBinaries, &Limits::default()).unwrap();
    let t = &out.analysis.threads[0];
    assert!(t.frames.len() >= 3, "{t:#?}");
    assert!(t.frames.iter().all(|f| f.function.is_none()));
    assert!(t.frames[0].module.as_deref().unwrap().ends_with("/crash"));
    assert!(t.frames[0].offset.is_some());
    assert!(!out.analysis.complete);
    assert!(
        out.analysis
            .problems
            .iter()
            .any(|p| p.contains("not available"))
    );
    // Offsets alone still make a signature, and it is stable.
    let again = c.core("segv", &[]);
    let out2 = analyze(again.reader(), &NoBinaries, &Limits::default()).unwrap();
    assert_eq!(out.signature, out2.signature);
}

#[test]
fn truncated_core_gives_a_partial_backtrace_and_says_so() {
    let c = crashers();
    let core = c.core("segv", &[]);
    let whole = core.bytes.len();
    // Cut inside the memory segments: headers and notes stay, the stack's page may go.
    for keep in [whole * 3 / 4, whole / 2, 8192] {
        let cut = core.truncated(keep);
        let out = analyze(cut.reader(), &cut.binaries(), &Limits::default()).unwrap();
        assert!(!out.analysis.complete, "keep {keep}");
        assert!(
            out.analysis
                .problems
                .iter()
                .any(|p| p.contains("truncated")),
            "keep {keep}: {:?}",
            out.analysis.problems
        );
        assert!(!out.analysis.threads.is_empty(), "keep {keep}");
        // The innermost frame comes from the registers alone.
        assert!(out.analysis.threads[0].frames[0].pc.starts_with("0x"));
    }
    // Cut inside the headers: not a core any more, a typed error.
    assert!(analyze(core.truncated(10).reader(), &NoBinaries, &Limits::default()).is_err());
}

#[test]
fn rust_panic_abort_starts_the_signature_at_the_panicking_function() {
    let c = crashers();
    let bin = coredump_testkit::native::rust_abort();
    let core = c.core_of(bin, "port", &[]);
    let out = analyze(core.reader(), &core.binaries(), &Limits::default()).unwrap();
    let names = functions(&out.analysis.threads[0]);
    assert!(names.iter().any(|f| f == "panic::parse_port"), "{names:#?}");
    let keys = coredump_analysis::signature::signature_frames(&out.analysis.threads[0].frames);
    assert!(
        !coredump_analysis::signature::is_machinery(&keys[0]),
        "the panic machinery is skipped: {keys:?}"
    );
    assert!(keys.iter().any(|k| k == "panic::parse_port"), "{keys:?}");
    let other = c.core_of(bin, "index", &[]);
    let other = analyze(other.reader(), &other.binaries(), &Limits::default()).unwrap();
    assert_ne!(out.signature, other.signature);
}

#[test]
fn go_crash_names_go_functions() {
    let c = crashers();
    let bin = coredump_testkit::native::go();
    let core = c.core_of(bin, "x", &[]);
    let out = analyze(core.reader(), &core.binaries(), &Limits::default()).unwrap();
    let names = functions(&out.analysis.threads[0]);
    assert_eq!(
        &names[..3],
        ["main.store", "main.parse", "main.main"],
        "{names:#?}"
    );
    let top = &out.analysis.threads[0].frames[0];
    assert!(
        top.file.as_deref().is_some_and(|f| f.ends_with("crash.go")),
        "{top:?}"
    );
}

#[test]
fn unwinding_crosses_signal_frames() {
    let c = crashers();
    // gdb would stop at the SIGUSR1 first; pass it on to the handler.
    let core = c.core_with(&c.debug, "handle SIGUSR1 nostop noprint pass", "handler");
    let out = analyze(core.reader(), &core.binaries(), &Limits::default()).unwrap();
    let names = functions(&out.analysis.threads[0]);
    let at = |n: &str| names.iter().position(|f| f == n);
    let (Some(h), Some(s), Some(sender), Some(main)) = (
        at("on_signal"),
        at("<signal handler called>"),
        at("send_signal"),
        at("main"),
    ) else {
        panic!("{names:#?}");
    };
    assert!(h < s && s < sender && sender < main, "{names:#?}");
}
