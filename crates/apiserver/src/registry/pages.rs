//! A whole list read a store page at a time: what unchunked lists and watches from "now" need.
//! Every page after the first is read at the first page's revision (the store's continue token
//! carries it), so the pages together are the snapshot one read would have given, and the
//! reader holds one page, not the list.

use super::{ListOptions, ObjectList, Registry, Stored};
use crate::error::ApiError;

/// Objects read from the store per page.
pub const STORE_PAGE: usize = 500;

/// The pages of one list after its first: [`PagedList::start`] reads the first, [`PagedList::next`]
/// each further one until the store has no more.
pub struct PagedList {
    registry: Registry,
    namespace: Option<String>,
    opts: ListOptions,
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
        Ok((
            first,
            PagedList {
                registry: registry.clone(),
                namespace: namespace.map(str::to_owned),
                opts,
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
        match self
            .registry
            .list::<R>(self.namespace.as_deref(), &self.opts)
            .await
        {
            Ok(page) => {
                self.opts.continue_token = page.continue_token;
                Some(Ok(page.items))
            }
            Err(e) => {
                // A failed page ends the list: the caller reports it, nothing is retried.
                self.opts.continue_token = None;
                Some(Err(e))
            }
        }
    }
}
