//! Crash signatures: one short hash per bug, so a crash loop's thousand cores are one problem.
//!
//! The hash covers the crashing thread's top frames after the machinery that only reports a
//! crash (`abort`, `raise`, `__assert_fail`, Rust's panic runtime, Go's `runtime.crash` path) is
//! skipped. A frame counts by its function name when known, else by the file name of its module
//! and its offset there: never absolute addresses (ASLR) and never directories (build paths,
//! container roots). Source lines are left out, so an unrelated edit above the function does not
//! split one bug into two.

use coredump_api::Frame;
use sha2::{Digest, Sha256};

/// Frames that make up a signature.
pub const SIGNATURE_FRAMES: usize = 5;

/// Whether `function` only reports a crash rather than causing it (the list lives in
/// `coredump-api` so that clients share it).
pub use coredump_api::analysis::is_crash_machinery as is_machinery;

/// The key of one frame: function name, else `module-file-name+offset`, else nothing.
fn frame_key(frame: &Frame) -> Option<String> {
    if let Some(f) = &frame.function {
        // Rust legacy mangling leaves a `::h<16 hex>` hash that changes with every build.
        let f = match f.rsplit_once("::h") {
            Some((head, hash))
                if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                head
            }
            _ => f.as_str(),
        };
        return Some(f.to_owned());
    }
    let module = frame.module.as_deref()?;
    let name = module.rsplit('/').next().unwrap_or(module);
    let name = name.trim_end_matches(" (deleted)");
    Some(format!("{name}+{}", frame.offset.as_deref()?))
}

/// The frames a signature is made of: the first [`SIGNATURE_FRAMES`] of `frames` (innermost
/// first) after the crash machinery. The machinery is the leading run of frames that are
/// either known machinery or unnamed (libc's internal helpers have no exported name), up to
/// its last known machinery frame. When every frame is machinery, the machinery itself is used
/// (a crash inside `abort` is still a bug with a place).
pub fn signature_frames(frames: &[Frame]) -> Vec<String> {
    let mut skip = 0;
    for (i, f) in frames.iter().enumerate() {
        match f.function.as_deref() {
            Some(name) if is_machinery(name) => skip = i + 1,
            None => {}
            Some(_) => break,
        }
    }
    let from = if skip == frames.len() { 0 } else { skip };
    frames[from..]
        .iter()
        .filter_map(frame_key)
        .take(SIGNATURE_FRAMES)
        .collect()
}

/// The signature of a crashing thread's frames: 16 hex digits of SHA-256 over the signature
/// frames and the signal, or `None` when no frame could be named at all.
pub fn signature(signal: i32, frames: &[Frame]) -> Option<String> {
    let keys = signature_frames(frames);
    if keys.is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    h.update(signal.to_string());
    for k in &keys {
        h.update([0u8]);
        h.update(k.as_bytes());
    }
    Some(hex::encode(&h.finalize()[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(function: Option<&str>, module: &str, offset: &str) -> Frame {
        Frame {
            pc: "0x1".into(),
            module: Some(module.into()),
            offset: Some(offset.into()),
            function: function.map(str::to_owned),
            ..Frame::default()
        }
    }

    #[test]
    fn machinery_is_skipped_and_paths_do_not_matter() {
        let a = vec![
            f(
                Some("__pthread_kill_implementation"),
                "/lib/libc.so.6",
                "0x10",
            ),
            f(Some("raise"), "/lib/libc.so.6", "0x20"),
            f(Some("abort"), "/lib/libc.so.6", "0x30"),
            f(Some("parse_config"), "/build/a/app", "0x40"),
            f(None, "/build/a/app", "0x50"),
        ];
        assert_eq!(signature_frames(&a), vec!["parse_config", "app+0x50"]);
        // libc's unexported helpers between the machinery frames are machinery too.
        let mut hidden = a.clone();
        hidden[1].function = None;
        assert_eq!(signature_frames(&hidden), vec!["parse_config", "app+0x50"]);
        // Unnamed frames alone are kept: they are all there is.
        let unnamed: Vec<Frame> = a
            .iter()
            .map(|f| Frame {
                function: None,
                ..f.clone()
            })
            .collect();
        assert_eq!(signature_frames(&unnamed).len(), 5);
        let mut b = a.clone();
        // Another build directory, another libc, other addresses: same bug.
        b[0].module = Some("/usr/lib64/libc.so.6".into());
        b[3].module = Some("/src/other/app".into());
        b[4].module = Some("/src/other/app (deleted)".into());
        b[3].pc = "0x7777".into();
        assert_eq!(signature(6, &a), signature(6, &b));
        assert_ne!(
            signature(6, &a),
            signature(11, &a),
            "the signal is part of it"
        );
        let mut c = a.clone();
        c[3].function = Some("load_plugin".into());
        assert_ne!(signature(6, &a), signature(6, &c));
    }

    #[test]
    fn rust_and_go_machinery() {
        for m in [
            "std::panicking::begin_panic_handler::{{closure}}",
            "core::panicking::panic_fmt",
            "runtime.fatalpanic.func1",
            "runtime.raise",
            "__rustc::rust_panic",
            "__rustc::__rust_abort",
            "std::panicking::panic_handler::{closure#0}",
        ] {
            assert!(is_machinery(m), "{m}");
        }
        for not in ["main.main", "crasher::main", "rawhide", "abort_transaction"] {
            assert!(!is_machinery(not), "{not}");
        }
    }

    #[test]
    fn rust_hash_suffix_ignored() {
        let a = [f(Some("crasher::boom::h0123456789abcdef"), "/a", "0x1")];
        let b = [f(Some("crasher::boom::hfedcba9876543210"), "/a", "0x1")];
        assert_eq!(signature(6, &a), signature(6, &b));
    }

    #[test]
    fn nothing_named_no_signature() {
        assert_eq!(signature(11, &[]), None);
        let unnamed = Frame {
            pc: "0x1".into(),
            ..Frame::default()
        };
        assert_eq!(signature(11, &[unnamed]), None);
    }
}
