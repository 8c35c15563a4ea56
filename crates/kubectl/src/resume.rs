//! Downloading a core in `Range` pieces that survive interruptions: the bytes go to
//! `.<file>.part` beside the destination, one request per piece (each well within
//! kube-apiserver's request timeout), so a broken connection, a timeout or Ctrl-C loses at most
//! the current piece and the next run continues where the part file ends. Only once the whole
//! file is there is it checked against `status.coreSize` and `status.sha256` and renamed into
//! place; a part file that fails the check is removed (its bytes cannot be trusted).

use coredump_api::client::{self, ClientError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use http_body_util::BodyExt;
use indicatif::ProgressBar;
use kube::Client;
use sha2::{Digest, Sha256};

use crate::Error;

/// Bytes asked for per request: at the 130-170 MiB/s measured through kube-apiserver, one
/// piece takes a few seconds, far from the 60 s request timeout.
pub const PIECE: u64 = 256 << 20;

/// The part file of `dest`.
pub fn part_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".to_owned());
    dest.with_file_name(format!(".{name}.part"))
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// One ranged download.
#[derive(Debug, Clone, Copy)]
pub struct Ranged<'a> {
    /// API path of the content (a `core` subresource).
    pub path: &'a str,
    /// Where the verified file goes.
    pub dest: &'a Path,
    /// Its size (`status.coreSize`).
    pub size: u64,
    /// Its SHA-256 (`status.sha256`), when known.
    pub sha256: Option<&'a str>,
    /// Bytes per request.
    pub piece: u64,
    /// What is downloaded, for messages.
    pub what: &'a str,
}

/// Downloads `r.size` bytes from `r.path` into `r.dest`, resuming a part file left by an
/// earlier run, in pieces of `r.piece` bytes; checks the SHA-256 when given. Returns the bytes
/// fetched by this run and whether it resumed.
pub async fn download(
    client: &Client,
    r: Ranged<'_>,
    progress: &ProgressBar,
) -> Result<(u64, bool), Error> {
    let Ranged {
        path,
        dest,
        size,
        sha256,
        piece,
        what,
    } = r;
    let part = part_path(dest);
    // Mode 0600: a core is the memory of someone's process.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(&part)
        .map_err(io_err("opening", &part))?;
    let mut have = file.metadata().map_err(io_err("reading", &part))?.len();
    if have > size {
        // Not a prefix of this core: start over.
        file.set_len(0).map_err(io_err("truncating", &part))?;
        have = 0;
    }
    let resumed = have > 0;
    progress.set_position(have);
    let mut fetched = 0;
    while have < size {
        let end = (have + piece.max(1)).min(size) - 1;
        let action = format!("{what} (bytes {have}-{end}; run again to resume)");
        let response = client::open_range(client, path, have, end, &action).await?;
        let mut body = response.into_body().into_data_stream();
        let mut got = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|source| {
                Error::Api(ClientError::Transport {
                    action: format!(
                        "{what} (broke off at byte {}; run again to resume)",
                        have + got
                    ),
                    source,
                })
            })?;
            if have + got + chunk.len() as u64 > end + 1 {
                return Err(Error::Length {
                    what: what.to_owned(),
                    path: dest.to_path_buf(),
                    expected: end + 1,
                    got: have + got + chunk.len() as u64,
                });
            }
            file.write_all(&chunk).map_err(io_err("writing", &part))?;
            got += chunk.len() as u64;
            progress.inc(chunk.len() as u64);
        }
        file.sync_data().map_err(io_err("syncing", &part))?;
        if got == 0 {
            return Err(Error::Length {
                what: what.to_owned(),
                path: dest.to_path_buf(),
                expected: size,
                got: have,
            });
        }
        have += got;
        fetched += got;
    }
    if let Some(expected) = sha256 {
        let actual = hash(&mut file).map_err(io_err("reading back", &part))?;
        if !actual.eq_ignore_ascii_case(expected) {
            let _ = std::fs::remove_file(&part);
            return Err(Error::Checksum {
                what: what.to_owned(),
                path: dest.to_path_buf(),
                expected: expected.to_owned(),
                got: actual,
            });
        }
    }
    file.sync_all().map_err(io_err("syncing", &part))?;
    std::fs::rename(&part, dest).map_err(io_err("renaming the download to", dest))?;
    Ok((fetched, resumed))
}

fn hash(file: &mut std::fs::File) -> std::io::Result<String> {
    file.seek(SeekFrom::Start(0))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_file_sits_beside_the_destination() {
        assert_eq!(
            part_path(Path::new("/tmp/x/a.core")),
            Path::new("/tmp/x/.a.core.part")
        );
        assert_eq!(part_path(Path::new("a.core")), Path::new(".a.core.part"));
    }
}
