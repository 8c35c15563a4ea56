//! Lists without `limit` (`kubectl get --chunk-size=0`, clients that never page): the server
//! reads the store [`STORE_PAGE`] objects at a time, every page at the first page's revision
//! (the store's continue token carries it, so the result is the same snapshot one read would
//! give), and writes each page to the client as soon as it is read. The server holds one page,
//! not the whole list, whatever the number of objects: 100 000 records cost what 500 do.
//!
//! The body is byte for byte what [`render::list`] writes for the same objects in one page. A
//! store error after the first page (etcd gone, the snapshot compacted away) can no longer
//! become an error status: the body is cut off, so the client sees a broken response rather
//! than a short list that looks whole.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use coredump_api::IncludeObject;
use time::OffsetDateTime;

use super::negotiate::Representation;
use super::render;
use crate::error::ApiError;
use crate::registry::{ListOptions, ObjectList, Registry, Stored};

/// Objects read from the store per page of an unchunked list.
pub const STORE_PAGE: usize = 500;

/// Serves the whole list `opts` selects (its `limit` is ignored: the caller asked for none).
pub async fn serve<R: Stored>(
    registry: &Registry,
    namespace: Option<&str>,
    repr: Representation,
    include: IncludeObject,
    mut opts: ListOptions,
) -> Result<Response, ApiError> {
    opts.limit = STORE_PAGE;
    let first = registry.list::<R>(namespace, &opts).await?;
    let Some(next) = first.continue_token.clone() else {
        return render::list(repr, first, include);
    };
    let envelope = ObjectList::<R> {
        items: Vec::new(),
        resource_version: first.resource_version,
        continue_token: None,
    };
    let (mut prefix, content_type) = render::list_body(repr, envelope, include)?;
    if !prefix.ends_with(b"[]}") {
        return Err(ApiError::Internal {
            message: "a list's representation does not end with its items".to_owned(),
        });
    }
    prefix.truncate(prefix.len() - 2);
    let pages = Pages {
        registry: registry.clone(),
        namespace: namespace.map(str::to_owned),
        repr,
        include,
        opts,
        now: OffsetDateTime::now_utc(),
        wrote_item: false,
    };
    let stream = futures::stream::try_unfold(
        (pages, Step::First(prefix, first.items, next)),
        |(mut pages, step)| async move {
            let chunk = match step {
                Step::First(mut prefix, items, next) => {
                    pages.append(&items, &mut prefix)?;
                    (prefix, Step::Next(next))
                }
                Step::Next(token) => {
                    let page = pages.read::<R>(token).await?;
                    let mut chunk = Vec::new();
                    pages.append(&page.items, &mut chunk)?;
                    match page.continue_token {
                        Some(next) => (chunk, Step::Next(next)),
                        None => {
                            chunk.extend_from_slice(b"]}");
                            (chunk, Step::Done)
                        }
                    }
                }
                Step::Done => return Ok(None),
            };
            Ok::<_, std::io::Error>(Some((Bytes::from(chunk.0), (pages, chunk.1))))
        },
    );
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Where the stream is: the first page (already read) with the body's opening, the next page
/// to read, or past the last one.
enum Step<R> {
    First(Vec<u8>, Vec<R>, String),
    Next(String),
    Done,
}

/// What every page of one unchunked list shares.
struct Pages {
    registry: Registry,
    namespace: Option<String>,
    repr: Representation,
    include: IncludeObject,
    opts: ListOptions,
    /// One clock for every row's age, as one page would have.
    now: OffsetDateTime,
    wrote_item: bool,
}

impl Pages {
    async fn read<R: Stored>(&mut self, token: String) -> std::io::Result<ObjectList<R>> {
        self.opts.continue_token = Some(token);
        self.registry
            .list::<R>(self.namespace.as_deref(), &self.opts)
            .await
            .map_err(|e| cut_off(&self.namespace, &e))
    }

    fn append<R: Stored>(&mut self, items: &[R], out: &mut Vec<u8>) -> std::io::Result<()> {
        for item in items {
            if self.wrote_item {
                out.push(b',');
            }
            render::append_list_item(self.repr, item, self.include, self.now, out)
                .map_err(|e| cut_off(&self.namespace, &e))?;
            self.wrote_item = true;
        }
        Ok(())
    }
}

/// Logs why a list that already answered 200 stops, and the error that cuts its body off.
fn cut_off(namespace: &Option<String>, e: &ApiError) -> std::io::Error {
    let namespace = namespace.as_deref().unwrap_or("(all namespaces)");
    tracing::error!(namespace, error = %e, "an unchunked list broke off after its first page");
    std::io::Error::other(format!("list broke off: {e}"))
}
