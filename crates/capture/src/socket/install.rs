//! Choosing how crashes reach us and pointing the kernel there: the coredump socket when the
//! kernel has it, the pipe handler otherwise, with the ordering that keeps every crash answered
//! (the server listens before `core_pattern` names it; on shutdown `core_pattern` is restored
//! before the server stops).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::kernel::{KernelPaths, PatternGuard, PatternLock};
use crate::socket::server::{CaptureServer, ServerConfig};
use crate::socket::stats::ServerStats;
use crate::{CaptureError, HandlerConfig};

/// Where the kernel lists the `core_pattern` modes it supports (`file pipe socket`).
pub const CORE_MODES: &str = "/proc/sys/kernel/core_modes";

/// The first release with the request protocol (`@@`); 6.16 has `@` and `core_modes` only.
const REQUEST_PROTOCOL_SINCE: (u32, u32) = (6, 17);

/// How crashes reach the long-running process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureMode {
    /// The socket when the kernel supports it, else the pipe.
    #[default]
    Auto,
    /// The kernel's coredump socket (`@@`); an error where unsupported.
    Socket,
    /// The `core_pattern` pipe handler, one process per crash.
    Pipe,
}

impl FromStr for CaptureMode {
    type Err = String;
    fn from_str(s: &str) -> Result<CaptureMode, String> {
        match s {
            "auto" => Ok(CaptureMode::Auto),
            "socket" => Ok(CaptureMode::Socket),
            "pipe" => Ok(CaptureMode::Pipe),
            other => Err(format!(
                "unknown capture mode {other:?} (auto, socket or pipe)"
            )),
        }
    }
}

impl fmt::Display for CaptureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CaptureMode::Auto => "auto",
            CaptureMode::Socket => "socket",
            CaptureMode::Pipe => "pipe",
        })
    }
}

/// Whether this kernel takes `@@<socket>` in `core_pattern`: `socket` in
/// `/proc/sys/kernel/core_modes` and a release with the request protocol.
pub fn socket_supported() -> bool {
    socket_supported_at(Path::new(CORE_MODES))
}

/// [`socket_supported`] reading the modes from `core_modes` (tests point it at a fake file to
/// play an older kernel).
pub fn socket_supported_at(core_modes: &Path) -> bool {
    let listed = crate::fsutil::read_bounded(core_modes, 4096)
        .map(|bytes| lists_socket(&String::from_utf8_lossy(&bytes)))
        .unwrap_or(false);
    listed
        && release_at_least(
            &rustix::system::uname().release().to_string_lossy(),
            REQUEST_PROTOCOL_SINCE,
        )
}

/// Whether a `core_modes` text lists `socket`.
fn lists_socket(modes: &str) -> bool {
    modes.split_ascii_whitespace().any(|m| m == "socket")
}

/// Whether a kernel release string (`6.18.44-fc-v669`) is at least `major.minor`.
fn release_at_least(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

/// How long the server keeps listening after `core_pattern` stopped naming it: a crash whose
/// kernel task read the old pattern an instant before the switch connects right after it, and
/// a connection arriving after the listener's last accept would be reset (a lost core).
const SWITCH_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// What [`install`] needs.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Requested mode.
    pub mode: CaptureMode,
    /// `core_modes` to consult (normally [`CORE_MODES`]).
    pub core_modes: PathBuf,
    /// The kernel settings and the run directory (the socket goes there too).
    pub kernel: KernelPaths,
    /// The pipe pattern (`|<handler> handle ...`): pipe mode's pattern, and socket mode's
    /// fallback while the server is not there (installed first, handed over to on a restart).
    pub pipe_pattern: String,
    /// `core_pipe_limit` to install with the pipe pattern.
    pub pipe_limit: u32,
    /// Who owns the settings, for error messages (the data directory).
    pub owner: String,
    /// Limits and spool for the socket server.
    pub handler: HandlerConfig,
}

/// The kernel pointed at us; restores the previous pattern and then stops the server on
/// [`Installed::shutdown`] or drop, or leaves the kernel to the pipe handler for the next
/// owner on [`Installed::hand_over`].
#[derive(Debug)]
pub struct Installed {
    mode: CaptureMode,
    guard: PatternGuard,
    server: Option<CaptureServer>,
    pipe_pattern: String,
    fallback: Option<String>,
}

