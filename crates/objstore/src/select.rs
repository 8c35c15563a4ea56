//! `--blob-store`: where a role keeps cores. `local` (the default) is the filesystem store the
//! role opens itself under `--local-path`; `s3://BUCKET[/PREFIX]` is an [`ObjectBlobStore`] on
//! S3 or an S3-compatible server.
//!
//! The S3 client reads the standard AWS environment first (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`, and the
//! web-identity and container-credential variables of workload identity); the `--s3-*` flags
//! override it. The secret is never printed: [`Secret`]'s `Debug` is redacted, and messages name
//! the bucket and endpoint only.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, RetryConfig};

use crate::ObjectBlobStore;

/// What `--blob-store` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobStoreSelector {
    /// The role's filesystem store (`--local-path`).
    Local,
    /// An S3 bucket, blobs under `prefix` (empty: the bucket's root).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix, without leading or trailing `/`.
        prefix: String,
    },
}

/// A `--blob-store` value or an S3 client configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// Not `local` nor a supported URL.
    #[error(
        "--blob-store {0:?}: expected `local` or `s3://BUCKET[/PREFIX]` (gs:// and az:// are not supported yet)"
    )]
    Unsupported(String),
    /// The S3 client refused its configuration.
    #[error("configuring the S3 client for {location}: {source}")]
    Client {
        /// `s3://bucket/prefix`.
        location: String,
        /// Why.
        #[source]
        source: object_store::Error,
    },
    /// The store itself could not start.
    #[error("opening {location}: {source}")]
    Store {
        /// `s3://bucket/prefix`.
        location: String,
        /// Why.
        #[source]
        source: coredump_store::StoreError,
    },
}

impl std::str::FromStr for BlobStoreSelector {
    type Err = SelectError;

    fn from_str(text: &str) -> Result<Self, SelectError> {
        if text == "local" {
            return Ok(Self::Local);
        }
        let unsupported = || SelectError::Unsupported(text.to_owned());
        let rest = text.strip_prefix("s3://").ok_or_else(unsupported)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = !bucket.is_empty()
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
        let prefix = prefix.trim_matches('/');
        if !bucket_ok || crate::keys::Layout::new(prefix).is_err() {
            return Err(unsupported());
        }
        Ok(Self::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl std::fmt::Display for BlobStoreSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local => f.write_str("local"),
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// A credential that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

/// Retries of one request, by default: five, with backoff from 100 ms, within 30 s. A store that
/// stays unreachable longer fails the operation; the ingest keeps the core in its spool and
/// tries again later with its own, longer backoff.
pub fn default_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 5,
        retry_timeout: Duration::from_secs(30),
    }
}

/// The flags every role with a blob store takes (flattened into its arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct BlobStoreArgs {
    /// Where cores are stored: `local` (the filesystem under `--local-path`) or
    /// `s3://BUCKET[/PREFIX]` (S3 or an S3-compatible server; the client also reads the
    /// standard `AWS_*` environment: AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ALLOW_HTTP, web identity).
    #[arg(long, default_value = "local")]
    pub blob_store: BlobStoreSelector,
    /// S3 endpoint URL (default: AWS_ENDPOINT_URL, else AWS for the region).
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    /// S3 region (default: AWS_REGION, else us-east-1).
    #[arg(long)]
    pub s3_region: Option<String>,
    /// S3 access key id (default: AWS_ACCESS_KEY_ID, else workload identity).
    #[arg(long)]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key (default: AWS_SECRET_ACCESS_KEY; prefer the environment, e.g.
    /// from a Kubernetes Secret: a flag shows in the process list).
    #[arg(long)]
    pub s3_secret_access_key: Option<Secret>,
    /// Allow a plain-HTTP endpoint (a server on loopback; also AWS_ALLOW_HTTP=true).
    #[arg(long)]
    pub s3_allow_http: bool,
}

impl Default for BlobStoreArgs {
    /// `local`, no S3 flags (what parsing no flags gives).
    fn default() -> Self {
        Self {
            blob_store: BlobStoreSelector::Local,
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_allow_http: false,
        }
    }
}

