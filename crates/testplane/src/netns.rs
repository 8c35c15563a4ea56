//! A network namespace of the test's own, for servers whose addresses must exist nowhere else
//! (a real node's pod network, a control plane that pods reach): created by a holder process
//! (`unshare --net`) that dies with the test binary, entered by children through
//! `nsenter --net`, and by this process through one worker thread that has moved into it
//! (`setns` affects only the calling thread), which opens sockets there: a socket keeps the
//! namespace it was created in, whichever thread uses it later.
//!
//! [`NetworkNamespace::forward_from_host`] makes a server inside reachable from the host's
//! loopback (kubectl, tests) by copying bytes between a host listener and connections opened
//! inside.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

use crate::error::HarnessError;
use crate::process::ManagedProcess;
use crate::wait::{Poll, poll_until};

type Job = Box<dyn FnOnce() + Send>;

/// A network namespace held open by a holder process; see the module documentation.
#[derive(Debug)]
pub struct NetworkNamespace {
    // Field order is drop order: the worker's channel, then the holder (the namespace goes with
    // its last process and the last open file).
    worker: Mutex<Sender<Job>>,
    _holder: ManagedProcess,
    file: File,
    path: PathBuf,
}

impl NetworkNamespace {
    /// Creates a namespace with its loopback up. `log` receives the holder's output.
    pub fn create(log: &Path) -> Result<NetworkNamespace, HarnessError> {
        let own = std::fs::metadata("/proc/self/ns/net")
            .map_err(|e| HarnessError::io("stat", "/proc/self/ns/net", e))?
            .ino();
        // `unshare` execs `sleep` in the new namespace (no fork): the parent-death signal stays.
        let args = ["--net", "--", "sleep", "infinity"].map(String::from);
        let holder = ManagedProcess::spawn("netns holder", Path::new("unshare"), &args, log)?;
        let pid = holder.pid();
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        poll_until(
            Duration::from_secs(10),
            Duration::from_millis(5),
            || {
                if let Some(status) = holder.exited() {
                    return Poll::Fail(holder.exited_error(status));
                }
                match std::fs::metadata(&path) {
                    Ok(meta) if meta.ino() != own => Poll::Ready(()),
                    Ok(_) => Poll::Pending("still in the host's namespace".into()),
                    Err(e) => Poll::Pending(e.to_string()),
                }
            },
            |waited, last| holder.not_ready_error(waited, last),
        )?;
        let file = File::open(&path).map_err(|e| HarnessError::io("open", &path, e))?;
        let worker = spawn_worker(&file).map_err(|e| HarnessError::io("enter", &path, e))?;
        let netns = NetworkNamespace {
            worker: Mutex::new(worker),
            _holder: holder,
            file,
            path,
        };
        netns.run("ip", &["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// `/proc/<holder>/ns/net`: what `nsenter --net=` takes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace itself (an open `/proc/<pid>/ns/net`), for `setns`.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// `nsenter --net=<path> -- <program>`, not started: the program runs in this namespace
    /// and in every other namespace of the caller (the host's mounts, pids, cgroups).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.path.display()))
            .arg("--")
            .arg(program);
        command
    }

    /// Runs `program args…` in the namespace to completion; stdout, or an error with stderr.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String, HarnessError> {
        let output = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| HarnessError::Spawn {
                program: PathBuf::from(program),
                source,
            })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(HarnessError::InNamespace {
                command: format!("{program} {}", args.join(" ")),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    /// Runs `f` on the thread that lives in the namespace: sockets it creates belong there.
    pub fn within<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<T> {
        let (tx, rx) = channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.worker
            .lock()
            .map_err(|_| std::io::Error::other("namespace worker lock poisoned"))?
            .send(job)
            .map_err(|_| std::io::Error::other("namespace worker is gone"))?;
        rx.recv()
            .map_err(|_| std::io::Error::other("namespace worker dropped the job"))
    }

    /// A TCP connection to `addr` opened inside the namespace.
    pub fn connect(&self, addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
        self.within(move || TcpStream::connect_timeout(&addr, timeout))?
    }

    /// A UDP socket bound to `addr` inside the namespace.
    pub fn bind_udp(&self, addr: SocketAddr) -> std::io::Result<UdpSocket> {
        self.within(move || UdpSocket::bind(addr))?
    }

    /// A TCP listener bound to `addr` inside the namespace.
    pub fn bind_tcp(&self, addr: SocketAddr) -> std::io::Result<TcpListener> {
        self.within(move || TcpListener::bind(addr))?
    }

    /// Makes `target` (an address inside the namespace) reachable at `127.0.0.1:<returned
    /// port>` on the host: every accepted connection is joined to a new connection to `target`
    /// opened inside. Runs until this process exits.
    pub fn forward_from_host(&self, target: SocketAddr) -> Result<u16, HarnessError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|source| HarnessError::Port { source })?;
        let port = listener
            .local_addr()
            .map_err(|source| HarnessError::Port { source })?
            .port();
        let file = self
            .file
            .try_clone()
            .map_err(|e| HarnessError::io("duplicate", &self.path, e))?;
        let dialer = spawn_worker(&file).map_err(|e| HarnessError::io("enter", &self.path, e))?;
        std::thread::Builder::new()
            .name(format!("netns-forward-{port}"))
            .spawn(move || accept_loop(listener, dialer, target))
            .map_err(|e| HarnessError::io("start a forwarder for", &self.path, e))?;
        Ok(port)
    }
}

/// A thread that moves into the namespace of `ns` and runs the jobs it is sent.
fn spawn_worker(ns: &File) -> std::io::Result<Sender<Job>> {
    let ns = ns.try_clone()?;
    let (tx, rx) = channel::<Job>();
    let (ready_tx, ready_rx) = channel();
    std::thread::Builder::new()
        .name("netns-worker".into())
        .spawn(move || {
            let entered = rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            );
            let ok = entered.is_ok();
            let _ = ready_tx.send(entered.map_err(std::io::Error::from));
            if ok {
                for job in rx {
                    job();
                }
            }
        })?;
    ready_rx
        .recv()
        .map_err(|_| std::io::Error::other("namespace worker died"))??;
    Ok(tx)
}

