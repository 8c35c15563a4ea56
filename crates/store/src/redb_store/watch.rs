//! Watches of the embedded store: replay from the history table, then follow the in-process
//! broadcast of committed changes.
//!
//! Every revision is exactly one change, so a watcher knows the revision it must see next. It
//! subscribes to the broadcast before reading history, then takes live events only while they
//! arrive without a gap; if the broadcast lagged (a slow watcher) or a revision is missing, it
//! goes back to the history table from the last revision it saw. If that part of history has
//! been pruned the stream ends with [`StoreError::Expired`]: an event is never skipped silently.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use futures::StreamExt;
use redb::ReadableDatabase;
use tokio::sync::broadcast::{self, error::RecvError};

use super::Inner;
use super::tables::{HISTORY, META, META_COMPACT, META_REVISION, Record, db_err, read_meta};
use crate::StoreError;
use crate::metadata::{WatchEvent, WatchStream};

/// Most history records read by one blocking call while catching up.
const CATCH_UP_CHUNK: u64 = 512;

/// Which changes a watcher wants.
#[derive(Clone)]
pub(super) struct Filter {
    /// Plural resource name.
    pub resource: String,
    /// Only this namespace, if set.
    pub namespace: Option<String>,
}

impl Filter {
    fn matches(&self, event: &WatchEvent) -> bool {
        let key = &event.object.key;
        key.resource == self.resource
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| *ns == key.namespace)
    }
}

/// Result of reading one chunk of history.
struct Chunk {
    /// Matching events, in order.
    events: Vec<WatchEvent>,
    /// Last revision examined (matching or not).
    through: u64,
    /// Whether `through` was the latest committed revision at the time of the read.
    at_end: bool,
}

/// Reads history records after `after` (at most [`CATCH_UP_CHUNK`]).
fn read_history(inner: &Inner, filter: &Filter, after: u64) -> Result<Chunk, StoreError> {
    let txn = inner.db.begin_read().map_err(db_err("begin read"))?;
    let meta = txn.open_table(META).map_err(db_err("open meta"))?;
    let current = read_meta(&meta, META_REVISION)?;
    let compacted = read_meta(&meta, META_COMPACT)?;
    if after + 1 < compacted {
        return Err(StoreError::Expired {
            requested: after,
            oldest: compacted,
        });
    }
    let mut chunk = Chunk {
        events: Vec::new(),
        through: after,
        at_end: true,
    };
    if after >= current {
        return Ok(chunk);
    }
    let last = current.min(after + CATCH_UP_CHUNK);
    let history = txn.open_table(HISTORY).map_err(db_err("open history"))?;
    for item in history
        .range(after + 1..=last)
        .map_err(db_err("read history"))?
    {
        let (rev, record) = item.map_err(db_err("read history"))?;
        let rev = rev.value();
        let event = Record::decode(rev, record.value())?.into_event(rev)?;
        if filter.matches(&event) {
            chunk.events.push(event);
        }
    }
    chunk.through = last;
    chunk.at_end = last == current;
    Ok(chunk)
}

/// The state of one watch stream between polls.
struct Watcher {
    inner: Weak<Inner>,
    rx: broadcast::Receiver<Arc<WatchEvent>>,
    filter: Filter,
    /// Last revision delivered or skipped: the next one expected is `seen + 1`.
    seen: u64,
    catching_up: bool,
    ready: VecDeque<WatchEvent>,
    done: bool,
}

impl Watcher {
    async fn next(&mut self) -> Option<Result<WatchEvent, StoreError>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            if self.catching_up {
                // The store is gone: end quietly, like a closed broadcast.
                let inner = self.inner.upgrade()?;
                let (filter, after) = (self.filter.clone(), self.seen);
                let read =
                    tokio::task::spawn_blocking(move || read_history(&inner, &filter, after))
                        .await
                        .unwrap_or_else(|e| Err(StoreError::backend("watch catch-up task", e)));
                match read {
                    Ok(chunk) => {
                        self.ready.extend(chunk.events);
                        self.seen = chunk.through;
                        self.catching_up = !chunk.at_end;
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(event) => {
                    let rev = event.object.revision;
                    if rev <= self.seen {
                        continue; // already replayed from history
                    }
                    if rev != self.seen + 1 {
                        self.catching_up = true; // a gap: history has it
                        continue;
                    }
                    self.seen = rev;
                    if self.filter.matches(&event) {
                        return Some(Ok(WatchEvent::clone(&event)));
                    }
                }
                Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => {
                    self.done = true;
                    return None;
                }
            }
        }
    }
}

/// Starts a watch of `filter` after `after_revision`.
pub(super) fn start(inner: &Arc<Inner>, filter: Filter, after_revision: u64) -> WatchStream {
    let watcher = Watcher {
        rx: inner.events.subscribe(),
        inner: Arc::downgrade(inner),
        filter,
        seen: after_revision,
        catching_up: true,
        ready: VecDeque::new(),
        done: false,
    };
    futures::stream::unfold(watcher, |mut w| async move {
        w.next().await.map(|item| (item, w))
    })
    .boxed()
}
