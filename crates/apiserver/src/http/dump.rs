//! `coredumpendpoints/<name>/dump[?container=NAME]`: the pod's blobs as a `tar.gz` built on the
//! fly (no temporary file), entries `<namespace>/<podUID>/<container>/<file>` holding the
//! stored bytes unchanged. The blobs are zstd already, so gzip cannot shrink them: the level is
//! a speed choice (see the benchmark), default [`DEFAULT_GZIP_LEVEL`].

use std::io::{self, Write};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coredump_api::CoredumpEndpoint;
use coredump_store::BlobInfo;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::params::Params;
use super::stream;
use crate::AppState;
use crate::error::ApiError;

/// Gzip level of dumps: stored (0) blocks, because the entries are zstd-compressed cores that
/// deflate cannot shrink, and any higher level only burns CPU (measured by the `download`
/// benchmark).
pub const DEFAULT_GZIP_LEVEL: u32 = 0;

fn entry_name(info: &BlobInfo) -> String {
    let p = &info.path;
    format!("{}/{}/{}/{}", p.namespace, p.pod_uid, p.container, p.file)
}

fn write_archive(
    out: &mut stream::ChunkWriter,
    blobs: &dyn coredump_store::BlobStore,
    entries: &[BlobInfo],
    level: u32,
) -> io::Result<()> {
    let gz = GzEncoder::new(out, Compression::new(level));
    let mut tar = tar::Builder::new(gz);
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for info in entries {
        let reader = match blobs.open(&info.path) {
            Ok(r) => r,
            // Deleted between listing and reading: leave it out rather than fail the archive.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(io::Error::other(e.to_string())),
        };
        let mut header = tar::Header::new_gnu();
        header.set_size(info.size);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, entry_name(info), reader)?;
    }
    let gz = tar.into_inner()?;
    let out = gz.finish()?;
    out.flush()
}

/// `GET .../coredumpendpoints/<name>/dump`.
pub async fn dump(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let container = match params.get("container") {
        None => None,
        Some(c) => {
            coredump_api::validation::path_segment(c)
                .map_err(|e| ApiError::bad_request(format!("invalid container {c:?}: {e}")))?;
            Some(c.to_owned())
        }
    };
    let ep: CoredumpEndpoint = state.registry.get(&ns, &name).await?;
    let blobs = state.registry.blob_store().clone();
    let (ns2, uid) = (ns.clone(), ep.spec.pod_uid.clone());
    let list_blobs = blobs.clone();
    let entries =
        tokio::task::spawn_blocking(move || list_blobs.list(&ns2, &uid, container.as_deref()))
            .await
            .map_err(|e| ApiError::Internal {
                message: format!("blob list task: {e}"),
            })??;
    let (mut writer, body) = stream::channel();
    let level = state.dump_gzip_level;
    let label = format!("{ns}/{name}");
    tokio::task::spawn_blocking(move || {
        if let Err(e) = write_archive(&mut writer, blobs.as_ref(), &entries, level) {
            if e.kind() != io::ErrorKind::BrokenPipe {
                tracing::warn!(endpoint = %label, error = %e, "dump failed");
            }
            writer.fail(e);
        }
    });
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{ns}_{name}.tar.gz\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
