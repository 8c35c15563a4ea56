//! The one test suite every [`MetadataStore`] backend must pass, shared by the etcd store's and
//! the embedded store's test binaries (`mod conformance;` in each), so both run exactly the same
//! checks. Test code only: it panics, and it does not ship in the library.
//!
//! Each `check_*` function takes a store that it may fill freely and panics with a message
//! naming the check when the store misbehaves. [`run_all`] runs every check, each on a fresh
//! store from the caller's factory; [`check_persistence`] needs a store that can be reopened and
//! is run separately. Checks never assume revisions start at 1 or are contiguous per key range,
//! so several checks may share one etcd (each under its own prefix).

mod concurrency;
mod crud;
mod list;
mod persistence;
mod watch;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use coredump_store::StoreError;
use coredump_store::metadata::{MetadataStore, ObjectKey, WatchEvent, WatchStream};

pub use concurrency::{check_concurrent_creates, check_concurrent_updates};
pub use crud::{
    check_already_exists, check_conflict, check_crud, check_invalid_keys, check_not_found,
    check_revisions_monotonic,
};
pub use list::{
    check_bad_continue_token, check_list_order, check_pagination, check_pagination_snapshot,
};
pub use persistence::check_persistence;
pub use watch::{
    check_expired, check_watch_from_now, check_watch_many_events, check_watch_namespace_filter,
    check_watch_replay_then_live,
};

/// The resource most checks write to.
pub const RESOURCE: &str = "coredumps";
/// A second resource, to prove resources are isolated.
pub const OTHER_RESOURCE: &str = "coredumpendpoints";

/// How long a check waits for an expected watch event before failing.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a check waits to be reasonably sure no further event is coming.
pub const QUIET_PERIOD: Duration = Duration::from_millis(300);

/// Runs every check except [`check_persistence`], each on a store fresh from `make`, in an order
/// where the compaction check comes last (compaction is store-wide in etcd).
pub async fn run_all<S, F, Fut>(make: F)
where
    S: MetadataStore,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    check_crud(&make().await).await;
    check_already_exists(&make().await).await;
    check_not_found(&make().await).await;
    check_conflict(&make().await).await;
    check_invalid_keys(&make().await).await;
    check_revisions_monotonic(&make().await).await;
    check_list_order(&make().await).await;
    check_pagination(&make().await).await;
    check_pagination_snapshot(&make().await).await;
    check_bad_continue_token(&make().await).await;
    check_watch_replay_then_live(&make().await).await;
    check_watch_from_now(&make().await).await;
    check_watch_namespace_filter(&make().await).await;
    check_watch_many_events(&make().await).await;
    check_concurrent_creates(&make().await).await;
    check_concurrent_updates(&make().await).await;
    check_expired(&make().await).await;
}

/// Key of `resource` in `namespace` named `name`.
pub fn key_of(resource: &str, namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        resource: resource.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

/// Key of [`RESOURCE`].
pub fn key(namespace: &str, name: &str) -> ObjectKey {
    key_of(RESOURCE, namespace, name)
}

/// A recognizable JSON value.
pub fn value(text: &str) -> Bytes {
    Bytes::from(format!("{{\"v\":\"{text}\"}}"))
}

/// Unwraps a store result or fails the check, saying which check and what it was doing.
pub fn ok<T>(result: Result<T, StoreError>, check: &str, doing: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("conformance {check}: {doing} failed: {e} ({e:?})"),
    }
}

/// The next event of `stream`, failing the check on error, end or timeout.
pub async fn next_event(stream: &mut WatchStream, check: &str, waiting_for: &str) -> WatchEvent {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => {
            panic!("conformance {check}: watch failed waiting for {waiting_for}: {e}")
        }
        Ok(None) => panic!("conformance {check}: watch ended waiting for {waiting_for}"),
        Err(_) => panic!(
            "conformance {check}: no event within {EVENT_TIMEOUT:?} waiting for {waiting_for}"
        ),
    }
}

/// Fails the check if `stream` yields anything within [`QUIET_PERIOD`].
pub async fn expect_quiet(stream: &mut WatchStream, check: &str, after: &str) {
    if let Ok(item) = tokio::time::timeout(QUIET_PERIOD, stream.next()).await {
        panic!("conformance {check}: unexpected watch item after {after}: {item:?}");
    }
}

/// Current revision, failing the check on error.
pub async fn current(store: &dyn MetadataStore, check: &str) -> u64 {
    ok(store.current_revision().await, check, "current_revision")
}