impl Installed {
    /// `Socket` or `Pipe`: what was installed.
    pub fn mode(&self) -> CaptureMode {
        self.mode
    }

    /// The pattern installed.
    pub fn pattern(&self) -> &str {
        &self.guard.record().installed_pattern
    }

    /// The pattern that was there before, restored on shutdown.
    pub fn previous_pattern(&self) -> &str {
        &self.guard.record().previous_pattern
    }

    /// Why `auto` took the pipe, when it did.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The socket server, in socket mode.
    pub fn server(&self) -> Option<&CaptureServer> {
        self.server.as_ref()
    }

    /// Restores the previous pattern, then stops the server (finishing the captures in flight).
    /// Returns the server's final counters in socket mode.
    pub fn shutdown(mut self) -> Result<Option<ServerStats>, CaptureError> {
        let restored = self.guard.restore();
        let stats = self.stop_server();
        restored.map(|()| stats)
    }

    /// For a restart: points `core_pattern` at the pipe handler (which spools without us) and
    /// keeps the record for the next owner, then stops the server, which still accepts what
    /// the kernel queued before the switch and finishes the captures in flight. No crash finds
    /// the socket closed.
    pub fn hand_over(mut self) -> Result<Option<ServerStats>, CaptureError> {
        let handed = self.guard.hand_over(&self.pipe_pattern);
        let stats = self.stop_server();
        handed.map(|()| stats)
    }

    /// Stops the server once `core_pattern` no longer names it, after [`SWITCH_GRACE`].
    fn stop_server(&mut self) -> Option<ServerStats> {
        let server = self.server.take()?;
        std::thread::sleep(SWITCH_GRACE);
        Some(server.stop())
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = self.guard.restore();
        self.stop_server();
    }
}

/// Resolves the mode and points the kernel at us (see [`install_locked`]), taking the
/// ownership lock first.
pub fn install(options: InstallOptions) -> Result<Installed, CaptureError> {
    let lock = PatternLock::acquire(options.kernel.clone(), &options.owner)?;
    install_locked(lock, options)
}

/// Points the kernel at us under a lock already taken (so a caller can prepare the handler's
/// files between the two). The pipe pattern goes in first, adopting a predecessor's without
/// a gap; in socket mode the server then listens on `<run_dir>/capture-<pid>.sock` and
/// `core_pattern` switches to `@@<that path>`. `auto` keeps the pipe, saying why once, when
/// the kernel lacks the socket, the server cannot start or the kernel refuses the pattern
/// (it does from outside the initial mount namespace, e.g. in a container). Sockets left by
/// killed owners are removed once ours listens.
pub fn install_locked(
    lock: PatternLock,
    options: InstallOptions,
) -> Result<Installed, CaptureError> {
    let supported = socket_supported_at(&options.core_modes);
    let requirement = || {
        format!(
            "needs Linux >= {}.{} with `socket` in {}",
            REQUEST_PROTOCOL_SINCE.0,
            REQUEST_PROTOCOL_SINCE.1,
            options.core_modes.display()
        )
    };
    if options.mode == CaptureMode::Socket && !supported {
        return Err(CaptureError::Sysctl {
            name: "kernel.core_pattern",
            message: format!("capture mode socket {}", requirement()),
        });
    }
    let guard = lock.install(&options.pipe_pattern, options.pipe_limit)?;
    let mut installed = Installed {
        mode: CaptureMode::Pipe,
        guard,
        server: None,
        pipe_pattern: options.pipe_pattern.clone(),
        fallback: None,
    };
    let fallback = match options.mode {
        CaptureMode::Pipe => return Ok(installed),
        CaptureMode::Auto if !supported => format!("the coredump socket {}", requirement()),
        CaptureMode::Auto | CaptureMode::Socket => match start_socket(&mut installed, &options) {
            Ok(()) => return Ok(installed),
            Err(e) if options.mode == CaptureMode::Auto => e.to_string(),
            // Dropping `installed` restores what was there before.
            Err(e) => return Err(e),
        },
    };
    tracing::warn!(reason = %fallback, "capture mode auto: using the pipe handler");
    installed.fallback = Some(fallback);
    Ok(installed)
}

