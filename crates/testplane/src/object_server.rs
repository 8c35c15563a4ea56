//! The three object storage servers of the tests behind one trait, so one test body runs
//! against S3 (SeaweedFS), GCS (fake-gcs-server) and Azure Blob (Azurite): each started with
//! the bucket [`BUCKET`] (an Azure container) made, and giving the `--blob-store` flags that
//! reach it as the roles take them.

use std::path::PathBuf;

use crate::azurite::{Azurite, start_azurite};
use crate::error::HarnessError;
use crate::fake_gcs::{FakeGcs, start_fake_gcs};
use crate::seaweedfs::{SeaweedFs, start_seaweedfs};

/// The bucket (container) every server is started with.
pub const BUCKET: &str = "cores";

/// Which service a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// S3 (`s3://`) on SeaweedFS.
    S3,
    /// Google Cloud Storage (`gs://`) on fake-gcs-server.
    Gcs,
    /// Azure Blob Storage (`az://`) on Azurite.
    Azure,
}

impl Service {
    /// Starts a server of this service with [`BUCKET`].
    pub fn start(self) -> Result<Box<dyn ObjectServer>, HarnessError> {
        Ok(match self {
            Self::S3 => {
                let server = start_seaweedfs()?;
                server.create_bucket(BUCKET)?;
                Box::new(server)
            }
            Self::Gcs => {
                let server = start_fake_gcs()?;
                server.create_bucket(BUCKET)?;
                Box::new(server)
            }
            Self::Azure => {
                let mut server = start_azurite()?;
                server.create_container(BUCKET)?;
                Box::new(server)
            }
        })
    }

    /// `s3`, `gs` or `az`: the URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Gcs => "gs",
            Self::Azure => "az",
        }
    }
}

/// A running object storage server of a test.
pub trait ObjectServer: Send + std::fmt::Debug {
    /// Its service.
    fn service(&self) -> Service;
    /// Its endpoint as the client is given it (and as error messages name it).
    fn endpoint(&self) -> String;
    /// The flags selecting `<scheme>://BUCKET/<prefix>` on it with its identity.
    fn blob_store_flags(&self, prefix: &str) -> Vec<String>;
    /// Where it keeps the data (grows as an upload arrives).
    fn data_dir(&self) -> PathBuf;
    /// Kills it (SIGKILL); its port refuses connections until [`ObjectServer::restart`].
    fn kill(&self);
    /// Kills it and starts it again on the same data and port.
    fn restart(&mut self) -> Result<(), HarnessError>;
}

impl ObjectServer for SeaweedFs {
    fn service(&self) -> Service {
        Service::S3
    }
    fn endpoint(&self) -> String {
        SeaweedFs::endpoint(self)
    }
    fn blob_store_flags(&self, prefix: &str) -> Vec<String> {
        SeaweedFs::blob_store_flags(self, BUCKET, prefix)
    }
    fn data_dir(&self) -> PathBuf {
        SeaweedFs::data_dir(self)
    }
    fn kill(&self) {
        SeaweedFs::kill(self)
    }
    fn restart(&mut self) -> Result<(), HarnessError> {
        SeaweedFs::restart(self)
    }
}

impl ObjectServer for FakeGcs {
    fn service(&self) -> Service {
        Service::Gcs
    }
    fn endpoint(&self) -> String {
        FakeGcs::endpoint(self)
    }
    fn blob_store_flags(&self, prefix: &str) -> Vec<String> {
        FakeGcs::blob_store_flags(self, BUCKET, prefix)
    }
    fn data_dir(&self) -> PathBuf {
        self.instance.data_dir()
    }
    fn kill(&self) {
        self.instance.kill()
    }
    fn restart(&mut self) -> Result<(), HarnessError> {
        self.instance.restart()
    }
}

impl ObjectServer for Azurite {
    fn service(&self) -> Service {
        Service::Azure
    }
    fn endpoint(&self) -> String {
        Azurite::endpoint(self)
    }
    fn blob_store_flags(&self, prefix: &str) -> Vec<String> {
        Azurite::blob_store_flags(self, BUCKET, prefix)
    }
    fn data_dir(&self) -> PathBuf {
        self.instance.data_dir()
    }
    fn kill(&self) {
        self.instance.kill()
    }
    fn restart(&mut self) -> Result<(), HarnessError> {
        Azurite::restart(self)
    }
}
