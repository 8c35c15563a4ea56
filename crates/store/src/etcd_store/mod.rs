//! The production metadata store: etcd v3, as the seed deployed it (`--etcd-servers`).
//!
//! Objects live at `<prefix>/<resource>/<namespace>/<name>`; an object's revision is etcd's
//! `mod_revision` and the store revision is etcd's, so `resourceVersion`s are etcd's, as in
//! Kubernetes. Writes are single etcd transactions whose compares carry the precondition
//! (`create_revision == 0` to create, `mod_revision == expected` to update or delete), so
//! concurrency control is etcd's. Lists read at one fixed revision across pages (the continue
//! token holds it); watches are etcd watches from `after + 1` with `prev_kv` so deletions carry
//! the last value. etcd's compaction answers `Expired`. Every call has a deadline.

mod errors;
mod watch;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Certificate, Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions,
    GetOptions, Identity, KeyValue, KvClient, TlsOptions, Txn, TxnOp, TxnOpResponse, TxnResponse,
    WatchClient,
};
use futures::StreamExt;

use crate::StoreError;
use crate::key;
use crate::metadata::{
    ListPage, ListRequest, MetadataStore, ObjectChunks, ObjectKey, Precondition, StoredObject,
    WatchStream,
};
use crate::token::ContinueToken;
use errors::{Failure, backend, bounded, classify};

/// Tunables of [`EtcdStore`].
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Deadline of every request (and of establishing a connection).
    pub request_timeout: Duration,
    /// HTTP/2 keep-alive interval; a peer silent for another interval is dropped, so watches on
    /// a frozen etcd end instead of hanging.
    pub keep_alive: Duration,
    /// TLS for `https://` endpoints: the CA that signed etcd's serving certificate and our
    /// client certificate (etcd started with `--client-cert-auth`).
    pub tls: Option<EtcdTls>,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// PEM material for talking to etcd over TLS with a client certificate.
#[derive(Clone)]
pub struct EtcdTls {
    /// CA bundle that etcd's serving certificate must chain to.
    pub ca_pem: Vec<u8>,
    /// Our client certificate and its private key, if etcd asks for one.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("EtcdTls")
            .field("client_certificate", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

/// Largest answer taken from etcd in one message. gRPC clients refuse more than 4 MiB unless
/// told otherwise, and objects may be as large as etcd takes (1.5 MiB by default): a page of a
/// few large objects broke every list that reached them. Above this, a list asks for fewer
/// objects per page instead ([`EtcdStore::list`]), so one answer never costs more memory.
pub const MAX_ANSWER_BYTES: usize = 64 << 20;

/// The etcd [`MetadataStore`].
#[derive(Clone)]
pub struct EtcdStore {
    /// Key-value calls, taking answers of up to [`MAX_ANSWER_BYTES`].
    kv: KvClient,
    /// Watches, taking event batches of up to [`MAX_ANSWER_BYTES`].
    watcher: WatchClient,
    /// Without a trailing `/`.
    prefix: String,
    endpoints: Vec<String>,
    options: EtcdOptions,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("options", &self.options)
            .finish()
    }
}

/// Converts etcd's signed revisions (never negative in practice).
fn rev(r: i64) -> u64 {
    u64::try_from(r).unwrap_or(0)
}

/// What a failed read of a list means: a compacted revision is [`StoreError::Expired`] (410
/// for the client, who lists again), a revision from the future an invalid token.
fn read_failure(
    operation: &str,
    failure: Failure,
    at: Option<u64>,
    request: &ListRequest,
) -> StoreError {
    let requested = at.unwrap_or(0);
    match failure {
        Failure::TooLarge => StoreError::backend(
            format!("etcd {operation}"),
            format!("one object is larger than {MAX_ANSWER_BYTES} bytes"),
        ),
        Failure::Compacted => StoreError::Expired {
            requested,
            // etcd does not say how far it compacted; the token's revision is gone, so the
            // oldest readable one is at least the next.
            oldest: requested + 1,
        },
        Failure::FutureRevision => StoreError::Invalid {
            what: "continue token (revision from the future)",
            value: request.continue_token.clone().unwrap_or_default(),
        },
        Failure::Other(e) => e,
    }
}

/// Whether etcd does not know the call (gRPC `UNIMPLEMENTED`, fixed by the gRPC spec).
fn unimplemented(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(status) if status.code() as i32 == 12)
}

/// Converts our revisions for etcd; values beyond `i64::MAX` cannot exist there.
fn etcd_rev(r: u64) -> i64 {
    i64::try_from(r).unwrap_or(i64::MAX)
}

