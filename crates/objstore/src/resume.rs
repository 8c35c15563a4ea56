//! The progress record of a multipart upload, beside its source (`<source>.upload`), so an
//! upload interrupted by the end of the process (SIGKILL, OOM, a node reboot) resumes where it
//! stopped instead of sending a core of many GiB again.
//!
//! The record is a journal of JSON lines: the first line, the [`Header`], names the upload
//! (store, key, upload id, part size) and the source it reads (size, modification time,
//! inode); every further line is one [`DonePart`], appended and flushed to disk (`fdatasync`)
//! once the server has acknowledged that part. The record is written whole, atomically (temp
//! file, fsync, rename, fsync of the directory), when an upload starts and when it resumes
//! (from the lines read back, so nothing is appended to a line torn by the crash); in
//! between, only appended to. An append-only journal costs one short line per part, where a
//! record rewritten whole after each part would write the list of all parts every time
//! (quadratic in the core's size: about 80 MB of rewrites for a 10 GiB core in 8 MiB parts).
//!
//! A record only ever lists parts the server confirmed, so whatever is lost (a torn last line,
//! a record that cannot be written on a full disk, an unreadable one) costs a part sent again,
//! never a wrong object: an unreadable line ends the list there; an unreadable header makes
//! the record void (the upload starts afresh).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The suffix of a record beside its source (`core.zst` -> `core.zst.upload`).
pub const RECORD_SUFFIX: &str = ".upload";

/// The format version of the header: a record of another version is void.
const VERSION: u32 = 1;

/// Records are small (a line of about 100 bytes per part); a larger file is not ours.
const MAX_RECORD_BYTES: u64 = 16 << 20;

/// The path of the record of `source`.
pub fn record_path(source: &Path) -> PathBuf {
    let mut name = source.as_os_str().to_owned();
    name.push(RECORD_SUFFIX);
    PathBuf::from(name)
}

/// What a record is about: the upload and the source, all of which must match for a resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// The bucket (`s3://bucket`).
    pub location: String,
    /// The endpoint when not the service's own.
    pub endpoint: Option<String>,
    /// The full object key, prefix included.
    pub key: String,
    /// The source's size in bytes.
    pub size: u64,
    /// The source's modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// The source's device and inode: a file written anew (by rename) is another file.
    pub dev: u64,
    /// See `dev`.
    pub inode: u64,
    /// Bytes per part (all but the last).
    pub part_size: u64,
    /// Whether each part's MD5 is recorded (needed for S3's `ETag` check).
    pub md5: bool,
    /// The server's id of the multipart upload.
    pub upload_id: String,
}

impl Header {
    /// The header of an upload of the source with metadata `meta`.
    pub fn new(
        target: Target<'_>,
        meta: &std::fs::Metadata,
        part_size: u64,
        md5: bool,
        upload_id: String,
    ) -> Self {
        Self {
            version: VERSION,
            location: target.location.to_owned(),
            endpoint: target.endpoint.map(str::to_owned),
            key: target.key.to_owned(),
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            dev: meta.dev(),
            inode: meta.ino(),
            part_size,
            md5,
            upload_id,
        }
    }

    /// Whether this record continues an upload of the same source to the same object with the
    /// same parts (everything but the upload id equal).
    pub fn matches(&self, other: &Header) -> bool {
        let mut same = other.clone();
        same.upload_id.clone_from(&self.upload_id);
        *self == same
    }

    /// Whether the upload is in the same bucket and at the same key (so it can be aborted).
    pub fn same_object(&self, other: &Header) -> bool {
        self.location == other.location && self.endpoint == other.endpoint && self.key == other.key
    }
}

/// Where an upload goes, for its [`Header`].
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The bucket (`s3://bucket`).
    pub location: &'a str,
    /// The endpoint when not the service's own.
    pub endpoint: Option<&'a str>,
    /// The full object key.
    pub key: &'a str,
}

/// One part the server acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DonePart {
    /// Its index, from 0.
    pub part: usize,
    /// The server's id of the part (S3: its `ETag`; Azure: the block id), for completion.
    pub content_id: String,
    /// Its MD5 in hex, when the header says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
}

/// A record as read back: the header and the parts done, by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// What the upload is.
    pub header: Header,
    /// The parts the server acknowledged.
    pub parts: BTreeMap<usize, DonePart>,
}

impl UploadRecord {
    /// Reads the record at `path`: `Ok(None)` if there is none, an error if it cannot be read
    /// or its header is not one (the caller discards it).
    pub fn load(path: &Path) -> io::Result<Option<Self>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut lines = BufReader::new(file.take(MAX_RECORD_BYTES)).lines();
        let first = lines.next().transpose()?.unwrap_or_default();
        let header: Header = serde_json::from_str(&first).map_err(io::Error::other)?;
        if header.version != VERSION {
            return Err(io::Error::other(format!(
                "record version {} (this build writes {VERSION})",
                header.version
            )));
        }
        let mut parts = BTreeMap::new();
        for line in lines {
            // A torn or unreadable line ends the list: what follows is sent again.
            let Some(part) = line
                .ok()
                .and_then(|l| serde_json::from_str::<DonePart>(&l).ok())
            else {
                break;
            };
            parts.insert(part.part, part);
        }
        Ok(Some(Self { header, parts }))
    }
}

