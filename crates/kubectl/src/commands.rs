//! What each subcommand does, as library functions the binary calls after parsing flags:
//! `list` and `get` print, the two downloads go through [`crate::download::save`].

use coredump_api::client::ClientError;
use std::path::{Path, PathBuf};

use coredump_api::{Coredump, CoredumpState};
use futures::TryStreamExt;
use http_body_util::BodyExt;
use kube::Client;

use crate::download::{Expected, progress_bar, save};
use crate::{Error, api, table};

/// Output format of `get`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// The object as YAML (the default, like `kubectl get -o yaml`).
    #[default]
    Yaml,
    /// The object as indented JSON.
    Json,
}

/// `list`: the table of crashes of `namespace` (all when `None`), optionally of one pod, oldest
/// first and newest last. `default_namespace` only names the namespace in the empty message.
pub async fn list(
    client: &Client,
    namespace: Option<&str>,
    pod: Option<&str>,
    now: time::OffsetDateTime,
) -> Result<String, Error> {
    let mut items = api::list_coredumps(client, namespace, pod).await?;
    table::sort_oldest_first(&mut items);
    Ok(table::render(
        &items,
        namespace.is_none(),
        namespace.unwrap_or_default(),
        now,
    ))
}

/// `get`: one `Coredump`, printed in `format`.
pub async fn get(
    client: &Client,
    namespace: &str,
    name: &str,
    format: Format,
) -> Result<String, Error> {
    let object = api::get_coredump(client, namespace, name).await?;
    print(&object, format)
}

/// Prints a `Coredump` as YAML or JSON, ending in a newline.
pub fn print(object: &Coredump, format: Format) -> Result<String, Error> {
    let what = || {
        format!(
            "coredump {:?} in namespace {:?}",
            object.metadata.name, object.metadata.namespace
        )
    };
    match format {
        Format::Yaml => serde_saphyr::to_string(object).map_err(|e| Error::Print {
            what: what(),
            message: e.to_string(),
        }),
        Format::Json => serde_json::to_string_pretty(object)
            .map(|s| s + "\n")
            .map_err(|e| Error::Print {
                what: what(),
                message: e.to_string(),
            }),
    }
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where it was written.
    pub path: PathBuf,
    /// Bytes written.
    pub bytes: u64,
    /// Whether the SHA-256 was checked against the record.
    pub sha256_checked: bool,
    /// Where an earlier, interrupted run had left off, when this one resumed it.
    pub resumed_at: Option<u64>,
}

/// `download NAME`: the `core` subresource of a `Coredump` into `output` (default `NAME.core`)
/// in `Range` pieces of `piece` bytes (default [`crate::resume::PIECE`]) that a later run
/// resumes, checked against the record's `coreSize` and `sha256`. `show_progress` draws a bar
/// on stderr.
pub async fn download_core(
    client: &Client,
    namespace: &str,
    name: &str,
    output: Option<&Path>,
    show_progress: bool,
    piece: Option<u64>,
) -> Result<Downloaded, Error> {
    let record = api::get_coredump(client, namespace, name).await?;
    if !matches!(
        record.status.state,
        CoredumpState::Stored | CoredumpState::Truncated
    ) {
        return Err(Error::NoCore {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            state: record.status.state.as_str().to_owned(),
            message: record.status.message.clone(),
        });
    }
    let what = format!("core of coredump {name:?} in namespace {namespace:?}");
    let dest = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("{name}.core")));
    let size = record.status.core_size;
    let sha256 = Some(record.status.sha256.as_str()).filter(|s| !s.is_empty());
    let bar = progress_bar(Some(size), show_progress);
    bar.set_message(name.to_owned());
    let path = api::core_path(namespace, name);
    let action = format!("downloading the {what}");
    let ranged = crate::resume::Ranged {
        path: &path,
        dest: &dest,
        size,
        sha256,
        piece: piece.unwrap_or(crate::resume::PIECE),
        what: &action,
    };
    let result = crate::resume::download(client, ranged, &bar).await;
    bar.finish_and_clear();
    let (fetched, resumed) = result?;
    Ok(Downloaded {
        path: dest,
        bytes: size,
        sha256_checked: sha256.is_some(),
        resumed_at: resumed.then_some(size - fetched),
    })
}

