//! An Azure Blob server for the object-store tests: Azurite, Microsoft's storage emulator,
//! installed from npm by `scripts/install-deps.sh` into the cache (pinned version), on a free
//! loopback port with its blobs and metadata in a scratch directory, and one storage account of
//! its own ([`ACCOUNT`] with [`ACCESS_KEY`]), whose shared-key signatures it checks: a wrong key
//! is refused as by Azure.
//!
//! Killed on `Drop`, and by the kernel when the test binary dies ([`ManagedProcess`]); its
//! directory goes with it. Not installed is an error naming the script, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::error::HarnessError;
use crate::http::request;
use crate::instance::Instance;
use crate::process::ManagedProcess;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The Azurite release `scripts/install-deps.sh` installs (keep the two equal).
pub const AZURITE_VERSION: &str = "3.35.0";
/// How long it may take to answer (node starts it in a second or two).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The storage account.
pub const ACCOUNT: &str = "coredumptest";
/// The account's key (base64, as Azure shows keys): `coredump-test-key-0123456789`.
pub const ACCESS_KEY: &str = "Y29yZWR1bXAtdGVzdC1rZXktMDEyMzQ1Njc4OQ==";
/// The REST API version of the requests the harness signs itself.
const API_VERSION: &str = "2021-08-06";

/// A running Azurite blob service.
#[derive(Debug)]
pub struct Azurite {
    /// Its process and directory ([`crate::object_server::ObjectServer`] kills it).
    pub(crate) instance: Instance,
    port: u16,
    /// Containers created, made again after a restart (Azurite saves its metadata every few
    /// seconds: a kill may lose a container created just before).
    containers: Vec<String>,
}

/// `azurite-blob` in the cache, or an error saying how to install it.
pub fn azurite_binary() -> Result<PathBuf, HarnessError> {
    let cache =
        std::env::var_os("COREDUMP_CACHE").unwrap_or_else(|| "/var/cache/coredump-detector".into());
    let binary = Path::new(&cache)
        .join(format!("azurite-{AZURITE_VERSION}"))
        .join("node_modules/.bin/azurite-blob");
    if binary.exists() {
        Ok(binary)
    } else {
        Err(HarnessError::Build {
            script: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-deps.sh"),
            message: format!(
                "Azurite {AZURITE_VERSION} is not installed ({} is missing): run the script",
                binary.display()
            ),
        })
    }
}

/// Starts Azurite's blob service in a fresh scratch directory and waits until it answers.
pub fn start_azurite() -> Result<Azurite, HarnessError> {
    let instance = Instance::start("azurite", azurite_binary()?, launch)?;
    Ok(Azurite {
        port: instance.port,
        instance,
        containers: Vec::new(),
    })
}

impl Azurite {
    /// The storage account's URL, `http://127.0.0.1:<port>/<account>` (path style).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The flags that select `az://<container>/<prefix>` on this server with its account, as
    /// the roles take them.
    pub fn blob_store_flags(&self, container: &str, prefix: &str) -> Vec<String> {
        vec![
            format!("--blob-store=az://{container}/{prefix}"),
            format!("--azure-endpoint={}", self.endpoint()),
            format!("--azure-account={ACCOUNT}"),
            format!("--azure-access-key={ACCESS_KEY}"),
            "--azure-allow-http".to_string(),
        ]
    }

    /// Creates a container (an existing one is fine), with a request signed by the account's
    /// key.
    pub fn create_container(&mut self, name: &str) -> Result<(), HarnessError> {
        self.put_container(name)?;
        if !self.containers.iter().any(|c| c == name) {
            self.containers.push(name.to_owned());
        }
        Ok(())
    }

