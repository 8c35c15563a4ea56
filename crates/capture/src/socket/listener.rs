//! The listening socket: a root-only directory, a socket file only root can reach (the kernel
//! reaches it anyway: it looks the path up with kernel credentials), a stale socket of a killed
//! server replaced, anything else at the path left alone.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;

use crate::CaptureError;
use crate::spool::create_private_dir_all;

/// Pending connections the kernel may queue before `connect` fails (capped by
/// `net.core.somaxconn`); a full queue loses the crash (`receive queue full` in the kernel log).
const BACKLOG: i32 = 4096;

/// Binds a listening socket at `path` in a root-only directory.
pub(crate) fn bind(path: &Path) -> Result<UnixListener, CaptureError> {
    let dir = path.parent().ok_or_else(|| CaptureError::Socket {
        path: path.to_path_buf(),
        message: "the socket path has no directory".into(),
    })?;
    create_private_dir_all(dir)?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| CaptureError::io("stat", dir, e))?;
    if !meta.is_dir() || meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(CaptureError::Socket {
            path: path.to_path_buf(),
            message: format!("{} is not a directory owned by us", dir.display()),
        });
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| CaptureError::io("chmod 0700", dir, e))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // Left by a server that was killed: nobody listens there any more (a live owner
            // of the same path would hold the core_pattern lock, checked by the caller).
            std::fs::remove_file(path).map_err(|e| CaptureError::io("remove stale", path, e))?;
        }
        Ok(_) => {
            return Err(CaptureError::Socket {
                path: path.to_path_buf(),
                message: "exists and is not a socket; refusing to replace it".into(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CaptureError::io("stat", path, e)),
    }
    let io = |op: &'static str| move |e: rustix::io::Errno| CaptureError::io(op, path, e.into());
    let fd = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK,
        None,
    )
    .map_err(io("create socket for"))?;
    let addr = rustix::net::SocketAddrUnix::new(path).map_err(io("address"))?;
    rustix::net::bind(&fd, &addr).map_err(io("bind"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| CaptureError::io("chmod 0600", path, e))?;
    rustix::net::listen(&fd, BACKLOG).map_err(io("listen on"))?;
    Ok(UnixListener::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::CaptureServer;
    use std::os::unix::net::UnixStream;

    use crate::socket::test_config as config;

    #[test]
    fn a_stale_socket_is_replaced_but_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path());
        std::fs::create_dir_all(cfg.socket_path.parent().unwrap()).unwrap();
        // What a killed server leaves: a socket file nobody listens on.
        drop(UnixListener::bind(&cfg.socket_path).unwrap());
        assert!(UnixStream::connect(&cfg.socket_path).is_err(), "stale");
        let server = CaptureServer::start(cfg.clone()).unwrap();
        assert!(
            UnixStream::connect(&cfg.socket_path).is_ok(),
            "listening again"
        );
        drop(server);

        std::fs::write(&cfg.socket_path, b"not a socket").unwrap();
        let err = CaptureServer::start(cfg.clone()).unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&cfg.socket_path).unwrap(), b"not a socket");
    }
}
