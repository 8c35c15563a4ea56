//! One `object_store` client per service `--blob-store` names, configured from the service's
//! standard environment and then the role's flags (a flag wins):
//!
//! * S3: `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`, and the web-identity and container-credential
//!   variables of workload identity.
//! * GCS: `GOOGLE_SERVICE_ACCOUNT` (a key file), `GOOGLE_SERVICE_ACCOUNT_KEY` (the key),
//!   `GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_BASE_URL`; with none, the metadata server
//!   (GKE workload identity).
//! * Azure: `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_ENDPOINT`,
//!   SAS and client-secret variables, and `AZURE_FEDERATED_TOKEN_FILE` with `AZURE_CLIENT_ID`
//!   and `AZURE_TENANT_ID` (AKS workload identity).
//!
//! Emulators get nothing implicit: anonymous GCS requests and plain HTTP are flags of their own.

use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::multipart::MultipartStore;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};

use crate::select::{BlobStoreArgs, Secret};

/// A configured client and the endpoint it talks to (for logs and error messages; `None`: the
/// service's public endpoint).
pub struct Client {
    /// The client.
    pub store: Arc<dyn ObjectStore>,
    /// The same client's multipart API, for uploads that resume after a restart.
    pub multipart: Arc<dyn MultipartStore>,
    /// Its endpoint when not the service's default.
    pub endpoint: Option<String>,
}

impl Client {
    /// `client` through both of its interfaces.
    fn of<C: ObjectStore + MultipartStore>(client: C, endpoint: Option<String>) -> Self {
        let client = Arc::new(client);
        Self {
            store: Arc::clone(&client) as Arc<dyn ObjectStore>,
            multipart: client,
            endpoint,
        }
    }
}

/// The S3 client of `bucket`.
pub fn s3(args: &BlobStoreArgs, bucket: &str, retry: RetryConfig) -> object_store::Result<Client> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry);
    if let Some(endpoint) = &args.s3_endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &args.s3_region {
        builder = builder.with_region(region);
    }
    if let Some(id) = &args.s3_access_key_id {
        builder = builder.with_access_key_id(id);
    }
    if let Some(Secret(secret)) = &args.s3_secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if args.s3_allow_http {
        builder = builder.with_allow_http(true);
    }
    let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
    Ok(Client::of(builder.build()?, endpoint))
}

/// The "service account" of `--gcs-anonymous`: `object_store`'s own emulator switch
/// (`disable_oauth`): every request goes without a token, nothing is fetched.
const ANONYMOUS_GCS_KEY: &str =
    r#"{"private_key":"","private_key_id":"","client_email":"","disable_oauth":true}"#;

/// The GCS client of `bucket`.
pub fn gcs(args: &BlobStoreArgs, bucket: &str, retry: RetryConfig) -> object_store::Result<Client> {
    let mut builder = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(bucket)
        .with_retry(retry);
    if let Some(endpoint) = &args.gcs_endpoint {
        builder = builder.with_base_url(endpoint.trim_end_matches('/'));
    }
    if let Some(path) = &args.gcs_service_account_path {
        builder = builder.with_service_account_path(path.to_string_lossy());
    }
    if let Some(Secret(key)) = &args.gcs_service_account_key {
        builder = builder.with_service_account_key(key);
    }
    if args.gcs_anonymous {
        // `skip_signature` alone still fetches a token (from the metadata server) before a
        // PUT; a key with `disable_oauth` is the client's own switch for "no credentials".
        builder = builder
            .with_service_account_key(ANONYMOUS_GCS_KEY)
            .with_skip_signature(true);
    }
    if args.gcs_allow_http {
        builder = builder.with_config(GoogleConfigKey::Client(ClientConfigKey::AllowHttp), "true");
    }
    let endpoint = builder.get_config_value(&GoogleConfigKey::BaseUrl);
    Ok(Client::of(builder.build()?, endpoint))
}

/// The Azure Blob client of container `container`.
pub fn azure(
    args: &BlobStoreArgs,
    container: &str,
    retry: RetryConfig,
) -> object_store::Result<Client> {
    let mut builder = MicrosoftAzureBuilder::from_env()
        .with_container_name(container)
        .with_retry(retry);
    if let Some(endpoint) = &args.azure_endpoint {
        // A trailing `/` would put an empty segment before the container in every URL.
        builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_owned());
    }
    if let Some(account) = &args.azure_account {
        builder = builder.with_account(account);
    }
    if let Some(Secret(key)) = &args.azure_access_key {
        builder = builder.with_access_key(key);
    }
    if args.azure_allow_http {
        builder = builder.with_allow_http(true);
    }
    let endpoint = builder.get_config_value(&AzureConfigKey::Endpoint);
    Ok(Client::of(builder.build()?, endpoint))
}
