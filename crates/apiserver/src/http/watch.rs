//! Watch: a chunked stream of `{"type","object"}` JSON lines. Semantics kept from Kubernetes:
//! `resourceVersion` absent or `0` starts with synthetic ADDED events for the current objects;
//! a specific version replays later changes only (410 Expired as an ERROR event when history is
//! gone); `sendInitialEvents=true` sends the current objects, then a BOOKMARK annotated
//! `k8s.io/initial-events-end`; `allowWatchBookmarks` adds periodic BOOKMARKs; `timeoutSeconds`
//! ends the stream. The stream is produced by a task that stops when the client goes away.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use coredump_api::meta::INITIAL_EVENTS_END_ANNOTATION;
use coredump_api::{
    API_VERSION, IncludeObject, ListMeta, ObjectMeta, PartialObjectMetadata, Resource, Table,
    WatchEvent, WatchEventType,
};
use coredump_store::{EventType, StoreError, WatchStream};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::negotiate::Representation;
use super::params::Params;
use super::render;
use crate::AppState;
use crate::error::ApiError;
use crate::registry::pages::PagedList;
use crate::registry::{ListOptions, Stored, decode, matches};

/// Default watch duration when the client gives no `timeoutSeconds`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Longest watch we serve.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// A BOOKMARK's object: only type and metadata.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bookmark {
    api_version: &'static str,
    kind: &'static str,
    metadata: ObjectMeta,
}

struct Emitter<R> {
    repr: Representation,
    include: IncludeObject,
    columns_sent: bool,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    _kind: std::marker::PhantomData<fn() -> R>,
}

impl<R: Resource> Emitter<R> {
    /// Sends one line; `false` when the client is gone.
    async fn line<T: Serialize>(&mut self, event: &WatchEvent<T>) -> bool {
        match serde_json::to_vec(event) {
            Ok(mut bytes) => {
                bytes.push(b'\n');
                self.tx.send(Ok(Bytes::from(bytes))).await.is_ok()
            }
            Err(e) => {
                tracing::error!(error = %e, "encoding watch event");
                false
            }
        }
    }

    async fn object(&mut self, event_type: WatchEventType, obj: &R) -> bool {
        let columns = !self.columns_sent;
        match render::object_value(self.repr, obj, self.include, columns) {
            Ok(object) => {
                self.columns_sent = true;
                self.line(&WatchEvent { event_type, object }).await
            }
            Err(e) => {
                tracing::error!(error = %e, "rendering watch event");
                false
            }
        }
    }

    async fn bookmark(&mut self, revision: u64, initial_end: bool) -> bool {
        let mut metadata = ObjectMeta {
            resource_version: revision.to_string(),
            ..Default::default()
        };
        if initial_end {
            metadata
                .annotations
                .insert(INITIAL_EVENTS_END_ANNOTATION.to_owned(), "true".to_owned());
        }
        let object = match self.repr {
            Representation::Object => render::to_value(&Bookmark {
                api_version: API_VERSION,
                kind: R::KIND,
                metadata,
            }),
            Representation::Table(v) => {
                let mut t = Table::<coredump_api::TableRow>::new(
                    ListMeta {
                        resource_version: revision.to_string(),
                        ..Default::default()
                    },
                    Vec::new(),
                    Vec::new(),
                );
                v.clone_into(&mut t.api_version);
                render::to_value(&t)
            }
            Representation::PartialMetadata => {
                render::to_value(&PartialObjectMetadata::new(metadata))
            }
        };
        match object {
            Ok(object) => {
                self.line(&WatchEvent {
                    event_type: WatchEventType::Bookmark,
                    object,
                })
                .await
            }
            Err(_) => false,
        }
    }

    async fn error(&mut self, err: ApiError) -> bool {
        let status = err.to_status();
        self.line(&WatchEvent {
            event_type: WatchEventType::Error,
            object: status,
        })
        .await
    }
}

/// Where a watch starts.
enum Start {
    /// Synthetic ADDED for current objects, then changes after their revision.
    Initial { end_bookmark: bool },
    /// Changes after this revision.
    After(u64),
    /// Changes after the current revision, nothing before.
    Now,
}

fn start(params: &Params) -> Result<Start, ApiError> {
    let rv = params.get("resourceVersion").unwrap_or_default();
    let send_initial = params.get("sendInitialEvents");
    match send_initial {
        Some("true" | "1") => {
            if params.get("resourceVersionMatch") != Some("NotOlderThan") {
                return Err(ApiError::bad_request(
                    "sendInitialEvents=true requires resourceVersionMatch=NotOlderThan",
                ));
            }
            if !params.flag("allowWatchBookmarks")? {
                return Err(ApiError::bad_request(
                    "sendInitialEvents=true requires allowWatchBookmarks=true",
                ));
            }
            return Ok(Start::Initial { end_bookmark: true });
        }
        Some("false" | "0") if rv.is_empty() || rv == "0" => return Ok(Start::Now),
        Some("" | "false" | "0") | None => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "invalid sendInitialEvents {v:?}"
            )));
        }
    }
    if params
        .get("resourceVersionMatch")
        .is_some_and(|m| !m.is_empty())
    {
        return Err(ApiError::bad_request(
            "resourceVersionMatch is only allowed on watch with sendInitialEvents=true",
        ));
    }
    if rv.is_empty() || rv == "0" {
        return Ok(Start::Initial {
            end_bookmark: false,
        });
    }
    rv.parse()
        .map(Start::After)
        .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))
}

