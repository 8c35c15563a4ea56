//! After capture, before the crash is recorded: the crashed process's binaries (copied into
//! the spool entry by the capture, see `coredump_capture::mapped`) are stored once per
//! namespace by build ID, and the core is analysed into a backtrace and a signature.
//!
//! Binaries go to the blob store under `<namespace>/.buildid/<build-id>/executable`: content
//! addressed, counted in the namespace's usage like its cores, and scoped to the namespace, so
//! one tenant can never plant a file under a build ID another tenant's debugger will fetch
//! (the dot keeps the GC's pod walk off it). After storing a file the ingest leaves a marker
//! (`<spool>/.binaries/<pod>/<file key>`, holding the build ID) so the next crash of the same
//! pod does not copy it again.
//!
//! The analysis result is written into the spool entry (`analysis.json`) before anything else
//! depends on it, so a retried ingest reuses it instead of analysing again.

use std::io;
use std::path::{Path, PathBuf};

use coredump_analysis::{Binaries, Image, Limits, Outcome, ReadSeek};
use coredump_capture::mapped::{self, BINARIES_DIR, KNOWN_DIR, KeptFile};
use coredump_store::BlobStore;
use coredump_store::buildid::{DEBUGINFO, EXECUTABLE, buildid_path};
use serde::{Deserialize, Serialize};

/// The analysis result kept in the spool entry.
pub const ANALYSIS_JSON: &str = "analysis.json";
/// A mapped file and what the ingest learned of it.
#[derive(Debug, Clone)]
struct Located {
    kept: KeptFile,
    /// The copy in the spool entry, when the capture made one.
    copy: Option<PathBuf>,
    build_id: Option<String>,
}

/// Result saved in the spool entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    analysis: coredump_api::Analysis,
    signature: Option<String>,
}

/// Stores the entry's copied binaries by build ID (when `store` is true) and analyses the
/// core. Returns `None` when the core is not a readable ELF core.
pub(crate) fn run(
    entry: &Path,
    spool_dir: &Path,
    pod: &str,
    namespace: &str,
    core_size: u64,
    blobs: &dyn BlobStore,
    store: bool,
) -> Option<Outcome> {
    let saved_path = entry.join(ANALYSIS_JSON);
    if let Ok(bytes) = std::fs::read(&saved_path)
        && let Ok(saved) = serde_json::from_slice::<Saved>(&bytes)
    {
        return Some(Outcome {
            analysis: saved.analysis,
            signature: saved.signature,
        });
    }
    let known = spool_dir.join(KNOWN_DIR).join(pod);
    let files = locate(entry, &known, namespace, blobs, store);
    let file = std::fs::File::open(entry.join(coredump_capture::record::CORE_ZST)).ok()?;
    // One frame decoded per page read in a seekable core; older cores decode forward.
    let core =
        coredump_seekable::SeekableReader::new(io::BufReader::new(file), Some(core_size)).ok()?;
    let source = Source {
        files: &files,
        namespace,
        blobs,
    };
    let outcome = coredump_analysis::analyze(core, &source, &Limits::default()).ok()?;
    let saved = Saved {
        analysis: outcome.analysis.clone(),
        signature: outcome.signature.clone(),
    };
    if let Ok(json) = serde_json::to_vec(&saved) {
        let _ = coredump_capture::fsutil::write_atomic(&saved_path, &json);
    }
    Some(outcome)
}

/// Reads the manifest, finds each file's build ID and stores new ones.
fn locate(
    entry: &Path,
    known: &Path,
    namespace: &str,
    blobs: &dyn BlobStore,
    store: bool,
) -> Vec<Located> {
    let mut out = Vec::new();
    for kept in mapped::read_manifest(entry) {
        let copy = kept
            .copy
            .as_ref()
            .map(|c| entry.join(BINARIES_DIR).join(c))
            .filter(|p| p.is_file());
        let marker = known.join(&kept.key);
        let build_id = match &copy {
            Some(path) => std::fs::File::open(path)
                .ok()
                .and_then(|f| coredump_analysis::build_id_of(Box::new(f))),
            None => std::fs::read_to_string(&marker)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        };
        if store
            && let (Some(path), Some(id)) = (&copy, &build_id)
            && let Some(blob) = buildid_path(namespace, id, EXECUTABLE)
        {
            let stored = match blobs.size(&blob) {
                Ok(Some(_)) => true,
                _ => blobs.put_file(&blob, path).is_ok(),
            };
            if stored {
                let _ = std::fs::create_dir_all(known);
                let _ = std::fs::write(&marker, id);
            }
        }
        if copy.is_none() && build_id.is_some() {
            // A marker whose binary the GC removed since: forget it, the next crash copies.
            let gone = build_id
                .as_deref()
                .and_then(|id| buildid_path(namespace, id, EXECUTABLE))
                .is_some_and(|b| matches!(blobs.size(&b), Ok(None)));
            if gone {
                let _ = std::fs::remove_file(&marker);
            }
        }
        out.push(Located {
            kept,
            copy,
            build_id,
        });
    }
    out
}

/// The analysis's binaries: the capture's copies, else the namespace's binary store.
struct Source<'a> {
    files: &'a [Located],
    namespace: &'a str,
    blobs: &'a dyn BlobStore,
}

impl Source<'_> {
    fn stored(&self, build_id: &str, file: &str) -> Option<Box<dyn ReadSeek>> {
        let path = buildid_path(self.namespace, build_id, file)?;
        let reader = self.blobs.open_seekable(&path).ok()??;
        Some(Box::new(reader))
    }
}

impl Binaries for Source<'_> {
    fn binary(&self, image: &Image) -> Option<Box<dyn ReadSeek>> {
        let file = self.files.iter().find(|f| {
            f.kept
                .ranges
                .iter()
                .any(|(start, _)| image.mappings.contains(start))
        });
        if let Some(f) = file {
            if let Some(copy) = &f.copy
                && let Ok(opened) = std::fs::File::open(copy)
            {
                return Some(Box::new(opened));
            }
            if let Some(id) = &f.build_id {
                return self.stored(id, EXECUTABLE);
            }
        }
        // Only by the build ID the core itself states: never by the path it names.
        self.stored(image.build_id.as_deref()?, EXECUTABLE)
    }

    fn debuginfo(&self, build_id: &str) -> Option<Box<dyn ReadSeek>> {
        self.stored(build_id, DEBUGINFO)
    }
}

/// Binaries of one namespace's store, by build ID only: what an analysis after the fact (the
/// `analyze` command, a re-analysis) has once the capture's copies are gone.
pub struct StoredBinaries<'a> {
    /// Namespace whose `.buildid` store is used.
    pub namespace: &'a str,
    /// The blob store.
    pub blobs: &'a dyn BlobStore,
}

impl Binaries for StoredBinaries<'_> {
    fn binary(&self, image: &Image) -> Option<Box<dyn ReadSeek>> {
        let path = buildid_path(self.namespace, image.build_id.as_deref()?, EXECUTABLE)?;
        Some(Box::new(self.blobs.open_seekable(&path).ok()??))
    }

    fn debuginfo(&self, build_id: &str) -> Option<Box<dyn ReadSeek>> {
        let path = buildid_path(self.namespace, build_id, DEBUGINFO)?;
        Some(Box::new(self.blobs.open_seekable(&path).ok()??))
    }
}
