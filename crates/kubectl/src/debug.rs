//! `debug NAME`: everything gdb needs for one crash, fetched through the API, then gdb.
//!
//! The core comes from the `core` subresource (resumable, verified); the executable and every
//! library the analysis listed come from `buildid/<id>/executable` and are laid out under
//! `sysroot/` at the paths the process saw, and separate debug files from
//! `buildid/<id>/debuginfo` under `debug/.build-id/xx/rest.debug` (gdb's own layout). A
//! `gdbinit` sets the sysroot and debug directory and opens executable and core. Whatever could
//! not be fetched is listed by path and build ID, so the user knows exactly what is missing.

use coredump_api::client::ClientError;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use coredump_api::{Coredump, Module};
use http_body_util::BodyExt;
use kube::Client;

use crate::{Error, api};

/// What `debug` prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The gdb script (`gdb -x` it).
    pub gdbinit: PathBuf,
    /// The core file.
    pub core: PathBuf,
    /// The executable inside the sysroot, when fetched.
    pub executable: Option<PathBuf>,
    /// Modules fetched.
    pub fetched: Vec<String>,
    /// Modules missing, each with why.
    pub missing: Vec<String>,
}

/// Path of `buildid/<id>/<file>` in `namespace`.
pub fn buildid_path(namespace: &str, build_id: &str, file: &str) -> String {
    format!(
        "{}/{build_id}/{file}",
        api::object_path(namespace, "buildid", None)
    )
}

/// Where a module lands under the sysroot: its path without the leading `/`, without the
/// kernel's ` (deleted)` suffix, with no `..` (paths come from the crashed process).
fn sysroot_relative(path: &str) -> Option<PathBuf> {
    let path = path.trim_end_matches(" (deleted)");
    let rel: PathBuf = Path::new(path)
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_owned()),
            _ => None,
        })
        .collect();
    (!rel.as_os_str().is_empty()).then_some(rel)
}

/// Fetches `path` into `dest` (whole, small files: binaries); `Ok(false)` on 404.
async fn fetch(client: &Client, path: &str, dest: &Path, what: &str) -> Result<bool, Error> {
    let response = match api::open(client, path, what).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e),
    };
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|source| {
            Error::Api(ClientError::Transport {
                action: what.to_owned(),
                source,
            })
        })?
        .to_bytes();
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            op: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(dest, &body).map_err(|source| Error::Io {
        op: "writing",
        path: dest.to_path_buf(),
        source,
    })?;
    Ok(true)
}

/// Fetches every module of `record` into `dir` and writes the gdb script; the core must be at
/// `core` already.
pub async fn prepare(
    client: &Client,
    record: &Coredump,
    dir: &Path,
    core: &Path,
) -> Result<Prepared, Error> {
    let ns = &record.metadata.namespace;
    let sysroot = dir.join("sysroot");
    let debug_dir = dir.join("debug");
    let mut fetched = Vec::new();
    let mut missing = Vec::new();
    let mut executable = None;
    let modules: &[Module] = record
        .status
        .analysis
        .as_ref()
        .map(|a| a.modules.as_slice())
        .unwrap_or_default();
    if modules.is_empty() {
        missing.push(
            "every binary: the record lists no modules (the core was not analysed)".to_owned(),
        );
    }
    for (i, m) in modules.iter().enumerate() {
        let Some(id) = &m.build_id else {
            missing.push(format!("{}: no build ID in the core", m.path));
            continue;
        };
        let Some(rel) = sysroot_relative(&m.path) else {
            missing.push(format!("{}: unusable path", m.path));
            continue;
        };
        let dest = sysroot.join(&rel);
        let what = format!("fetching {} (build ID {id})", m.path);
        if fetch(client, &buildid_path(ns, id, "executable"), &dest, &what).await? {
            fetched.push(m.path.clone());
            if i == 0 {
                executable = Some(dest);
            }
        } else {
            missing.push(format!(
                "{} (build ID {id}): not kept for namespace {ns}",
                m.path
            ));
            continue;
        }
        if id.len() > 2 {
            let debug = debug_dir
                .join(".build-id")
                .join(&id[..2])
                .join(format!("{}.debug", &id[2..]));
            let what = format!("fetching debug information of {} (build ID {id})", m.path);
            fetch(client, &buildid_path(ns, id, "debuginfo"), &debug, &what).await?;
        }
    }
    let mut script = String::new();
    let _ = writeln!(script, "set sysroot {}", sysroot.display());
    let _ = writeln!(script, "set debug-file-directory {}", debug_dir.display());
    if let Some(exe) = &executable {
        let _ = writeln!(script, "file {}", exe.display());
    }
    let _ = writeln!(script, "core-file {}", core.display());
    let gdbinit = dir.join("gdbinit");
    std::fs::write(&gdbinit, script).map_err(|source| Error::Io {
        op: "writing",
        path: gdbinit.clone(),
        source,
    })?;
    Ok(Prepared {
        gdbinit,
        core: core.to_path_buf(),
        executable,
        fetched,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysroot_paths_stay_inside() {
        assert_eq!(
            sysroot_relative("/usr/lib/libc.so.6"),
            Some(PathBuf::from("usr/lib/libc.so.6"))
        );
        assert_eq!(
            sysroot_relative("/app/../../etc/x (deleted)"),
            Some(PathBuf::from("app/etc/x"))
        );
        assert_eq!(sysroot_relative("/"), None);
    }

    #[test]
    fn buildid_paths() {
        assert_eq!(
            buildid_path("ns", "ab12", "executable"),
            "/apis/coredump.fujitsu.com/v1alpha1/namespaces/ns/buildid/ab12/executable"
        );
    }
}
