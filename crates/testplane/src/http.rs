//! A minimal HTTP/1.0 client for loopback test servers: readiness probes and the few setup
//! requests (create a bucket) the object-store harnesses make before any client of ours runs.
//! Bounded: one connection per request, timeouts of 5 s plus 1 s per 8 MiB of body, at most
//! 64 KiB of answer.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// The status and body (at most 64 KiB, lossy UTF-8) of one answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: String,
}

/// `GET path` on a loopback port.
pub(crate) fn get(port: u16, path: &str) -> std::io::Result<Answer> {
    request(port, "GET", path, &[], b"")
}

/// `method path` on a loopback port with `headers` and `body` (its `Content-Length` added).
pub(crate) fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    // 5 s, plus a second per 8 MiB of body: planting a 1 GiB object (the transfer benchmark)
    // waits for the server to store it before it answers.
    let timeout = Duration::from_secs(5 + body.len() as u64 / (8 << 20));
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP status in {head:?}")))?;
    Ok(Answer {
        status,
        body: body.to_string(),
    })
}
