//! Mapping etcd client failures to [`StoreError`], and bounding every call in time so a dead or
//! frozen etcd is a prompt `Backend` error instead of a hang.

use std::future::Future;
use std::time::Duration;

use crate::StoreError;

/// etcd's own error text for a read at a compacted revision. etcd reports both "compacted" and
/// "future revision" as gRPC `OUT_OF_RANGE`, so only its message tells them apart; etcd's Go
/// client distinguishes them the same way (its `rpctypes` error descriptions).
const COMPACTED: &str = "required revision has been compacted";
/// etcd's text for a revision that does not exist yet.
const FUTURE: &str = "required revision is a future revision";

/// tonic's text for an answer above the client's message size limit (also `OUT_OF_RANGE`).
const TOO_LARGE: &str = "message length too large";

/// The gRPC status code `OUT_OF_RANGE` (fixed by the gRPC spec; etcd-client does not re-export
/// tonic's `Code`, and a direct tonic dependency only for this constant is not worth it).
const GRPC_OUT_OF_RANGE: i32 = 11;

/// What an etcd failure means for us.
pub(super) enum Failure {
    /// The revision asked for was compacted away.
    Compacted,
    /// The revision asked for is beyond the current one.
    FutureRevision,
    /// etcd's answer was larger than [`super::MAX_ANSWER_BYTES`].
    TooLarge,
    /// Anything else: connection, timeout, server error.
    Other(StoreError),
}

/// Classifies an etcd client error.
pub(super) fn classify(operation: &str, err: etcd_client::Error) -> Failure {
    if let etcd_client::Error::GRpcStatus(status) = &err
        && status.code() as i32 == GRPC_OUT_OF_RANGE
    {
        if status.message().contains(COMPACTED) {
            return Failure::Compacted;
        }
        if status.message().contains(FUTURE) {
            return Failure::FutureRevision;
        }
        if status.message().contains(TOO_LARGE) {
            return Failure::TooLarge;
        }
    }
    Failure::Other(StoreError::backend(format!("etcd {operation}"), err))
}

/// A plain backend error for `operation`.
pub(super) fn backend(operation: &str, err: etcd_client::Error) -> StoreError {
    StoreError::backend(format!("etcd {operation}"), err)
}

/// Runs `call` with a deadline; a timeout is a `Backend` error naming the operation.
pub(super) async fn bounded<T>(
    timeout: Duration,
    operation: &str,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<Result<T, etcd_client::Error>, StoreError> {
    tokio::time::timeout(timeout, call).await.map_err(|_| {
        StoreError::backend(
            format!("etcd {operation}"),
            format!("no answer from etcd within {timeout:?}"),
        )
    })
}