/// Starts a watch and returns the streaming response.
pub async fn serve<R: Stored>(
    state: &AppState,
    namespace: Option<&str>,
    repr: Representation,
    include: IncludeObject,
    opts: ListOptions,
    params: &Params,
) -> Result<Response, ApiError> {
    let start = start(params)?;
    let bookmarks = params.flag("allowWatchBookmarks")?;
    let timeout = params
        .number("timeoutSeconds")?
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT)
        .min(MAX_TIMEOUT);
    let registry = &state.registry;
    let (initial, after, end_bookmark) = match start {
        Start::Initial { end_bookmark } => {
            // The current objects a store page at a time, as an unchunked list reads them: the
            // first page now (its revision is where the watch starts), the rest while sending.
            let (list, rest) = PagedList::start::<R>(registry, namespace, &opts).await?;
            let rev = list.resource_version;
            let initial = Initial {
                items: list.items,
                rest: Some(rest),
            };
            (initial, rev, end_bookmark)
        }
        Start::After(rev) => (Initial::none(), rev, false),
        Start::Now => (
            Initial::none(),
            registry.metadata_store().current_revision().await?,
            false,
        ),
    };
    let stream = registry
        .metadata_store()
        .watch(R::PLURAL, namespace, after)
        .await?;
    let (tx, rx) = mpsc::channel(16);
    let emitter = Emitter::<R> {
        repr,
        include,
        columns_sent: false,
        tx,
        _kind: std::marker::PhantomData,
    };
    let interval = state.bookmark_interval;
    tokio::spawn(pump(
        emitter,
        initial,
        after,
        end_bookmark,
        stream,
        opts,
        bookmarks.then_some(interval),
        timeout,
    ));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

/// The objects a watch from "now" first sends as `ADDED`: the first store page, read before
/// the answer, and the reader of the further pages, read while the events go out.
struct Initial<R> {
    items: Vec<R>,
    rest: Option<PagedList>,
}

impl<R: Stored> Initial<R> {
    /// Nothing to send first (a watch from a given version).
    fn none() -> Self {
        Initial {
            items: Vec::new(),
            rest: None,
        }
    }

    /// Sends every page as `ADDED` events; false when the watch ended (client gone, a page
    /// unreadable: then the client got an ERROR event).
    async fn send(mut self, out: &mut Emitter<R>) -> bool {
        loop {
            for obj in &self.items {
                if !out.object(WatchEventType::Added, obj).await {
                    return false;
                }
            }
            let Some(rest) = self.rest.as_mut() else {
                return true;
            };
            match rest.next::<R>().await {
                None => return true,
                Some(Ok(items)) => self.items = items,
                Some(Err(e)) => {
                    out.error(e).await;
                    return false;
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn pump<R: Stored>(
    mut out: Emitter<R>,
    initial: Initial<R>,
    after: u64,
    end_bookmark: bool,
    mut stream: WatchStream,
    opts: ListOptions,
    bookmark_every: Option<Duration>,
    timeout: Duration,
) {
    if !initial.send(&mut out).await {
        return;
    }
    if end_bookmark && !out.bookmark(after, true).await {
        return;
    }
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let period = bookmark_every.unwrap_or(Duration::from_secs(3600));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut last = after;
    loop {
        tokio::select! {
            () = &mut deadline => return,
            () = out.tx.closed() => return,
            _ = ticker.tick(), if bookmark_every.is_some() => {
                if !out.bookmark(last, false).await { return; }
            }
            next = stream.next() => {
                let ev = match next {
                    None => return,
                    Some(Err(e @ StoreError::Expired { .. })) => { out.error(e.into()).await; return; }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "watch stream failed");
                        out.error(ApiError::from(e)).await;
                        return;
                    }
                    Some(Ok(ev)) => ev,
                };
                last = ev.object.revision;
                let obj: R = match decode(&ev.object) {
                    Ok(o) => o,
                    Err(e @ ApiError::Corrupt { .. }) => {
                        tracing::error!(error = %e, "leaving a refused stored object out of a watch");
                        continue;
                    }
                    Err(e) => { out.error(e).await; return; }
                };
                if !matches(&obj, &opts) { continue; }
                let t = match ev.event_type {
                    EventType::Added => WatchEventType::Added,
                    EventType::Modified => WatchEventType::Modified,
                    EventType::Deleted => WatchEventType::Deleted,
                };
                if !out.object(t, &obj).await { return; }
            }
        }
    }
}
