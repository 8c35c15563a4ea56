//! etcd watches as [`WatchStream`]s: one etcd watch per stream, from `after + 1`, with `prev_kv`
//! so deletions carry the last value. A compacted start revision ends the stream with
//! [`StoreError::Expired`]; a broken connection ends it with a `Backend` error, so the API
//! server closes the client's watch and the client re-watches or re-lists.

use std::collections::VecDeque;

use bytes::Bytes;
use etcd_client::{EventType as EtcdEventType, WatchOptions, WatchResponse};
use futures::StreamExt;

use super::errors::{backend, bounded};
use super::{EtcdStore, etcd_rev, rev};
use crate::StoreError;
use crate::metadata::{EventType, StoredObject, WatchEvent, WatchStream};

/// Stream state between polls.
struct State {
    store: EtcdStore,
    stream: etcd_client::WatchStream,
    after: u64,
    ready: VecDeque<WatchEvent>,
    /// The error that ends the stream, delivered after the events already decoded.
    failed: Option<StoreError>,
    done: bool,
}

impl State {
    async fn next(&mut self) -> Option<Result<WatchEvent, StoreError>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            if let Some(e) = self.failed.take() {
                self.done = true;
                return Some(Err(e));
            }
            if self.done {
                return None;
            }
            let response = match self.stream.message().await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    self.done = true;
                    return Some(Err(StoreError::backend(
                        "etcd watch",
                        "etcd closed the watch stream",
                    )));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(backend("watch", e)));
                }
            };
            if let Err(e) = self.absorb(&response) {
                // Events before the failure in this response still go out first.
                self.failed = Some(e);
            }
        }
    }

    /// Turns one etcd response into events (or the end of the watch).
    fn absorb(&mut self, response: &WatchResponse) -> Result<(), StoreError> {
        if response.compact_revision() > 0 {
            return Err(StoreError::Expired {
                requested: self.after,
                oldest: rev(response.compact_revision()),
            });
        }
        if response.canceled() {
            return Err(StoreError::backend(
                "etcd watch",
                format!("etcd canceled the watch: {}", response.cancel_reason()),
            ));
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let key = self.store.store_key(kv)?;
            let revision = rev(kv.mod_revision());
            let (event_type, value) = match event.event_type() {
                EtcdEventType::Put if kv.create_revision() == kv.mod_revision() => {
                    (EventType::Added, kv.value().to_vec())
                }
                EtcdEventType::Put => (EventType::Modified, kv.value().to_vec()),
                EtcdEventType::Delete => match event.prev_kv() {
                    Some(prev) => (EventType::Deleted, prev.value().to_vec()),
                    // etcd drops prev_kv once it is compacted: the last value is lost, so the
                    // watcher must re-list rather than get a deletion without it.
                    None => {
                        return Err(StoreError::Expired {
                            requested: revision.saturating_sub(1),
                            oldest: revision,
                        });
                    }
                },
            };
            self.ready.push_back(WatchEvent {
                event_type,
                object: StoredObject {
                    key,
                    revision,
                    value: Bytes::from(value),
                },
            });
            self.after = revision;
        }
        Ok(())
    }
}

/// Opens an etcd watch of `[from, to)` for changes after `after_revision`.
pub(super) async fn start(
    store: &EtcdStore,
    from: String,
    to: String,
    after_revision: u64,
) -> Result<WatchStream, StoreError> {
    let operation = format!("watch {from}");
    let options = WatchOptions::new()
        .with_range(to)
        .with_start_revision(etcd_rev(after_revision.saturating_add(1)))
        .with_prev_key()
        // etcd's answer to a watch that catches up holds every event since its start at once,
        // larger than any client takes when objects are large; in fragments each answer stays
        // near etcd's request size limit. Events are handled one by one, and each of our
        // revisions is one change, so a fragment never splits what belongs together.
        .with_fragment();
    let mut client = store.watcher.clone();
    let stream = bounded(
        store.options.request_timeout,
        &operation,
        client.watch(from, Some(options)),
    )
    .await?
    .map_err(|e| backend(&operation, e))?;
    let state = State {
        store: store.clone(),
        stream,
        after: after_revision,
        ready: VecDeque::new(),
        failed: None,
        done: false,
    };
    Ok(futures::stream::unfold(state, |mut s| async move {
        s.next().await.map(|item| (item, s))
    })
    .boxed())
}
