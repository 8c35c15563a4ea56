//! The images the node runs, built here and imported into its containerd, no registry and no
//! daemon involved:
//!
//! * `coredump-detector`: the binary under test at `/usr/local/bin/coredump-detector`, the path
//!   the manifest runs. A statically linked binary (the Dockerfile's, from
//!   `scripts/build-image-binary.sh`) goes in alone; a dynamically linked one (the workspace's
//!   debug build, what the test suite has at hand) goes in with the libraries `ldd` names, at
//!   the same paths;
//! * the sandbox (pause) image and the crasher image, small C programs (`images/*.c`) linked
//!   statically, the crasher with symbols so gdb names its functions from a core;
//! * etcd: the etcd the control plane runs (built by `scripts/control-plane/build.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::configs::SANDBOX_IMAGE;
use crate::error::{NodeError, run};
use crate::oci::{ImageFile, ImageSpec, qualified, write_archive};

/// Where the manifest runs the binary.
pub const DETECTOR_PATH: &str = "/usr/local/bin/coredump-detector";
/// The crasher inside its image.
pub const CRASHER_PATH: &str = "/usr/local/bin/crasher";

/// The references of the images the node holds (as pods name them).
#[derive(Debug, Clone)]
pub struct Images {
    /// The detector image (`--image` of `deploy`).
    pub detector: String,
    /// The etcd image (`--etcd-image` of `deploy`).
    pub etcd: String,
    /// The crasher image.
    pub crasher: String,
    /// The crasher program on this machine (the same file as in the image): gdb reads its
    /// symbols.
    pub crasher_bin: PathBuf,
    /// The detector binary that went into the image.
    pub detector_bin: PathBuf,
}

/// What goes into the images.
#[derive(Debug, Clone)]
pub struct ImageInputs {
    /// The `coredump-detector` binary.
    pub detector_bin: PathBuf,
    /// The `etcd` binary.
    pub etcd_bin: PathBuf,
}

/// Builds every image into `dir` as an OCI archive and returns the archives with the
/// references.
pub fn build(inputs: &ImageInputs, dir: &Path) -> Result<(Images, Vec<PathBuf>), NodeError> {
    std::fs::create_dir_all(dir).map_err(|e| NodeError::io("create directory", dir, e))?;
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("images");
    let pause = compile_c(&sources.join("pause.c"), &dir.join("pause"), false)?;
    let crasher = compile_c(&sources.join("crasher.c"), &dir.join("crasher"), true)?;
    let etcd_version = version_tag(&inputs.etcd_bin);
    let detector_kind = if is_static(&inputs.detector_bin)? {
        "static"
    } else {
        "dynamic"
    };
    let images = Images {
        detector: format!("coredump-detector:test-{detector_kind}"),
        etcd: format!("coredump-test/etcd:{etcd_version}"),
        crasher: "coredump-test/crasher:1".to_string(),
        crasher_bin: crasher.clone(),
        detector_bin: inputs.detector_bin.clone(),
    };
    let file = |path: &str, source: &Path| ImageFile {
        path: path.to_string(),
        source: source.to_path_buf(),
        mode: 0o755,
    };
    let mut detector_files = vec![file(DETECTOR_PATH, &inputs.detector_bin)];
    detector_files.extend(shared_libraries(&inputs.detector_bin)?);
    let specs = [
        ImageSpec {
            name: qualified(SANDBOX_IMAGE),
            files: vec![file("/pause", &pause)],
            entrypoint: vec!["/pause".into()],
        },
        ImageSpec {
            name: qualified(&images.detector),
            files: detector_files,
            entrypoint: vec![DETECTOR_PATH.into()],
        },
        ImageSpec {
            name: qualified(&images.etcd),
            files: vec![file("/usr/local/bin/etcd", &inputs.etcd_bin)],
            entrypoint: vec!["/usr/local/bin/etcd".into()],
        },
        ImageSpec {
            name: qualified(&images.crasher),
            files: vec![file(CRASHER_PATH, &crasher)],
            entrypoint: vec![CRASHER_PATH.into()],
        },
    ];
    let mut archives = Vec::new();
    for spec in &specs {
        let name = spec
            .name
            .rsplit('/')
            .next()
            .unwrap_or("image")
            .replace(':', "_");
        let out = dir.join(format!("{name}.oci.tar"));
        write_archive(spec, &out, dir)?;
        archives.push(out);
    }
    Ok((images, archives))
}

/// `ctr -a <socket> -n k8s.io images import <archive>`: visible to the CRI, unpacked for the
/// overlay snapshotter.
pub fn import(socket: &Path, archive: &Path) -> Result<(), NodeError> {
    let mut ctr = Command::new("ctr");
    ctr.arg("-a")
        .arg(socket)
        .args(["-n", "k8s.io", "images", "import"])
        .arg(archive);
    run(ctr).map(drop)
}

/// `cc -static` of one C file (with debug symbols when `symbols`).
fn compile_c(source: &Path, out: &Path, symbols: bool) -> Result<PathBuf, NodeError> {
    let mut cc = Command::new("cc");
    cc.args(["-static", "-O1", "-Wall"]);
    if symbols {
        cc.arg("-g");
    }
    cc.arg("-o").arg(out).arg(source);
    run(cc)?;
    Ok(out.to_path_buf())
}

/// Whether `bin` needs no dynamic loader (`ldd` says so).
fn is_static(bin: &Path) -> Result<bool, NodeError> {
    Ok(ldd(bin)?.is_empty())
}

/// The shared libraries `bin` loads, as image files at the paths `ldd` names (the loader
/// included); empty for a static binary.
fn shared_libraries(bin: &Path) -> Result<Vec<ImageFile>, NodeError> {
    Ok(ldd(bin)?
        .into_iter()
        .map(|path| ImageFile {
            source: std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone()),
            path: path.display().to_string(),
            mode: 0o755,
        })
        .collect())
}

/// The absolute library paths in `ldd`'s output (`libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6
/// (0x…)`, `/lib64/ld-linux-x86-64.so.2 (0x…)`); `vdso` has no file.
fn ldd(bin: &Path) -> Result<Vec<PathBuf>, NodeError> {
    let output = Command::new("ldd")
        .arg(bin)
        .output()
        .map_err(|e| NodeError::io("run ldd on", bin, e))?;
    // ldd exits 1 for a static binary ("not a dynamic executable").
    Ok(parse_ldd(&String::from_utf8_lossy(&output.stdout)))
}

fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// The tag for a binary's image: its version from `--version` (`etcd Version: 3.7.3` → `v3.7.3`),
/// else `local`.
fn version_tag(bin: &Path) -> String {
    let out = Command::new(bin).arg("--version").output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.split_once("Version:").map(|(_, v)| v.trim().to_string()))
        .filter(|v| {
            !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c))
        })
        .map(|v| format!("v{}", v.trim_start_matches('v')))
        .unwrap_or_else(|| "local".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_library_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x1)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n\t/lib64/ld-linux-x86-64.so.2 (0x3)\n";
        assert_eq!(
            parse_ldd(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tnot a dynamic executable\n").is_empty());
        assert!(parse_ldd("\tstatically linked\n").is_empty());
    }
}
