//! Native crashers for the analysis tests, built once per test binary from
//! `crates/testkit/crashers/`: C with debug information, the same stripped with a separate debug
//! file, the same source built in another directory (another build path), Rust with
//! `panic = "abort"`, and Go (run it with `GOTRACEBACK=crash`). Each fails in functions of its
//! own, so a test knows which frames a correct backtrace holds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The C crasher's source (modes in its header comment).
pub const C_SOURCE: &str = include_str!("../crashers/crash.c");
/// The Rust crasher's source.
pub const RUST_SOURCE: &str = include_str!("../crashers/panic.rs");
/// The Go crasher's source.
pub const GO_SOURCE: &str = include_str!("../crashers/crash.go");

/// The built C crashers.
#[derive(Debug)]
pub struct CCrashers {
    /// Built with `-g -O1 -fno-omit-frame-pointer`.
    pub debug: PathBuf,
    /// `debug` with everything stripped (`strip --strip-all`): same build ID, no symbols.
    pub stripped: PathBuf,
    /// `debug`'s DWARF alone (`objcopy --only-keep-debug`).
    pub debug_file: PathBuf,
    /// The same source built in another directory.
    pub moved: PathBuf,
    /// A directory for scratch files of the tests (removed after the test binary exits).
    pub dir: PathBuf,
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        crate::scratch::process_scratch_dir(Path::new("/var/tmp"), "cdd-crashers-")
            .expect("scratch directory for crashers")
    })
}

fn build_c(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("crasher build directory");
    let src = dir.join("crash.c");
    std::fs::write(&src, C_SOURCE).expect("write crash.c");
    let bin = dir.join("crash");
    run(Command::new("gcc")
        .args(["-g", "-O1", "-fno-omit-frame-pointer", "-pthread", "-o"])
        .arg(&bin)
        .arg("crash.c")
        .current_dir(dir));
    bin
}

/// The C crashers (gcc, strip and objcopy must be installed: the test fails loudly otherwise).
pub fn c() -> &'static CCrashers {
    static C: OnceLock<CCrashers> = OnceLock::new();
    C.get_or_init(|| {
        let dir = scratch().join("c");
        let debug = build_c(&dir.join("a"));
        let moved = build_c(&dir.join("elsewhere/src"));
        let stripped = dir.join("crash-stripped");
        let debug_file = dir.join("crash.debug");
        run(Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(&debug)
            .arg(&debug_file));
        run(Command::new("strip")
            .arg("--strip-all")
            .arg("-o")
            .arg(&stripped)
            .arg(&debug));
        CCrashers {
            debug,
            stripped,
            debug_file,
            moved,
            dir,
        }
    })
}

/// The Rust crasher, built by this toolchain's `rustc` with `-C panic=abort`.
pub fn rust_abort() -> &'static Path {
    static R: OnceLock<PathBuf> = OnceLock::new();
    R.get_or_init(|| {
        let dir = scratch().join("rust");
        std::fs::create_dir_all(&dir).expect("rust crasher directory");
        std::fs::write(dir.join("panic.rs"), RUST_SOURCE).expect("write panic.rs");
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let bin = dir.join("panic-crash");
        run(Command::new(rustc)
            .args([
                "-C",
                "panic=abort",
                "-C",
                "debuginfo=2",
                "-C",
                "opt-level=1",
            ])
            .args(["-C", "force-frame-pointers=yes", "-o"])
            .arg(&bin)
            .arg("panic.rs")
            .current_dir(&dir));
        bin
    })
}

/// The Go crasher, built with the `go` on PATH (run it with `GOTRACEBACK=crash`).
pub fn go() -> &'static Path {
    static G: OnceLock<PathBuf> = OnceLock::new();
    G.get_or_init(|| {
        let dir = scratch().join("go");
        std::fs::create_dir_all(&dir).expect("go crasher directory");
        std::fs::write(dir.join("crash.go"), GO_SOURCE).expect("write crash.go");
        std::fs::write(dir.join("go.mod"), "module crasher\n\ngo 1.21\n").expect("write go.mod");
        let bin = dir.join("go-crash");
        run(Command::new("go")
            .args(["build", "-o"])
            .arg(&bin)
            .arg(".")
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0")
            .env("GOFLAGS", "-mod=mod")
            .current_dir(&dir));
        bin
    })
}