    /// The headers of a request signed with the account's key (Shared Key): `x-ms-date`,
    /// `x-ms-version`, the `x-ms-*` headers in `extra` and `Authorization`. `path` is what
    /// follows the account in the URL (`container/blob`), `query` its parameters,
    /// `content_length` the body's size (0: none). Lets a client that is not `object_store`
    /// (the harness itself, curl in a benchmark's baseline) talk to this server.
    pub fn signed_headers(
        &self,
        verb: &str,
        path: &str,
        query: &[(&str, &str)],
        content_length: u64,
        extra: &[(&str, &str)],
    ) -> Result<Vec<(String, String)>, HarnessError> {
        let date = httpdate::fmt_http_date(SystemTime::now());
        let mut headers: Vec<(String, String)> =
            [("x-ms-date", date.as_str()), ("x-ms-version", API_VERSION)]
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
                .collect();
        headers.sort();
        let length = match content_length {
            0 => String::new(),
            n => n.to_string(),
        };
        let mut to_sign = format!("{verb}\n\n\n{length}\n\n\n\n\n\n\n\n\n");
        for (name, value) in &headers {
            to_sign.push_str(&format!("{name}:{value}\n"));
        }
        to_sign.push_str(&format!("/{ACCOUNT}/{ACCOUNT}/{path}"));
        let mut query = query.to_vec();
        query.sort_unstable();
        for (name, value) in query {
            to_sign.push_str(&format!("\n{name}:{value}"));
        }
        let key = STANDARD.decode(ACCESS_KEY).map_err(|e| {
            HarnessError::io("decode", Path::new("ACCESS_KEY"), std::io::Error::other(e))
        })?;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        let signature = STANDARD.encode(ring::hmac::sign(&key, to_sign.as_bytes()).as_ref());
        headers.push((
            "Authorization".to_owned(),
            format!("SharedKey {ACCOUNT}:{signature}"),
        ));
        Ok(headers)
    }

    fn put_container(&self, name: &str) -> Result<(), HarnessError> {
        let headers = self.signed_headers("PUT", name, &[("restype", "container")], 0, &[])?;
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let answer = request(
            self.port,
            "PUT",
            &format!("/{ACCOUNT}/{name}?restype=container"),
            &headers,
            b"",
        )
        .map_err(|e| HarnessError::io("create a container on", &self.instance.binary, e))?;
        match answer.status {
            201 | 409 => Ok(()),
            status => Err(HarnessError::Build {
                script: self.instance.binary.clone(),
                message: format!("creating container {name}: {status}: {}", answer.body),
            }),
        }
    }

    /// Kills it and starts it again on the same data and port; the containers made through
    /// [`Azurite::create_container`] exist again (its metadata is saved every few seconds, so
    /// a kill can lose the newest).
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.instance.restart()?;
        for container in &self.containers {
            self.put_container(container)?;
        }
        Ok(())
    }
}

fn launch(binary: &Path, dir: &Path, port: u16) -> Result<ManagedProcess, HarnessError> {
    let mut command = Command::new(binary);
    command
        .args(["--blobHost", "127.0.0.1", "--blobPort"])
        .arg(port.to_string())
        .arg("--location")
        .arg(dir.join("data"))
        // Path-style URLs only (the account in the path, as on loopback), no telemetry, and
        // the newest REST versions of the client library accepted.
        .args([
            "--disableProductStyleUrl",
            "--disableTelemetry",
            "--skipApiVersionCheck",
        ])
        .env("AZURITE_ACCOUNTS", format!("{ACCOUNT}:{ACCESS_KEY}"));
    ManagedProcess::spawn_until_ready(
        "azurite",
        command,
        &dir.join("azurite.log"),
        READY_TIMEOUT,
        // Any answer of its own (an unsigned listing is refused with 403) means it serves.
        || match request(port, "GET", &format!("/{ACCOUNT}?comp=list"), &[], b"") {
            Ok(answer) if answer.status == 403 || answer.status == 200 => Ok(()),
            Ok(answer) => Err(format!("listing answered {}", answer.status)),
            Err(e) => Err(format!("listing: {e}")),
        },
    )
}
