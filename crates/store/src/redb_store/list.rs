//! Paginated lists of the embedded store, consistent across pages.
//!
//! redb's MVCC snapshots live only as long as a read transaction, which cannot be kept between
//! HTTP requests. Instead every page is answered *as of the first page's revision* `R`: in one
//! read transaction we take the live objects and undo, for each key changed after `R`, the
//! changes recorded in history (each record keeps the object's previous state). That is exact as
//! long as the history after `R` is complete; once it has been pruned the continue token is
//! [`StoreError::Expired`], as with etcd after compaction. Cost per page: one scan of the history
//! records after `R` (bounded by the window) plus the page itself.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use redb::ReadableDatabase;

use super::Inner;
use super::tables::{
    HISTORY, META, META_COMPACT, META_REVISION, OBJECTS, Record, db_err, read_meta,
};
use crate::StoreError;
use crate::key;
use crate::metadata::{ListPage, ListRequest, StoredObject};
use crate::token::ContinueToken;

/// One candidate entry in key order: encoded key and its state at the list revision.
type Entry = (String, Option<(u64, Vec<u8>)>);

/// Answers one page of `request`.
pub(super) fn list(inner: &Inner, request: &ListRequest) -> Result<ListPage, StoreError> {
    let (start, end) = key::prefix_range(&request.resource, request.namespace.as_deref())?;
    let token = request
        .continue_token
        .as_deref()
        .map(ContinueToken::decode)
        .transpose()?;
    let txn = inner.db.begin_read().map_err(db_err("begin read"))?;
    let meta = txn.open_table(META).map_err(db_err("open meta"))?;
    let current = read_meta(&meta, META_REVISION)?;
    let compacted = read_meta(&meta, META_COMPACT)?;
    let (revision, after) = match &token {
        Some(t) => (t.rev, Some(t.full_key(&request.resource, &start)?)),
        None => (current, None),
    };
    if revision > current {
        return Err(StoreError::Invalid {
            what: "continue token (revision from the future)",
            value: request.continue_token.clone().unwrap_or_default(),
        });
    }
    // The state at `revision` needs every record from `revision + 1` on.
    if revision + 1 < compacted {
        return Err(StoreError::Expired {
            requested: revision,
            oldest: compacted,
        });
    }
    let lower = match &after {
        Some(a) => Bound::Excluded(a.as_str()),
        None => Bound::Included(start.as_str()),
    };
    let in_range = |k: &str| {
        let above = match &after {
            Some(a) => k > a.as_str(),
            None => k >= start.as_str(),
        };
        above && k < end.as_str()
    };

    // Keys changed after `revision`: their state then is the `prev` of their first later record.
    let mut undone: BTreeMap<String, Option<(u64, Vec<u8>)>> = BTreeMap::new();
    if revision < current {
        let history = txn.open_table(HISTORY).map_err(db_err("open history"))?;
        for item in history
            .range(revision + 1..=current)
            .map_err(db_err("read history"))?
        {
            let (rev, record) = item.map_err(db_err("read history"))?;
            let record = Record::decode(rev.value(), record.value())?;
            if in_range(&record.key) && !undone.contains_key(&record.key) {
                undone.insert(record.key, record.prev);
            }
        }
    }

    let objects = txn.open_table(OBJECTS).map_err(db_err("open objects"))?;
    let mut live = objects
        .range::<&str>((lower, Bound::Excluded(end.as_str())))
        .map_err(db_err("read objects"))?
        .map(|item| {
            item.map(|(k, v)| {
                let (rev, value) = v.value();
                (k.value().to_owned(), Some((rev, value.to_vec())))
            })
            .map_err(db_err("read objects"))
        });
    let mut changed = undone.into_iter();
    let mut next_live: Option<Entry> = live.next().transpose()?;
    let mut next_changed: Option<Entry> = changed.next();

    let mut items = Vec::new();
    let mut more = false;
    loop {
        // Merge the two key-ordered sequences; on equal keys the history wins.
        let entry = match (&next_live, &next_changed) {
            (None, None) => break,
            (Some(l), Some(c)) if l.0 < c.0 => take_live(&mut next_live, &mut live)?,
            (Some(l), Some(c)) if l.0 == c.0 => {
                take_live(&mut next_live, &mut live)?;
                take(&mut next_changed, &mut changed)
            }
            (Some(_), None) => take_live(&mut next_live, &mut live)?,
            (_, Some(_)) => take(&mut next_changed, &mut changed),
        };
        let (encoded, Some((rev, value))) = entry else {
            continue; // did not exist at `revision`
        };
        if request.limit > 0 && items.len() == request.limit {
            more = true;
            break;
        }
        let key = key::decode(&encoded).ok_or_else(|| {
            StoreError::backend(
                "list",
                format!("malformed key {encoded:?} in objects table"),
            )
        })?;
        items.push(StoredObject {
            key,
            revision: rev,
            value: Bytes::from(value),
        });
    }
    let continue_token = match (more, items.last()) {
        (true, Some(last)) => Some(
            ContinueToken {
                rev: revision,
                after: format!("{}/{}", last.key.namespace, last.key.name),
            }
            .encode(),
        ),
        _ => None,
    };
    Ok(ListPage {
        items,
        revision,
        continue_token,
    })
}

/// Takes the buffered live entry and refills the buffer.
fn take_live(
    slot: &mut Option<Entry>,
    rest: &mut impl Iterator<Item = Result<Entry, StoreError>>,
) -> Result<Entry, StoreError> {
    let next = rest.next().transpose()?;
    Ok(std::mem::replace(slot, next).unwrap_or_default())
}

/// Takes the buffered history entry and refills the buffer.
fn take(slot: &mut Option<Entry>, rest: &mut impl Iterator<Item = Entry>) -> Entry {
    std::mem::replace(slot, rest.next()).unwrap_or_default()
}
