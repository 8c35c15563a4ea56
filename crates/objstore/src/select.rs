//! `--blob-store`: where a role keeps cores. `local` (the default) is the filesystem store the
//! role opens itself under `--local-path`; `s3://BUCKET[/PREFIX]` (S3 or an S3-compatible
//! server), `gs://BUCKET[/PREFIX]` (Google Cloud Storage) and `az://CONTAINER[/PREFIX]` (Azure
//! Blob Storage) are an [`ObjectBlobStore`] with the same key layout under the prefix.
//!
//! Each client reads its service's standard environment first (see [`crate::providers`]); the
//! `--s3-*`, `--gcs-*` and `--azure-*` flags override it. Secrets are never printed:
//! [`Secret`]'s `Debug` is redacted, and messages name the bucket and endpoint only.

use std::sync::Arc;
use std::time::Duration;

use object_store::{BackoffConfig, RetryConfig};

use crate::ObjectBlobStore;

/// The object storage services `--blob-store` names by URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `s3://`: Amazon S3 or an S3-compatible server.
    S3,
    /// `gs://`: Google Cloud Storage.
    Gcs,
    /// `az://`: Azure Blob Storage (the name is a container of the storage account).
    Azure,
}

impl Provider {
    const ALL: [Self; 3] = [Self::S3, Self::Gcs, Self::Azure];

    /// The URL scheme, without `://`.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Gcs => "gs",
            Self::Azure => "az",
        }
    }

    /// Whether `name` can name a bucket (container) of this service: checked when the flag is
    /// parsed, so a typo fails at startup rather than at the first upload. Lowercase letters,
    /// digits and `-` everywhere; S3 and GCS also take `.` and `_`.
    fn valid_name(self, name: &str) -> bool {
        let extra: &[u8] = match self {
            Self::S3 | Self::Gcs => b"-._",
            Self::Azure => b"-",
        };
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(&b))
    }
}

/// What `--blob-store` selects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BlobStoreSelector {
    /// The role's filesystem store (`--local-path`).
    #[default]
    Local,
    /// A bucket (an Azure container) of `provider`, blobs under `prefix`.
    Bucket {
        /// The service.
        provider: Provider,
        /// Bucket (container) name.
        bucket: String,
        /// Key prefix, without leading or trailing `/` (empty: the bucket's root).
        prefix: String,
    },
}

/// A `--blob-store` value or an object store client configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// Not `local` nor a supported URL.
    #[error(
        "--blob-store {0:?}: expected `local`, `s3://BUCKET[/PREFIX]`, `gs://BUCKET[/PREFIX]` or `az://CONTAINER[/PREFIX]`"
    )]
    Unsupported(String),
    /// The client refused its configuration.
    #[error("configuring the object store client for {location}: {source}")]
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
        let (scheme, rest) = text.split_once("://").ok_or_else(unsupported)?;
        let provider = Provider::ALL
            .into_iter()
            .find(|p| p.scheme() == scheme)
            .ok_or_else(unsupported)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        if !provider.valid_name(bucket) || crate::keys::Layout::new(prefix).is_err() {
            return Err(unsupported());
        }
        Ok(Self::Bucket {
            provider,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl std::fmt::Display for BlobStoreSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local => f.write_str("local"),
            Self::Bucket {
                provider, bucket, ..
            } => {
                write!(f, "{}://{bucket}", provider.scheme())?;
                match self.prefix() {
                    "" => Ok(()),
                    prefix => write!(f, "/{prefix}"),
                }
            }
        }
    }
}

