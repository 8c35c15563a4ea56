//! What each subcommand does, as library functions the binary calls after parsing flags:
//! `list` and `get` print, the two downloads go through [`crate::download::save`].

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
}

/// `download NAME`: the `core` subresource of a `Coredump` into `output` (default `NAME.core`),
/// checked against the record's `coreSize` and `sha256`. `show_progress` draws a bar on stderr.
pub async fn download_core(
    client: &Client,
    namespace: &str,
    name: &str,
    output: Option<&Path>,
    show_progress: bool,
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
    let response = api::open(
        client,
        &api::core_path(namespace, name),
        &format!("downloading the {what}"),
    )
    .await?;
    let recorded = record.status.core_size;
    if let Some(announced) = content_length(response.headers()).filter(|n| *n != recorded) {
        return Err(Error::Announced {
            what,
            announced,
            recorded,
        });
    }
    let expected = Expected {
        length: Some(recorded),
        sha256: Some(record.status.sha256.clone()).filter(|s| !s.is_empty()),
    };
    let dest = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("{name}.core")));
    fetch_to(response, dest, &expected, &what, name, show_progress).await
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