/// Starts the server and switches `core_pattern` to it; on failure the pipe stays installed.
fn start_socket(installed: &mut Installed, options: &InstallOptions) -> Result<(), CaptureError> {
    let path = options
        .kernel
        .run_dir
        .join(format!("capture-{}.sock", std::process::id()));
    let server = CaptureServer::start(ServerConfig::new(&path, options.handler.clone()))?;
    // On failure the server is dropped, which stops it and removes its socket.
    installed.guard.switch_to(&server.pattern())?;
    remove_stale_sockets(&options.kernel.run_dir, &path);
    installed.mode = CaptureMode::Socket;
    installed.server = Some(server);
    Ok(())
}

/// Removes `capture-*.sock` files other than `keep` from `dir`: sockets of killed instances.
fn remove_stale_sockets(dir: &Path, keep: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = name.starts_with("capture-") && name.ends_with(".sock");
        let socket = entry.file_type().is_ok_and(|t| t.is_socket());
        if ours && socket && path != keep {
            let _ = std::fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for mode in [CaptureMode::Auto, CaptureMode::Socket, CaptureMode::Pipe] {
            assert_eq!(mode.to_string().parse::<CaptureMode>(), Ok(mode));
        }
        assert!("sockets".parse::<CaptureMode>().is_err());
        assert_eq!(CaptureMode::default(), CaptureMode::Auto);
    }

    #[test]
    fn core_modes_text() {
        assert!(lists_socket("file\npipe\nsocket\n"));
        assert!(!lists_socket("file\npipe\n"));
        assert!(!lists_socket("file pipe sockets"));
    }

    #[test]
    fn releases() {
        assert!(release_at_least("6.18.44-fc-v669", (6, 17)));
        assert!(release_at_least("6.17.0", (6, 17)));
        assert!(release_at_least("7.0.1", (6, 17)));
        assert!(!release_at_least("6.16.3-arch1", (6, 17)));
        assert!(!release_at_least("5.19.0", (6, 17)));
        assert!(!release_at_least("garbage", (6, 17)));
    }

    #[test]
    fn missing_or_socketless_core_modes_means_no_socket() {
        let tmp = tempfile::tempdir().unwrap();
        let modes = tmp.path().join("core_modes");
        assert!(!socket_supported_at(&modes));
        std::fs::write(&modes, "file\npipe\n").unwrap();
        assert!(!socket_supported_at(&modes));
    }

    #[test]
    fn pipe_mode_installs_the_pipe_pattern_with_no_server() {
        let tmp = tempfile::tempdir().unwrap();
        let kernel = KernelPaths::scratch(tmp.path());
        std::fs::write(&kernel.core_pattern, "core\n").unwrap();
        std::fs::write(&kernel.core_pipe_limit, "0\n").unwrap();
        let modes = tmp.path().join("core_modes");
        std::fs::write(&modes, "file\npipe\n").unwrap();
        let options = InstallOptions {
            mode: CaptureMode::Auto,
            core_modes: modes,
            kernel: kernel.clone(),
            pipe_pattern: "|/x handle".into(),
            pipe_limit: 8,
            owner: "test".into(),
            handler: HandlerConfig {
                spool_dir: tmp.path().join("spool"),
                ..HandlerConfig::default()
            },
        };
        let installed = install(options.clone()).unwrap();
        assert_eq!(installed.mode(), CaptureMode::Pipe, "auto falls back");
        assert!(
            installed.fallback_reason().unwrap().contains("needs Linux"),
            "{:?}",
            installed.fallback_reason()
        );
        assert_eq!(installed.pattern(), "|/x handle");
        assert!(installed.server().is_none());
        assert_eq!(installed.shutdown().unwrap(), None);
        assert_eq!(
            std::fs::read_to_string(&kernel.core_pattern).unwrap(),
            "core\n"
        );
        let err = install(InstallOptions {
            mode: CaptureMode::Socket,
            ..options
        })
        .unwrap_err();
        assert!(err.to_string().contains("needs Linux"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&kernel.core_pattern).unwrap(),
            "core\n",
            "a refused socket mode touches nothing"
        );
    }
}