impl EtcdStore {
    /// Connects with default options and checks that etcd answers. `endpoints` are URLs such as
    /// `http://127.0.0.1:2379`; `prefix` (e.g. `/coredump`) keeps our keys apart from others'.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<Self, StoreError> {
        Self::connect_with(endpoints, prefix, EtcdOptions::default()).await
    }

    /// Connects with `options` and checks that etcd answers within the request timeout.
    pub async fn connect_with(
        endpoints: &[String],
        prefix: &str,
        options: EtcdOptions,
    ) -> Result<Self, StoreError> {
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(options.request_timeout)
            .with_timeout(options.request_timeout)
            .with_keep_alive(options.keep_alive, options.keep_alive)
            .with_keep_alive_while_idle(true);
        if let Some(tls) = &options.tls {
            let mut config = TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            connect = connect.with_tls(config);
        }
        let operation = format!("connect to {}", endpoints.join(","));
        let client = bounded(
            options.request_timeout,
            &operation,
            Client::connect(endpoints, Some(connect)),
        )
        .await?
        .map_err(|e| backend(&operation, e))?;
        let store = Self {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_ANSWER_BYTES),
            watcher: client
                .watch_client()
                .max_decoding_message_size(MAX_ANSWER_BYTES),
            prefix: prefix.trim_end_matches('/').to_owned(),
            endpoints: endpoints.to_vec(),
            options,
        };
        // The client connects lazily: ask once so a wrong address fails here, not later.
        store.current_revision().await?;
        Ok(store)
    }

    /// The key prefix in use (without a trailing `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The etcd key of an encoded store key.
    fn etcd_key(&self, encoded: &str) -> String {
        format!("{}/{}", self.prefix, encoded)
    }

    /// The store key of an etcd key under our prefix.
    fn store_key(&self, kv: &KeyValue) -> Result<ObjectKey, StoreError> {
        let text = std::str::from_utf8(kv.key()).ok();
        text.and_then(|t| t.strip_prefix(&self.prefix))
            .and_then(|t| t.strip_prefix('/'))
            .and_then(key::decode)
            .ok_or_else(|| {
                StoreError::backend(
                    "etcd list",
                    format!(
                        "malformed key {:?} under prefix {}",
                        String::from_utf8_lossy(kv.key()),
                        self.prefix
                    ),
                )
            })
    }

    /// Our objects of etcd's key-values (in the order given).
    fn stored_objects(&self, kvs: Vec<KeyValue>) -> Result<Vec<StoredObject>, StoreError> {
        kvs.into_iter()
            .map(|kv| {
                Ok(StoredObject {
                    key: self.store_key(&kv)?,
                    revision: rev(kv.mod_revision()),
                    value: Bytes::from(kv.into_key_value().1),
                })
            })
            .collect()
    }

    /// Runs one transaction with a deadline.
    async fn txn(&self, operation: &str, txn: Txn) -> Result<TxnResponse, StoreError> {
        let mut client = self.kv.clone();
        bounded(self.options.request_timeout, operation, client.txn(txn))
            .await?
            .map_err(|e| backend(operation, e))
    }

    /// Revision in a response header.
    fn header_rev(header: Option<&etcd_client::ResponseHeader>) -> u64 {
        header.map(|h| rev(h.revision())).unwrap_or(0)
    }

    /// The object read by the `else` branch of a failed conditional write.
    fn failed_read(resp: &TxnResponse) -> Option<KeyValue> {
        resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(mut get) => get.take_kvs().into_iter().next(),
            _ => None,
        })
    }

    /// Compares for "exists and matches the precondition".
    fn guard(etcd_key: &str, precondition: Precondition) -> Vec<Compare> {
        let mut compares = vec![Compare::create_revision(etcd_key, CompareOp::Greater, 0)];
        if let Precondition::Revision(r) = precondition {
            compares.push(Compare::mod_revision(
                etcd_key,
                CompareOp::Equal,
                etcd_rev(r),
            ));
        }
        compares
    }

    /// Why a guarded write did not happen.
    fn refusal(key: &ObjectKey, resp: &TxnResponse, precondition: Precondition) -> StoreError {
        match (Self::failed_read(resp), precondition) {
            (None, _) => StoreError::NotFound(key.clone()),
            (Some(kv), Precondition::Revision(expected)) => StoreError::Conflict {
                key: key.clone(),
                current: rev(kv.mod_revision()),
                expected,
            },
            // Exists and unconditional: the write cannot have been refused.
            (Some(_), Precondition::None) => StoreError::backend(
                "etcd write",
                format!("transaction on {key:?} refused unexpectedly"),
            ),
        }
    }
}

