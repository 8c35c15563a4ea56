//! Lists without `limit` (`kubectl get --chunk-size=0`, clients that never page): the server
//! reads the store a page at a time ([`PagedList`]), every page at the first page's revision
//! (the store's continue token carries it, so the result is the same snapshot one read would
//! give), and writes each page to the client as soon as it is rendered, reading the next one
//! and rendering the one before meanwhile. The server holds a few pages, not the whole list, whatever the number of
//! objects: 100 000 records cost what 500 do.
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
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::negotiate::Representation;
use super::render;
use crate::error::ApiError;
use crate::registry::pages::PagedList;
use crate::registry::{ListOptions, ObjectList, Registry, Stored};

/// Serves the whole list `opts` selects (its `limit` is ignored: the caller asked for none).
pub async fn serve<R: Stored>(
    registry: &Registry,
    namespace: Option<&str>,
    repr: Representation,
    include: IncludeObject,
    opts: ListOptions,
) -> Result<Response, ApiError> {
    let (first, rest) = PagedList::start::<R>(registry, namespace, &opts).await?;
    if !rest.has_more() {
        return render::list(repr, first, include);
    }
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
        namespace: rest.namespace().map(str::to_owned),
        repr,
        include,
        now: OffsetDateTime::now_utc(),
        wrote_item: false,
    };
    // Three stages, each a page apart: the store read of one page, the rendering of the one
    // before, and the client's transfer of the one before that. One page waits in each channel,
    // so memory stays a few pages, and on a busy machine no stage waits for another's latency.
    let (page_tx, page_rx) = mpsc::channel(1);
    tokio::spawn(read_ahead::<R>(rest, page_tx));
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(pages.produce::<R>(prefix, first.items, page_rx, tx));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

/// Reads every page after the first into `pages`, ending after the last page, a failed page
/// (sent on as the error), or when the renderer is gone.
async fn read_ahead<R: Stored>(mut rest: PagedList, pages: mpsc::Sender<Result<Vec<R>, ApiError>>) {
    while let Some(page) = rest.next::<R>().await {
        let failed = page.is_err();
        if pages.send(page).await.is_err() || failed {
            return;
        }
    }
}

/// What every page of one unchunked list shares.
struct Pages {
    /// For messages: the namespace listed, `None` for all.
    namespace: Option<String>,
    repr: Representation,
    include: IncludeObject,
    /// One clock for every row's age, as one page would have.
    now: OffsetDateTime,
    wrote_item: bool,
}

impl Pages {
    /// Sends `opening` with `first`'s items, then every page [`read_ahead`] reads, then the
    /// closing; stops as soon as the client is gone, ends the body with an error if a page
    /// cannot be read.
    async fn produce<R: Stored>(
        mut self,
        mut chunk: Vec<u8>,
        first: Vec<R>,
        mut pages: mpsc::Receiver<Result<Vec<R>, ApiError>>,
        tx: mpsc::Sender<std::io::Result<Bytes>>,
    ) {
        let mut next = self.append(&first, &mut chunk).map(|()| chunk);
        loop {
            let failed = next.is_err();
            if tx.send(next.map(Bytes::from)).await.is_err() || failed {
                return; // the client went away, or the body ends with the error
            }
            next = match pages.recv().await {
                None => {
                    let _ = tx.send(Ok(Bytes::from_static(b"]}"))).await;
                    return;
                }
                Some(Ok(items)) => {
                    let mut chunk = Vec::new();
                    self.append(&items, &mut chunk).map(|()| chunk)
                }
                Some(Err(e)) => Err(self.cut_off(&e)),
            };
        }
    }

    fn append<R: Stored>(&mut self, items: &[R], out: &mut Vec<u8>) -> std::io::Result<()> {
        for item in items {
            if self.wrote_item {
                out.push(b',');
            }
            render::append_list_item(self.repr, item, self.include, self.now, out)
                .map_err(|e| self.cut_off(&e))?;
            self.wrote_item = true;
        }
        Ok(())
    }

    /// Logs why a list that already answered 200 stops, and the error that cuts its body off.
    fn cut_off(&self, e: &ApiError) -> std::io::Error {
        let namespace = self.namespace.as_deref().unwrap_or("(all namespaces)");
        tracing::error!(namespace, error = %e, "an unchunked list broke off after its first page");
        std::io::Error::other(format!("list broke off: {e}"))
    }
}
