//! The download benchmark's baseline and client: Caddy (built from its Go module by
//! `scripts/control-plane/build.sh caddy`; its `file_server` is Go's `net/http`
//! `http.ServeContent` over `crypto/tls`, HTTP/2 from `net/http`) serving the raw core file
//! with the same serving certificate, and curl as the one client of both servers.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The HTTP version curl is told to use (ALPN over TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// `--http1.1`.
    H1,
    /// `--http2`.
    H2,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::H1 => "HTTP/1.1",
            Proto::H2 => "HTTP/2",
        }
    }

    fn curl_flag(self) -> &'static str {
        match self {
            Proto::H1 => "--http1.1",
            Proto::H2 => "--http2",
        }
    }

    /// What curl's `%{http_version}` prints.
    fn curl_version(self) -> &'static str {
        match self {
            Proto::H1 => "1.1",
            Proto::H2 => "2",
        }
    }
}

/// How curl reaches a server.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub ca: PathBuf,
    /// Client certificate and key (our server authenticates the admin by it).
    pub client: Option<(PathBuf, PathBuf)>,
}

impl Target {
    fn curl(&self, proto: Proto) -> Command {
        let mut c = Command::new("curl");
        c.args(["-sS", "--fail", "--max-time", "300", proto.curl_flag()])
            .arg("--cacert")
            .arg(&self.ca);
        if let Some((cert, key)) = &self.client {
            c.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        c
    }

    /// One timed download to /dev/null: curl's own `time_total`; the size and the protocol
    /// actually spoken are checked.
    pub fn time(&self, proto: Proto, want: u64) -> Duration {
        let out = self
            .curl(proto)
            .args([
                "-o",
                "/dev/null",
                "-w",
                "%{time_total} %{size_download} %{http_version}",
            ])
            .arg(&self.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {}: {}",
            self.url,
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut f = text.split_whitespace();
        let secs: f64 = f.next().unwrap().parse().unwrap();
        let size: u64 = f.next().unwrap().parse().unwrap();
        let version = f.next().unwrap();
        assert_eq!(size, want, "{} over {}", self.url, proto.name());
        assert_eq!(version, proto.curl_version(), "{}", self.url);
        Duration::from_secs_f64(secs)
    }

    /// Downloads once and compares every byte with `expected` (untimed).
    pub fn verify(&self, proto: Proto, expected: &Path) {
        let mut child = self
            .curl(proto)
            .arg(&self.url)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut got = child.stdout.take().unwrap();
        let mut want = std::fs::File::open(expected).unwrap();
        let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        let mut at = 0u64;
        loop {
            let n = read_full(&mut got, &mut a);
            let m = read_full(&mut want, &mut b[..n.max(1)]);
            assert_eq!(
                a[..n],
                b[..m],
                "{} over {}: bytes differ near {at}",
                self.url,
                proto.name()
            );
            if n == 0 {
                break;
            }
            at += n as u64;
        }
        assert!(child.wait().unwrap().success(), "curl {}", self.url);
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// A running Caddy, killed on drop.
pub struct Caddy {
    child: Child,
    pub port: u16,
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds (or finds in the cache) Caddy through the project's build script.
pub fn caddy_binary() -> PathBuf {
    coredump_testplane::caddy::caddy_binary().unwrap_or_else(|e| panic!("{e}"))
}

/// Starts Caddy serving `root` over TLS (HTTP/1.1 and HTTP/2) with `cert`/`key`, its state
/// under `dir`, no admin endpoint; returns once it accepts connections.
pub fn start_caddy(bin: &Path, dir: &Path, root: &Path, cert: &Path, key: &Path) -> Caddy {
    let port = coredump_testplane::free_port().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "admin": {"disabled": true},
        "logging": {"logs": {"default": {"level": "ERROR"}}},
        "storage": {"module": "file_system", "root": dir.join("data")},
        "apps": {
            "http": {"servers": {"bench": {
                "listen": [format!("127.0.0.1:{port}")],
                "routes": [{"handle": [{"handler": "file_server", "root": root}]}],
                "tls_connection_policies": [{}],
                "automatic_https": {"disable": true},
                "protocols": ["h1", "h2"]
            }}},
            "tls": {"certificates": {"load_files": [{"certificate": cert, "key": key}]}}
        }
    });
    let config_path = dir.join("caddy.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let child = Command::new(bin)
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("caddy.log")).unwrap())
        .spawn()
        .unwrap();
    let mut caddy = Caddy { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return caddy;
        }
        if let Some(status) = caddy.child.try_wait().unwrap() {
            panic!(
                "caddy exited ({status}): {}",
                std::fs::read_to_string(dir.join("caddy.log")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "caddy did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The median of some durations.
pub fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}