impl BlobStoreSelector {
    /// The key prefix (empty for `local` and a bucket's root).
    fn prefix(&self) -> &str {
        match self {
            Self::Local => "",
            Self::Bucket { prefix, .. } => prefix,
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

/// The flags every role with a blob store takes (flattened into its arguments). Parsing no
/// flags gives `local` (its `Default`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BlobStoreArgs {
    /// Where cores are stored: `local` (the filesystem under `--local-path`),
    /// `s3://BUCKET[/PREFIX]` (S3 or an S3-compatible server; also the standard `AWS_*`
    /// environment), `gs://BUCKET[/PREFIX]` (Google Cloud Storage; also `GOOGLE_*` and
    /// GOOGLE_APPLICATION_CREDENTIALS) or `az://CONTAINER[/PREFIX]` (Azure Blob Storage; also
    /// `AZURE_*`: AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY, workload identity).
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
    /// Do not compare an upload's MD5 with the ETag S3 reports (for buckets encrypted with
    /// SSE-KMS or SSE-C, whose ETags are not MD5s; the size is still checked).
    #[arg(long)]
    pub s3_no_md5_check: bool,
    /// GCS base URL (default: GOOGLE_BASE_URL, else https://storage.googleapis.com).
    #[arg(long)]
    pub gcs_endpoint: Option<String>,
    /// A GCS service account key file (default: GOOGLE_SERVICE_ACCOUNT, else
    /// GOOGLE_APPLICATION_CREDENTIALS, else the metadata server: workload identity).
    #[arg(long)]
    pub gcs_service_account_path: Option<std::path::PathBuf>,
    /// A GCS service account key, the JSON itself (default: GOOGLE_SERVICE_ACCOUNT_KEY; prefer
    /// the environment or a file: a flag shows in the process list).
    #[arg(long)]
    pub gcs_service_account_key: Option<Secret>,
    /// Send GCS requests without credentials (a public bucket or an emulator such as
    /// fake-gcs-server): never implied, whatever the endpoint.
    #[arg(long, conflicts_with_all = ["gcs_service_account_path", "gcs_service_account_key"])]
    pub gcs_anonymous: bool,
    /// Allow a plain-HTTP GCS endpoint (a server on loopback; also GOOGLE_ALLOW_HTTP=true).
    #[arg(long)]
    pub gcs_allow_http: bool,
    /// Azure Blob endpoint: the storage account's URL (default: AZURE_STORAGE_ENDPOINT, else
    /// https://ACCOUNT.blob.core.windows.net; for Azurite http://HOST:PORT/ACCOUNT).
    #[arg(long)]
    pub azure_endpoint: Option<String>,
    /// Azure storage account name (default: AZURE_STORAGE_ACCOUNT_NAME).
    #[arg(long)]
    pub azure_account: Option<String>,
    /// Azure storage account key (default: AZURE_STORAGE_ACCOUNT_KEY, else a SAS, client
    /// secret or workload identity from AZURE_*; prefer the environment: a flag shows in the
    /// process list).
    #[arg(long)]
    pub azure_access_key: Option<Secret>,
    /// Allow a plain-HTTP Azure endpoint (a server on loopback; also AZURE_ALLOW_HTTP=true).
    #[arg(long)]
    pub azure_allow_http: bool,
}

impl BlobStoreArgs {
    /// Parses these flags alone (`--blob-store=...`, `--s3-...`, `--gcs-...`, `--azure-...`),
    /// as a role would: for tests and tools that get them from elsewhere.
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
        let BlobStoreSelector::Bucket {
            provider,
            bucket,
            prefix,
        } = &self.blob_store
        else {
            return Ok(None);
        };
        let location = self.blob_store.to_string();
        // reqwest's TLS takes the process's provider: the workspace's (ring), as kube's does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = match provider {
            Provider::S3 => crate::providers::s3(self, bucket, retry),
            Provider::Gcs => crate::providers::gcs(self, bucket, retry),
            Provider::Azure => crate::providers::azure(self, bucket, retry),
        }
        .map_err(|source| SelectError::Client {
            location: location.clone(),
            source,
        })?;
        tracing::info!(
            blob_store = %location,
            endpoint = client.endpoint.as_deref().unwrap_or("(the service's)"),
            "storing blobs in object storage"
        );
        let bucket_url = format!("{}://{bucket}", provider.scheme());
        ObjectBlobStore::new(
            client.store,
            client.multipart,
            prefix,
            bucket_url,
            client.endpoint,
        )
        .map(|store| store.with_md5_etags(*provider == Provider::S3 && !self.s3_no_md5_check))
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

    fn bucket(provider: Provider, bucket: &str, prefix: &str) -> BlobStoreSelector {
        BlobStoreSelector::Bucket {
            provider,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    #[test]
    fn selectors_parse_and_print_back() {
        for (text, want, printed) in [
            ("local", BlobStoreSelector::Local, "local"),
            (
                "s3://cores",
                bucket(Provider::S3, "cores", ""),
                "s3://cores",
            ),
            (
                "s3://my-bucket.x/a/b/",
                bucket(Provider::S3, "my-bucket.x", "a/b"),
                "s3://my-bucket.x/a/b",
            ),
            (
                "gs://cores_1/p",
                bucket(Provider::Gcs, "cores_1", "p"),
                "gs://cores_1/p",
            ),
            ("gs://b.c", bucket(Provider::Gcs, "b.c", ""), "gs://b.c"),
            (
                "az://cores-2",
                bucket(Provider::Azure, "cores-2", ""),
                "az://cores-2",
            ),
            (
                "az://c/x/y/",
                bucket(Provider::Azure, "c", "x/y"),
                "az://c/x/y",
            ),
        ] {
            let got: BlobStoreSelector = text.parse().expect(text);
            assert_eq!(got, want);
            assert_eq!(got.to_string(), printed);
            assert_eq!(printed.parse::<BlobStoreSelector>().expect(printed), want);
        }
        for bad in [
            "",
            "s3://",
            "s3:///p",
            "s3://Bad",
            "gs://",
            "gs://Bad/p",
            "az://",
            "az://under_score",
            "az://dot.ted",
            "abfs://c",
            "file:///var/lib",
            "/var/lib",
            "s3://b/a//c",
            "gs://b/a/../c",
        ] {
            let err = bad.parse::<BlobStoreSelector>().expect_err(bad);
            assert!(err.to_string().contains("expected `local`"), "{bad}: {err}");
        }
    }

    /// A client of each service is built from flags alone (nothing contacted), and neither
    /// the flags' nor the store's `Debug` shows a secret.
    #[test]
    fn flags_default_to_local_and_never_show_a_secret() {
        let cli = Cli::try_parse_from(["x"]).expect("defaults");
        assert_eq!(cli.blobs.blob_store, BlobStoreSelector::Local);
        assert!(cli.blobs.open().expect("local").is_none());
        let secret = "very-secret-c2VjcmV0";
        for flags in [
            vec![
                "--blob-store=s3://b/p".to_string(),
                "--s3-endpoint=http://127.0.0.1:1".into(),
                "--s3-access-key-id=id".into(),
                format!("--s3-secret-access-key={secret}"),
                "--s3-allow-http".into(),
            ],
            vec![
                "--blob-store=gs://b/p".to_string(),
                "--gcs-endpoint=http://127.0.0.1:1".into(),
                format!("--gcs-service-account-key={secret}"),
                "--gcs-allow-http".into(),
            ],
            vec![
                "--blob-store=az://c/p".to_string(),
                "--azure-endpoint=http://127.0.0.1:1/acct".into(),
                "--azure-account=acct".into(),
                format!("--azure-access-key={secret}"),
                "--azure-allow-http".into(),
            ],
        ] {
            let cli = Cli::try_parse_from(std::iter::once("x".to_string()).chain(flags.clone()))
                .expect("flags");
            let shown = format!("{:?}", cli.blobs);
            assert!(!shown.contains(secret), "{flags:?}: {shown}");
            assert!(shown.contains("Secret(<redacted>)"), "{flags:?}: {shown}");
            match cli.blobs.open() {
                Ok(store) => {
                    let store = store.expect("a bucket");
                    let shown = format!("{store:?}");
                    assert!(!shown.contains(secret), "{flags:?}: {shown}");
                    assert!(shown.contains("127.0.0.1:1"), "{flags:?}: {shown}");
                }
                // A key that is no key (GCS's JSON, Azure's base64) is refused, unquoted.
                Err(e) => {
                    assert!(
                        !format!("{e} {e:?}").contains(secret),
                        "{flags:?}: the secret leaked: {e:?}"
                    );
                    assert!(!flags[0].starts_with("--blob-store=s3"), "{e}");
                }
            }
        }
    }

    /// An Azure client from the standard names alone: a well-formed key is accepted (the
    /// emulator's published key), the client names the endpoint it was given.
    #[test]
    fn azure_from_flags_with_a_real_key_builds() {
        let args = BlobStoreArgs::parse_flags([
            "--blob-store=az://cores/p",
            "--azure-endpoint=http://127.0.0.1:1/devstoreaccount1/",
            "--azure-account=devstoreaccount1",
            "--azure-access-key=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
            "--azure-allow-http",
        ])
        .expect("flags");
        let store = args.open().expect("client").expect("a container");
        let shown = format!("{store:?}");
        assert!(shown.contains("az://cores"), "{shown}");
        assert!(!shown.contains("Eby8vdM02"), "{shown}");
    }
}
