//! A whole list read a store page at a time: what unchunked lists and watches from "now" need.
//! Every page after the first is read at the first page's revision (the store's continue token
//! carries it), so the pages together are the snapshot one read would have given, and the
//! reader holds one page, not the list. Where the store can stream the rest of a range in one
//! answer ([`coredump_store::MetadataStore::list_rest`], etcd 3.7's `RangeStream`), the rest
//! comes that way: etcd counts every key after a page for each page it answers, so 200 pages
//! cost it the square of the list.

use coredump_store::{ListRequest, ObjectChunks};
use futures::StreamExt;

use super::{ListOptions, ObjectList, Registry, Stored, matching};
use crate::error::ApiError;

/// Objects read from the store per page.
pub const STORE_PAGE: usize = 500;

/// The pages of one list after its first: [`PagedList::start`] reads the first, [`PagedList::next`]
/// each further one until the store has no more.
pub struct PagedList {
    registry: Registry,
    namespace: Option<String>,
    /// The selectors, and the continue token of the next page (`None` after the last).
    opts: ListOptions,
    /// The rest of the list as one streamed answer, when the store has one.
    streamed: Option<ObjectChunks>,
}

impl PagedList {
    /// Reads the first page of what `opts` selects (its `limit` and continue token are
    /// replaced) and returns it with the reader of the rest.
    pub async fn start<R: Stored>(
        registry: &Registry,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<(ObjectList<R>, PagedList), ApiError> {
        let mut opts = opts.clone();
        opts.limit = STORE_PAGE;
        opts.continue_token = None;
        let first = registry.list::<R>(namespace, &opts).await?;
        opts.continue_token.clone_from(&first.continue_token);
        let streamed = match &first.continue_token {
            Some(token) => {
                registry
                    .metadata_store()
                    .list_rest(&ListRequest {
                        resource: R::PLURAL.to_owned(),
                        namespace: namespace.map(str::to_owned),
                        limit: 0,
                        continue_token: Some(token.clone()),
                    })
                    .await?
            }
            None => None,
        };
        Ok((
            first,
            PagedList {
                registry: registry.clone(),
                namespace: namespace.map(str::to_owned),
                opts,
                streamed,
            },
        ))
    }

    /// Whether a page remains to be read.
    pub fn has_more(&self) -> bool {
        self.opts.continue_token.is_some()
    }

    /// The namespace listed, `None` for all namespaces: for messages.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The next page's matching objects, `None` after the last page. A page may hold no match
    /// and still not be the last.
    pub async fn next<R: Stored>(&mut self) -> Option<Result<Vec<R>, ApiError>> {
        self.opts.continue_token.as_ref()?;
        let page = match self.streamed.as_mut() {
            Some(chunks) => match chunks.next().await {
                None => {
                    self.end();
                    return None;
                }
                Some(chunk) => chunk
                    .map_err(ApiError::from)
                    .and_then(|chunk| matching(&chunk, &self.opts)),
            },
            None => self
                .registry
                .list::<R>(self.namespace.as_deref(), &self.opts)
                .await
                .map(|page| {
                    self.opts.continue_token = page.continue_token;
                    page.items
                }),
        };
        if page.is_err() {
            // A failed page ends the list: the caller reports it, nothing is retried.
            self.end();
        }
        Some(page)
    }

    fn end(&mut self) {
        self.opts.continue_token = None;
        self.streamed = None;
    }
}