/// The open record of an upload under way: appends the parts as they complete.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Writes a record of `header` and the parts `done` (replacing any), atomically; a resumed
    /// upload rewrites its record so that a line torn by the crash is not appended to.
    pub fn create<'a>(
        path: &Path,
        header: &Header,
        done: impl IntoIterator<Item = &'a DonePart>,
    ) -> io::Result<Self> {
        let mut content = line(header)?;
        for part in done {
            content.extend(line(part)?);
        }
        coredump_common::atomic_file::write(path, &content, 0o600)
            .map_err(|e| io::Error::new(e.source.kind(), e))?;
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    /// Appends one acknowledged part, durably (one `write`, then `fdatasync`).
    pub fn append(&mut self, part: &DonePart) -> io::Result<()> {
        self.file.write_all(&line(part)?)?;
        self.file.sync_data()
    }

    /// The record's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `value` as one JSON line.
fn line<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut out = serde_json::to_vec(value).map_err(io::Error::other)?;
    out.push(b'\n');
    Ok(out)
}

/// Removes the record at `path` (absent is fine); a failure is logged, as the record of a
/// finished upload only costs a failed resume attempt later.
pub fn discard(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(record = %path.display(), error = %e, "an upload record was not removed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(dir: &Path, key: &str) -> Header {
        let src = dir.join("core.zst");
        std::fs::write(&src, b"0123456789").expect("source");
        let meta = std::fs::metadata(&src).expect("meta");
        let target = Target {
            location: "s3://cores",
            endpoint: Some("http://127.0.0.1:1"),
            key,
        };
        Header::new(target, &meta, 4, true, "id-1".into())
    }

    fn part(i: usize) -> DonePart {
        DonePart {
            part: i,
            content_id: format!("\"etag-{i}\""),
            md5: Some("00".repeat(16)),
        }
    }

    #[test]
    fn parts_appended_are_read_back_and_a_torn_line_ends_the_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = record_path(&dir.path().join("core.zst"));
        assert!(path.ends_with("core.zst.upload"), "{path:?}");
        let header = header(dir.path(), "p/ns/pod/c/x.core.zst");
        assert_eq!(UploadRecord::load(&path).expect("absent"), None);
        let mut journal = Journal::create(&path, &header, []).expect("create");
        journal.append(&part(1)).expect("append");
        journal.append(&part(0)).expect("append");
        let back = UploadRecord::load(&path).expect("load").expect("record");
        assert_eq!(back.header, header);
        assert_eq!(back.parts.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(back.parts[&1], part(1));

        // A line cut short by a crash, and one after it: neither counts.
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(b"{\"part\":2,\"cont").expect("torn");
        drop(file);
        let mut journal = OpenOptions::new().append(true).open(&path).expect("open");
        journal
            .write_all(&line(&part(3)).expect("line"))
            .expect("append");
        let back = UploadRecord::load(&path).expect("load").expect("record");
        assert_eq!(back.parts.keys().copied().collect::<Vec<_>>(), vec![0, 1]);

        // A resume rewrites the record from what it read: appends count again.
        let mut journal =
            Journal::create(&path, &back.header, back.parts.values()).expect("rewrite");
        journal.append(&part(3)).expect("append");
        let back = UploadRecord::load(&path).expect("load").expect("record");
        assert_eq!(
            back.parts.keys().copied().collect::<Vec<_>>(),
            vec![0, 1, 3]
        );

        discard(&path);
        discard(&path);
        assert_eq!(UploadRecord::load(&path).expect("gone"), None);
    }

    #[test]
    fn a_record_matches_only_the_same_source_object_and_parts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ours = header(dir.path(), "k");
        let mut resumed = ours.clone();
        resumed.upload_id = "another id".into();
        assert!(
            ours.matches(&resumed),
            "the upload id is what a resume reuses"
        );
        let changes: [fn(&mut Header); 6] = [
            |h| h.key = "other".into(),
            |h| h.size += 1,
            |h| h.part_size *= 2,
            |h| h.inode += 1,
            |h| h.mtime_ns += 1,
            |h| h.endpoint = None,
        ];
        for change in changes {
            let mut other = ours.clone();
            change(&mut other);
            assert!(!ours.matches(&other), "{other:?}");
        }
        let mut moved = ours.clone();
        moved.size += 1;
        assert!(ours.same_object(&moved));
        moved.key = "other".into();
        assert!(!ours.same_object(&moved));
    }

    #[test]
    fn a_header_that_is_not_one_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("core.zst.upload");
        std::fs::write(&path, b"not json\n").expect("write");
        assert!(UploadRecord::load(&path).is_err());
        let mut header = header(dir.path(), "k");
        header.version = 99;
        std::fs::write(&path, line(&header).expect("line")).expect("write");
        assert!(UploadRecord::load(&path).is_err());
    }
}
