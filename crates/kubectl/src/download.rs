//! Writing a download to disk so that the final name only ever holds a complete, verified file:
//! the bytes go to a temporary file in the destination's directory (same filesystem, so the
//! final rename is atomic), are counted and hashed on the way, and only if the count and the
//! SHA-256 match what the record promises is the file synced and renamed into place. Any
//! mismatch, a stream that breaks off, or an error drops the temporary file, which deletes it.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::Error;

/// What the bytes must be, as far as the record and the response say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Exact byte count (`status.coreSize`, `Content-Length`), when known.
    pub length: Option<u64>,
    /// Lower-case hex SHA-256 of the bytes (`status.sha256`), when the record has one.
    pub sha256: Option<String>,
}

/// A progress bar on stderr when `show` (stderr is a terminal), else a hidden one; sized when
/// the length is known, a byte counter otherwise.
pub fn progress_bar(length: Option<u64>, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(length, ProgressDrawTarget::stderr());
    if let Ok(style) = style(length.is_some()) {
        bar.set_style(style);
    }
    bar
}

/// A bar with bytes, rate and ETA when the total is known, a spinner and a counter otherwise.
fn style(sized: bool) -> Result<ProgressStyle, indicatif::style::TemplateError> {
    let template = if sized {
        "{msg} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"
    } else {
        "{msg} {spinner} {bytes} {binary_bytes_per_sec}"
    };
    Ok(ProgressStyle::with_template(template)?.progress_chars("=> "))
}

/// Streams `body` into `dest` through a temporary file beside it, checking it against
/// `expected`; returns the number of bytes written. `what` names the download in errors
/// (`core of coredump "x" in namespace "y"`). On error nothing exists under `dest` that was not
/// there before, and the temporary file is gone.
pub async fn save<S>(
    mut body: S,
    dest: &Path,
    expected: &Expected,
    what: &str,
    progress: &ProgressBar,
) -> Result<u64, Error>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin,
{
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".to_owned());
    // Mode 0600: a core is the memory of someone's process.
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".part")
        .tempfile_in(&dir)
        .map_err(|source| Error::Io {
            op: "creating a temporary file in",
            path: dir.clone(),
            source,
        })?;
    let mut hasher = Sha256::new();
    let mut got: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|source| Error::Stream {
            what: what.to_owned(),
            got,
            source,
        })?;
        got += chunk.len() as u64;
        if let Some(expected) = expected.length.filter(|e| got > *e) {
            return Err(Error::Length {
                what: what.to_owned(),
                path: dest.to_path_buf(),
                expected,
                got,
            });
        }
        hasher.update(&chunk);
        temp.write_all(&chunk).map_err(|source| Error::Io {
            op: "writing",
            path: temp.path().to_path_buf(),
            source,
        })?;
        progress.inc(chunk.len() as u64);
    }
    if let Some(expected) = expected.length.filter(|e| got != *e) {
        return Err(Error::Length {
            what: what.to_owned(),
            path: dest.to_path_buf(),
            expected,
            got,
        });
    }
    if let Some(expected) = expected.sha256.as_deref() {
        let actual = hex::encode(hasher.finalize());
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(Error::Checksum {
                what: what.to_owned(),
                path: dest.to_path_buf(),
                expected: expected.to_owned(),
                got: actual,
            });
        }
    }
    temp.as_file().sync_all().map_err(|source| Error::Io {
        op: "syncing",
        path: temp.path().to_path_buf(),
        source,
    })?;
    temp.persist(dest).map_err(|e| Error::Io {
        op: "renaming the download to",
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(
        chunks: Vec<Result<&'static [u8], &'static str>>,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        futures::stream::iter(chunks.into_iter().map(|c| {
            c.map(Bytes::from_static)
                .map_err(|m| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, m))
        }))
    }

    fn sha(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    /// Names in `dir` (to prove no temporary file is left behind).
    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    async fn run(
        chunks: Vec<Result<&'static [u8], &'static str>>,
        expected: Expected,
    ) -> (tempfile::TempDir, Result<u64, Error>) {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.core");
        let result = save(
            stream(chunks),
            &dest,
            &expected,
            "core of x",
            &ProgressBar::hidden(),
        )
        .await;
        (dir, result)
    }

    #[tokio::test]
    async fn matching_stream_is_renamed_into_place_byte_for_byte() {
        let expected = Expected {
            length: Some(11),
            sha256: Some(sha(b"hello world").to_ascii_uppercase()),
        };
        let (dir, result) = run(vec![Ok(b"hello"), Ok(b" "), Ok(b"world")], expected).await;
        assert_eq!(result.unwrap(), 11);
        assert_eq!(entries(dir.path()), ["x.core"]);
        assert_eq!(
            std::fs::read(dir.path().join("x.core")).unwrap(),
            b"hello world"
        );
    }

    #[tokio::test]
    async fn short_stream_is_refused_and_leaves_no_file() {
        let expected = Expected {
            length: Some(12),
            sha256: None,
        };
        let (dir, result) = run(vec![Ok(b"hello"), Ok(b" world")], expected).await;
        match result {
            Err(Error::Length { expected, got, .. }) => assert_eq!((expected, got), (12, 11)),
            other => panic!("{other:?}"),
        }
        assert!(entries(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn long_stream_is_refused_as_soon_as_it_overflows() {
        let expected = Expected {
            length: Some(4),
            sha256: None,
        };
        let (dir, result) = run(vec![Ok(b"abc"), Ok(b"de"), Err("never read")], expected).await;
        match result {
            Err(Error::Length { expected, got, .. }) => assert_eq!((expected, got), (4, 5)),
            other => panic!("{other:?}"),
        }
        assert!(entries(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn wrong_sha256_is_refused_and_leaves_no_file() {
        let expected = Expected {
            length: Some(11),
            sha256: Some(sha(b"hello WORLD")),
        };
        let (dir, result) = run(vec![Ok(b"hello world")], expected).await;
        let err = result.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Checksum { ref got, .. } if *got == sha(b"hello world")));
        assert!(
            text.contains("core of x") && text.contains("x.core"),
            "{text}"
        );
        assert!(entries(dir.path()).is_empty());
    }

    #[tokio::test]
    async fn broken_stream_is_refused_and_keeps_an_older_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.core");
        std::fs::write(&dest, b"previous").unwrap();
        let result = save(
            stream(vec![Ok(b"abc"), Err("connection reset")]),
            &dest,
            &Expected::default(),
            "dump of pod p",
            &ProgressBar::hidden(),
        )
        .await;
        match result {
            Err(Error::Stream { got, .. }) => assert_eq!(got, 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(entries(dir.path()), ["x.core"]);
        assert_eq!(std::fs::read(&dest).unwrap(), b"previous");
    }

    #[test]
    fn progress_templates_parse() {
        assert!(style(true).is_ok());
        assert!(style(false).is_ok());
        assert!(progress_bar(Some(1), false).is_hidden());
    }

    #[tokio::test]
    async fn unknown_length_without_hash_is_taken_as_it_comes() {
        let (dir, result) = run(vec![Ok(b""), Ok(b"abc")], Expected::default()).await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(std::fs::read(dir.path().join("x.core")).unwrap(), b"abc");
    }
}
