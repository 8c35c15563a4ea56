//! The agent's footprint on the host: the handler binary and its `handler.json` in the host
//! directory (a hostPath mounted at the same path in the agent's container, because the kernel
//! runs the handler in the host's mount namespace), the spool, and the run directory where the
//! kernel-settings lock and the record of the replaced `core_pattern` live.
//!
//! The binary is copied to a temporary name, fsynced and renamed over the old one: a handler
//! the kernel started a moment ago keeps executing its old file, the next crash gets the new one
//! whole, and nobody ever writes into a running executable ("text file busy").

use std::path::{Path, PathBuf};

use coredump_capture::config::HANDLER_CONFIG;
use coredump_capture::handler::PATTERN_SPECIFIERS;
use coredump_capture::spool::create_private_dir_all;
use coredump_capture::{CaptureError, HandlerConfig};

/// Paths inside the host directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLayout {
    /// The host directory.
    pub root: PathBuf,
    /// The installed handler binary (what `core_pattern` names).
    pub handler_bin: PathBuf,
    /// Its configuration.
    pub handler_config: PathBuf,
    /// Spool of finished captures.
    pub spool: PathBuf,
    /// Lock and record of the kernel settings we replaced (survives the agent, so the next one
    /// repairs what a killed one left).
    pub run: PathBuf,
}

impl HostLayout {
    /// The layout under `root`.
    pub fn new(root: &Path) -> HostLayout {
        let bin = root.join("bin");
        HostLayout {
            root: root.to_path_buf(),
            handler_bin: bin.join("coredump-detector"),
            handler_config: bin.join(HANDLER_CONFIG),
            spool: root.join("spool"),
            run: root.join("run"),
        }
    }

    /// Directory of the crash-loop limits' pod policies and bucket state
    /// (`coredump_capture::limits`).
    pub fn limits_dir(&self) -> PathBuf {
        self.root.join("limits")
    }

    /// The `core_pattern` that pipes crashes to the installed handler.
    pub fn pattern(&self) -> String {
        format!(
            "|{} handle {PATTERN_SPECIFIERS}",
            self.handler_bin.display()
        )
    }

    /// Creates the directories (mode 0700).
    pub fn create(&self) -> Result<(), CaptureError> {
        for dir in [&self.root, &self.spool, &self.run] {
            create_private_dir_all(dir)?;
        }
        if let Some(bin) = self.handler_bin.parent() {
            create_private_dir_all(bin)?;
        }
        Ok(())
    }
}

/// Copies `source` (this binary) to the handler path atomically. Nothing happens when it is the
/// handler path already.
pub fn install_binary(source: &Path, layout: &HostLayout) -> Result<(), CaptureError> {
    if source == layout.handler_bin {
        return Ok(());
    }
    coredump_common::atomic_file::copy(source, &layout.handler_bin, 0o755)
        .map_err(|e| CaptureError::io("install handler as", e.path, e.source))
}

/// The pipe to forward non-pod crashes to: the previous `core_pattern` when it is a pipe that
/// is not our own handler (forwarding to ourselves would loop).
pub fn forward_target(previous: &str, handler_bin: &Path) -> Option<String> {
    let command = previous
        .strip_prefix('|')?
        .split(' ')
        .find(|t| !t.is_empty())?;
    let ours = Path::new(command) == handler_bin
        || Path::new(command).file_name() == handler_bin.file_name()
            && previous.contains(" handle ");
    (!ours).then(|| previous.to_string())
}

/// Writes the handler configuration atomically.
pub fn write_config(layout: &HostLayout, config: &HandlerConfig) -> Result<(), CaptureError> {
    config.store(&layout.handler_config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_pattern() {
        let l = HostLayout::new(Path::new("/var/lib/coredump-detector"));
        assert_eq!(
            l.pattern(),
            "|/var/lib/coredump-detector/bin/coredump-detector handle %P %I %s %t %u %g %d %h %e %E %f"
        );
        assert!(l.pattern().len() <= coredump_capture::kernel::CORE_PATTERN_MAX);
        assert_eq!(
            l.handler_config,
            Path::new("/var/lib/coredump-detector/bin/handler.json")
        );
    }

    #[test]
    fn forward_only_to_a_foreign_pipe() {
        let ours = Path::new("/var/lib/coredump-detector/bin/coredump-detector");
        let systemd = "|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h";
        assert_eq!(forward_target(systemd, ours).as_deref(), Some(systemd));
        assert_eq!(forward_target("core", ours), None);
        assert_eq!(forward_target("@@/run/x.sock", ours), None);
        assert_eq!(
            forward_target(
                "|/var/lib/coredump-detector/bin/coredump-detector handle %P %I %s %t %u %g",
                ours
            ),
            None
        );
        assert_eq!(
            forward_target(
                "|/other/dir/coredump-detector handle %P %I %s %t %u %g",
                ours
            ),
            None,
            "another install of ours (e.g. standalone) would loop too"
        );
        assert_eq!(forward_target("|", ours), None);
    }

    #[test]
    fn binary_is_replaced_whole_and_a_running_copy_keeps_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = HostLayout::new(&tmp.path().join("host"));
        layout.create().unwrap();
        let v1 = tmp.path().join("v1");
        let v2 = tmp.path().join("v2");
        std::fs::write(&v1, b"version one").unwrap();
        std::fs::write(&v2, b"version two, longer").unwrap();
        install_binary(&v1, &layout).unwrap();
        let held = std::fs::File::open(&layout.handler_bin).unwrap();
        install_binary(&v2, &layout).unwrap();
        assert_eq!(
            std::fs::read(&layout.handler_bin).unwrap(),
            b"version two, longer"
        );
        let mut old = Vec::new();
        std::io::Read::read_to_end(&mut &held, &mut old).unwrap();
        assert_eq!(old, b"version one", "an open handler keeps its own file");
        let leftovers: Vec<_> = std::fs::read_dir(layout.handler_bin.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers,
            vec![std::ffi::OsString::from("coredump-detector")]
        );
    }
}