#[async_trait]
impl MetadataStore for EtcdStore {
    async fn create(&self, key: &ObjectKey, value: Bytes) -> Result<u64, StoreError> {
        key::validate(key)?;
        let k = self.etcd_key(&key::encode(key));
        let txn = Txn::new()
            .when([Compare::create_revision(k.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(k.as_str(), value.to_vec(), None)]);
        let resp = self.txn(&format!("create {k}"), txn).await?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists(key.clone()));
        }
        Ok(Self::header_rev(resp.header()))
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<StoredObject>, StoreError> {
        key::validate(key)?;
        let k = self.etcd_key(&key::encode(key));
        let operation = format!("get {k}");
        let mut client = self.kv.clone();
        let mut resp = bounded(
            self.options.request_timeout,
            &operation,
            client.get(k.as_str(), None),
        )
        .await?
        .map_err(|e| backend(&operation, e))?;
        Ok(resp.take_kvs().into_iter().next().map(|kv| StoredObject {
            key: key.clone(),
            revision: rev(kv.mod_revision()),
            value: Bytes::from(kv.into_key_value().1),
        }))
    }

    async fn update(
        &self,
        key: &ObjectKey,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<u64, StoreError> {
        key::validate(key)?;
        let k = self.etcd_key(&key::encode(key));
        let txn = Txn::new()
            .when(Self::guard(&k, precondition))
            .and_then([TxnOp::put(k.as_str(), value.to_vec(), None)])
            .or_else([TxnOp::get(k.as_str(), None)]);
        let resp = self.txn(&format!("update {k}"), txn).await?;
        if !resp.succeeded() {
            return Err(Self::refusal(key, &resp, precondition));
        }
        Ok(Self::header_rev(resp.header()))
    }

    async fn delete(
        &self,
        key: &ObjectKey,
        precondition: Precondition,
    ) -> Result<StoredObject, StoreError> {
        key::validate(key)?;
        let k = self.etcd_key(&key::encode(key));
        let txn = Txn::new()
            .when(Self::guard(&k, precondition))
            .and_then([TxnOp::delete(
                k.as_str(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(k.as_str(), None)]);
        let resp = self.txn(&format!("delete {k}"), txn).await?;
        if !resp.succeeded() {
            return Err(Self::refusal(key, &resp, precondition));
        }
        let last = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(mut d) => d.take_prev_kvs().into_iter().next(),
            _ => None,
        });
        let last = last.ok_or_else(|| {
            StoreError::backend(
                format!("etcd delete {k}"),
                "etcd returned no previous value",
            )
        })?;
        Ok(StoredObject {
            key: key.clone(),
            revision: Self::header_rev(resp.header()),
            value: Bytes::from(last.into_key_value().1),
        })
    }

    async fn list(&self, request: &ListRequest) -> Result<ListPage, StoreError> {
        let (start, end) = key::prefix_range(&request.resource, request.namespace.as_deref())?;
        let token = request
            .continue_token
            .as_deref()
            .map(ContinueToken::decode)
            .transpose()?;
        let (from, at) = match &token {
            // Just after the last key returned: etcd keys are bytes, NUL is the next one.
            Some(t) => (
                format!(
                    "{}\0",
                    self.etcd_key(&t.full_key(&request.resource, &start)?)
                ),
                Some(t.rev),
            ),
            None => (self.etcd_key(&start), None),
        };
        let operation = format!("list {}", self.etcd_key(&start));
        let mut limit = i64::try_from(request.limit).unwrap_or(i64::MAX);
        let mut resp = loop {
            let mut options = GetOptions::new()
                .with_range(self.etcd_key(&end))
                .with_limit(limit);
            if let Some(r) = at {
                options = options.with_revision(etcd_rev(r));
            }
            let mut client = self.kv.clone();
            let result = bounded(
                self.options.request_timeout,
                &operation,
                client.get(from.as_str(), Some(options)),
            )
            .await?;
            let e = match result {
                Ok(resp) => break resp,
                Err(e) => e,
            };
            return Err(match classify(&operation, e) {
                Failure::TooLarge if limit != 1 => {
                    // Large objects: the same page in smaller steps (0, all, counts as large).
                    limit = if limit <= 0 { 256 } else { limit / 2 };
                    continue;
                }
                failure => read_failure(&operation, failure, at, request),
            });
        };
        let revision = at.unwrap_or_else(|| Self::header_rev(resp.header()));
        let more = resp.more();
        let items = self.stored_objects(resp.take_kvs())?;
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

    /// etcd 3.7's `RangeStream`: one request for the rest of the range, answered in chunks of
    /// about etcd's request size, none of which counts the keys after it. An etcd without it
    /// (3.6 and older answer `UNIMPLEMENTED`) gets `None`: the caller pages.
    async fn list_rest(&self, request: &ListRequest) -> Result<Option<ObjectChunks>, StoreError> {
        let (start, end) = key::prefix_range(&request.resource, request.namespace.as_deref())?;
        let Some(token) = request
            .continue_token
            .as_deref()
            .map(ContinueToken::decode)
            .transpose()?
        else {
            return Ok(None);
        };
        let from = format!(
            "{}\0",
            self.etcd_key(&token.full_key(&request.resource, &start)?)
        );
        let options = GetOptions::new()
            .with_range(self.etcd_key(&end))
            .with_revision(etcd_rev(token.rev));
        let operation = format!("list {} (streamed)", self.etcd_key(&start));
        let at = Some(token.rev);
        let mut client = self.kv.clone();
        let first = bounded(self.options.request_timeout, &operation, async {
            let mut stream = client.get_stream(from, Some(options)).await?;
            let first = stream.next().await.transpose()?;
            Ok((stream, first))
        })
        .await?;
        let (stream, first) = match first {
            Ok(answer) => answer,
            Err(e) if unimplemented(&e) => return Ok(None),
            Err(e) => {
                return Err(read_failure(
                    &operation,
                    classify(&operation, e),
                    at,
                    request,
                ));
            }
        };
        let store = self.clone();
        let request = request.clone();
        // Each further chunk within the request timeout too: a live but stalled etcd must end
        // the list with an error, as a stalled page read does.
        let timeout = self.options.request_timeout;
        let rest = futures::stream::unfold(Some(stream), move |stream| async move {
            let mut stream = stream?;
            match tokio::time::timeout(timeout, stream.next()).await {
                Ok(None) => None,
                Ok(Some(answer)) => Some((Ok(answer), Some(stream))),
                Err(_) => Some((Err(()), None)),
            }
        });
        let chunks = futures::stream::iter(first.map(|answer| Ok(Ok(answer))))
            .chain(rest)
            .map(move |answer| match answer {
                Ok(Ok(mut answer)) => store.stored_objects(answer.take_kvs()),
                Ok(Err(e)) => Err(read_failure(
                    &operation,
                    classify(&operation, e),
                    at,
                    &request,
                )),
                Err(()) => Err(StoreError::backend(
                    format!("etcd {operation}"),
                    format!("no further answer from etcd within {timeout:?}"),
                )),
            });
        Ok(Some(chunks.boxed()))
    }

    async fn watch(
        &self,
        resource: &str,
        namespace: Option<&str>,
        after_revision: u64,
    ) -> Result<WatchStream, StoreError> {
        let (start, end) = key::prefix_range(resource, namespace)?;
        watch::start(
            self,
            self.etcd_key(&start),
            self.etcd_key(&end),
            after_revision,
        )
        .await
    }

    async fn current_revision(&self) -> Result<u64, StoreError> {
        let operation = format!("read revision at {}", self.endpoints.join(","));
        let mut client = self.kv.clone();
        let options = GetOptions::new().with_count_only();
        let resp = bounded(
            self.options.request_timeout,
            &operation,
            client.get(format!("{}/", self.prefix), Some(options)),
        )
        .await?
        .map_err(|e| backend(&operation, e))?;
        Ok(Self::header_rev(resp.header()))
    }

    /// Compacts etcd's history. etcd has one history for all keys: this affects every user of
    /// the cluster, as kube-apiserver's periodic compaction does.
    async fn compact(&self, revision: u64) -> Result<(), StoreError> {
        let operation = format!("compact to {revision}");
        let mut client = self.kv.clone();
        let call = client.compact(
            etcd_rev(revision),
            Some(CompactionOptions::new().with_physical()),
        );
        match bounded(self.options.request_timeout, &operation, call).await? {
            Ok(_) => Ok(()),
            Err(e) => match classify(&operation, e) {
                Failure::Compacted => Ok(()), // already compacted at least that far
                Failure::FutureRevision => Err(StoreError::Invalid {
                    what: "compaction revision (beyond the current revision)",
                    value: revision.to_string(),
                }),
                Failure::TooLarge => Err(StoreError::backend(
                    format!("etcd {operation}"),
                    "answer larger than the client takes",
                )),
                Failure::Other(e) => Err(e),
            },
        }
    }
}