/// Accepts host connections and joins each to a new connection to `target` in the namespace.
fn accept_loop(listener: TcpListener, dialer: Sender<Job>, target: SocketAddr) {
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let (tx, rx) = channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(TcpStream::connect_timeout(&target, Duration::from_secs(5)));
        });
        if dialer.send(job).is_err() {
            return;
        }
        let Ok(Ok(upstream)) = rx.recv() else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        join(client, upstream);
    }
}

/// Copies bytes both ways until each side has closed, one thread per direction.
fn join(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        move || {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(Shutdown::Write);
            let _ = from.shutdown(Shutdown::Read);
        }
    };
    let _ = std::thread::Builder::new()
        .name("netns-copy".into())
        .spawn(pipe(a, b2));
    let _ = std::thread::Builder::new()
        .name("netns-copy".into())
        .spawn(pipe(b, a2));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn addresses_inside_exist_only_inside_and_forwarding_reaches_them() {
        assert!(root(), "network namespaces need root");
        let dir = tempfile::tempdir().unwrap();
        let netns = NetworkNamespace::create(&dir.path().join("holder.log")).unwrap();
        netns
            .run("ip", &["addr", "add", "10.250.0.1/32", "dev", "lo"])
            .unwrap();
        let addr: SocketAddr = "10.250.0.1:7000".parse().unwrap();
        let listener = netns.bind_tcp(addr).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut got = [0u8; 4];
            conn.read_exact(&mut got).unwrap();
            conn.write_all(&[&got[..], b"-ok"].concat()).unwrap();
        });
        // The host has no such address (checked by listing, never by sending traffic there).
        let host = std::process::Command::new("ip")
            .args(["-o", "addr"])
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&host.stdout).contains("10.250.0.1"));
        let port = netns.forward_from_host(addr).unwrap();
        let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        conn.write_all(b"ping").unwrap();
        let mut reply = Vec::new();
        conn.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, b"ping-ok");
        server.join().unwrap();
        let ip = netns
            .run("ip", &["-o", "addr", "show", "dev", "lo"])
            .unwrap();
        assert!(ip.contains("10.250.0.1"), "{ip}");
    }
}
