//! `namespaces/<ns>/buildid/<build-id>/{executable,debuginfo}`: the binaries the agent kept by
//! build ID, served in the debuginfod protocol's own paths. With
//! `DEBUGINFOD_URLS=<proxy>/apis/coredump.fujitsu.com/v1alpha1/namespaces/<ns>` gdb, lldb and
//! elfutils fetch `<url>/buildid/<id>/executable` and `/debuginfo` from us unchanged, and RBAC
//! scopes them per namespace like cores (`get` on `buildid/executable`, `buildid/debuginfo`).
//!
//! `debuginfo` serves the separately stored debug file when there is one, else the executable
//! itself when it carries DWARF (as elfutils' debuginfod does for unstripped binaries), else
//! 404: debuggers then go on without it.

use std::io::{self, Read, Seek};

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coredump_store::BlobPath;
use coredump_store::buildid::{DEBUGINFO, EXECUTABLE, buildid_path};

use super::stream;
use crate::AppState;
use crate::error::ApiError;

use coredump_api::discovery::BUILDID;

fn not_found(id: &str, file: &str) -> ApiError {
    ApiError::NotFound {
        resource: format!("{BUILDID}/{file}"),
        name: id.to_owned(),
    }
}

/// Whether the ELF file `r` reads has DWARF line information.
fn has_dwarf(r: Box<dyn coredump_store::SeekableRead>) -> bool {
    use object::{Object, ObjectSection};
    struct R(Box<dyn coredump_store::SeekableRead>);
    impl Read for R {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.0.read(b)
        }
    }
    impl Seek for R {
        fn seek(&mut self, p: io::SeekFrom) -> io::Result<u64> {
            self.0.seek(p)
        }
    }
    let cache = object::read::ReadCache::new(R(r));
    let Ok(file) = object::File::parse(&cache) else {
        return false;
    };
    file.section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0)
}

/// Which blob answers `file` of `id` in `ns`, if any.
fn resolve(state: &AppState, ns: &str, id: &str, file: &str) -> Result<Option<BlobPath>, ApiError> {
    let blobs = state.registry.blob_store();
    let Some(path) = buildid_path(ns, id, file) else {
        return Ok(None);
    };
    if blobs.size(&path)?.is_some() {
        return Ok(Some(path));
    }
    if file != DEBUGINFO {
        return Ok(None);
    }
    let Some(exe) = buildid_path(ns, id, EXECUTABLE) else {
        return Ok(None);
    };
    match blobs.open_seekable(&exe) {
        Ok(Some(r)) => Ok(has_dwarf(r).then_some(exe)),
        Ok(None) => Ok(None),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `GET .../namespaces/<ns>/buildid/<id>/<executable|debuginfo>`.
pub async fn get(
    State(state): State<AppState>,
    Path((ns, id, file)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    if file != EXECUTABLE && file != DEBUGINFO {
        return Err(ApiError::NoRoute);
    }
    let lookup = {
        let (state, ns, id, file) = (state.clone(), ns.clone(), id.clone(), file.clone());
        tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
            let Some(path) = resolve(&state, &ns, &id, &file)? else {
                return Ok(None);
            };
            let blobs = state.registry.blob_store();
            let size = blobs.size(&path)?.unwrap_or(0);
            Ok(Some((blobs.open(&path)?, size)))
        })
        .await
        .map_err(|e| ApiError::Internal {
            message: format!("buildid lookup task: {e}"),
        })??
    };
    let Some((mut blob, size)) = lookup else {
        return Err(not_found(&id, &file));
    };
    let (mut writer, body) = stream::channel();
    tokio::task::spawn_blocking(move || {
        let result = writer
            .copy_from(&mut blob, size)
            .and_then(|_| io::Write::flush(&mut writer));
        if let Err(e) = result {
            writer.fail(e);
        }
    });
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    Ok(resp)
}