/// `download --pod POD [--container C]`: the `dump` subresource of the pod's
/// `CoredumpEndpoint` (a `tar.gz` of its cores) into `output` (default `POD-coredump.tar.gz`),
/// checked against `Content-Length` when the server sends one.
pub async fn download_dump(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    output: Option<&Path>,
    show_progress: bool,
) -> Result<Downloaded, Error> {
    api::get_endpoint(client, namespace, pod).await?;
    let what = match container {
        Some(c) => format!("dump of pod {pod:?} container {c:?} in namespace {namespace:?}"),
        None => format!("dump of pod {pod:?} in namespace {namespace:?}"),
    };
    let response = api::open(
        client,
        &api::dump_path(namespace, pod, container),
        &format!("downloading the {what}"),
    )
    .await?;
    let expected = Expected {
        length: content_length(response.headers()),
        sha256: None,
    };
    let dest = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("{pod}-coredump.tar.gz")));
    fetch_to(response, dest, &expected, &what, pod, show_progress).await
}

/// Saves the body of `response` at `dest` as [`save`] does, with a progress bar labelled
/// `label` when `show_progress`.
async fn fetch_to(
    response: http::Response<kube::client::Body>,
    dest: PathBuf,
    expected: &Expected,
    what: &str,
    label: &str,
    show_progress: bool,
) -> Result<Downloaded, Error> {
    let bar = progress_bar(expected.length, show_progress);
    bar.set_message(label.to_owned());
    let body = response
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    let result = save(body, &dest, expected, what, &bar).await;
    bar.finish_and_clear();
    Ok(Downloaded {
        path: dest,
        bytes: result?,
        sha256_checked: expected.sha256.is_some(),
        resumed_at: None,
    })
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// `list --group`: crashes of `namespace` (all when `None`) grouped by signature.
pub async fn list_grouped(client: &Client, namespace: Option<&str>) -> Result<String, Error> {
    let items = api::list_coredumps(client, namespace, None).await?;
    Ok(crate::inspect::render_groups(
        &crate::inspect::groups(&items),
        namespace.is_none(),
    ))
}

/// The `log` subresource of a `Coredump` (the container's last log lines), `None` when the
/// server has none.
pub async fn log(client: &Client, namespace: &str, name: &str) -> Result<Option<String>, Error> {
    let path = format!(
        "{}/log",
        api::object_path(namespace, coredump_api::COREDUMPS, Some(name))
    );
    let action = format!("getting the log of coredump {name:?} in namespace {namespace:?}");
    let response = match api::open(client, &path, &action).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|source| Error::Api(ClientError::Transport { action, source }))?
        .to_bytes();
    Ok(Some(String::from_utf8_lossy(&body).into_owned()))
}

/// `info NAME`: metadata, backtrace, analysis limits and log tail.
pub async fn info(client: &Client, namespace: &str, name: &str) -> Result<String, Error> {
    let record = api::get_coredump(client, namespace, name).await?;
    let log = log(client, namespace, name).await?;
    Ok(crate::inspect::info(&record, log.as_deref()))
}

/// `debug NAME`: downloads the core (resumable) into `dir` and fetches its binaries by build ID
/// (see [`crate::debug`]); returns what was prepared for gdb.
pub async fn debug(
    client: &Client,
    namespace: &str,
    name: &str,
    dir: &Path,
    show_progress: bool,
) -> Result<crate::debug::Prepared, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        op: "creating",
        path: dir.to_path_buf(),
        source,
    })?;
    let core = dir.join(format!("{name}.core"));
    if !core.exists() {
        download_core(client, namespace, name, Some(&core), show_progress, None).await?;
    }
    let record = api::get_coredump(client, namespace, name).await?;
    crate::debug::prepare(client, &record, dir, &core).await
}