impl BlobStoreArgs {
    /// Parses these flags alone (`--blob-store=...`, `--s3-...`), as a role would: for tests
    /// and tools that get them from elsewhere.
    pub fn parse_flags<I, T>(flags: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            args: BlobStoreArgs,
        }
        let argv = std::iter::once(std::ffi::OsString::from("blob-store"))
            .chain(flags.into_iter().map(Into::into));
        <Only as clap::Parser>::try_parse_from(argv).map(|only| only.args)
    }

    /// The object store selected, `None` for `local` (the role opens its filesystem store).
    /// Nothing is contacted yet: a wrong endpoint or credentials show at the first operation.
    pub fn open(&self) -> Result<Option<ObjectBlobStore>, SelectError> {
        self.open_with_retry(default_retry())
    }

    /// The bucket selected, else the role's own store from `local` (its filesystem store under
    /// `--local-path`): the one place each role decides where its blobs are.
    pub fn open_or_else<E>(
        &self,
        local: impl FnOnce() -> Result<Arc<dyn coredump_store::BlobStore>, E>,
    ) -> Result<Arc<dyn coredump_store::BlobStore>, E>
    where
        E: From<SelectError>,
    {
        match self.open()? {
            Some(bucket) => Ok(Arc::new(bucket)),
            None => local(),
        }
    }

    /// [`BlobStoreArgs::open`] with other retries (tests shorten them).
    pub fn open_with_retry(
        &self,
        retry: RetryConfig,
    ) -> Result<Option<ObjectBlobStore>, SelectError> {
        let BlobStoreSelector::S3 { bucket, prefix } = &self.blob_store else {
            return Ok(None);
        };
        let location = self.blob_store.to_string();
        // reqwest's TLS takes the process's provider: the workspace's (ring), as kube's does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry);
        if let Some(endpoint) = &self.s3_endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &self.s3_region {
            builder = builder.with_region(region);
        }
        if let Some(id) = &self.s3_access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(Secret(secret)) = &self.s3_secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if self.s3_allow_http {
            builder = builder.with_allow_http(true);
        }
        let endpoint = builder.get_config_value(&object_store::aws::AmazonS3ConfigKey::Endpoint);
        let s3 = builder.build().map_err(|source| SelectError::Client {
            location: location.clone(),
            source,
        })?;
        tracing::info!(
            blob_store = %location,
            endpoint = endpoint.as_deref().unwrap_or("(AWS)"),
            "storing blobs in object storage"
        );
        ObjectBlobStore::new(Arc::new(s3), prefix, format!("s3://{bucket}"), endpoint)
            .map(Some)
            .map_err(|source| SelectError::Store { location, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        blobs: BlobStoreArgs,
    }

    #[test]
    fn selectors_parse_and_print_back() {
        for (text, want) in [
            ("local", BlobStoreSelector::Local),
            (
                "s3://cores",
                BlobStoreSelector::S3 {
                    bucket: "cores".into(),
                    prefix: String::new(),
                },
            ),
            (
                "s3://my-bucket.x/a/b/",
                BlobStoreSelector::S3 {
                    bucket: "my-bucket.x".into(),
                    prefix: "a/b".into(),
                },
            ),
        ] {
            let got: BlobStoreSelector = text.parse().expect(text);
            assert_eq!(got, want);
        }
        assert_eq!(
            "s3://b/p/"
                .parse::<BlobStoreSelector>()
                .expect("s3")
                .to_string(),
            "s3://b/p"
        );
        for bad in [
            "",
            "s3://",
            "s3:///p",
            "s3://Bad",
            "gs://b",
            "/var/lib",
            "s3://b/a//c",
        ] {
            let err = bad.parse::<BlobStoreSelector>().expect_err(bad);
            assert!(err.to_string().contains("expected `local`"), "{bad}: {err}");
        }
    }

    #[test]
    fn flags_default_to_local_and_never_show_the_secret() {
        let cli = Cli::try_parse_from(["x"]).expect("defaults");
        assert_eq!(cli.blobs.blob_store, BlobStoreSelector::Local);
        assert!(cli.blobs.open().expect("local").is_none());
        let cli = Cli::try_parse_from([
            "x",
            "--blob-store=s3://b/p",
            "--s3-endpoint=http://127.0.0.1:1",
            "--s3-access-key-id=id",
            "--s3-secret-access-key=very-secret",
            "--s3-allow-http",
        ])
        .expect("s3 flags");
        assert!(!format!("{:?}", cli.blobs).contains("very-secret"));
        let store = cli.blobs.open().expect("client").expect("s3 store");
        assert!(!format!("{store:?}").contains("very-secret"));
    }
}
