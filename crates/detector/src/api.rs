//! The API server inside standalone: its own CA, a serving certificate for loopback, an admin
//! client certificate in `system:masters` and a kubeconfig for kubectl. Only clients presenting
//! a certificate of that CA are served; anything else gets `401`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use coredump_api::Coredump;
use coredump_apiserver::auth::{AllowGroupsAuthorizer, AuthLayerState, ClientCertAuthenticator};
use coredump_apiserver::{ApiError, AppState, Registry};
use coredump_ingest::{CoredumpSink, SinkError};
use coredump_pki::{Ca, Issued, Kubeconfig};
use tokio_util::sync::CancellationToken;

use crate::standalone::Layout;

/// Group whose members may do everything.
pub const ADMIN_GROUP: &str = "system:masters";

/// Certificates of a standalone instance, created on first start and reused after.
pub struct Pki {
    /// The CA (trust anchor for clients and the server).
    pub ca: Ca,
    /// Serving certificate for `localhost` and `127.0.0.1` (re-issued every start).
    pub server: Issued,
    /// The admin client certificate.
    pub admin: Issued,
}

/// Loads or creates the CA and admin certificate in `layout.pki`; issues a fresh serving
/// certificate.
pub fn ensure_pki(layout: &Layout, listen: &SocketAddr) -> anyhow::Result<Pki> {
    coredump_capture::spool::create_private_dir_all(&layout.pki)?;
    let ca = match coredump_pki::read_pair(&layout.pki, "ca")? {
        Some(issued) => Ca::from_pem(issued),
        None => {
            let ca = Ca::generate("coredump-detector-standalone-ca")?;
            coredump_pki::write_pair(&layout.pki, "ca", ca.issued())?;
            ca
        }
    };
    let admin = match coredump_pki::read_pair(&layout.pki, "admin")? {
        Some(admin) => admin,
        None => {
            let admin = ca.issue_client("admin", &[ADMIN_GROUP])?;
            coredump_pki::write_pair(&layout.pki, "admin", &admin)?;
            admin
        }
    };
    let mut ips = vec!["127.0.0.1".parse()?, "::1".parse()?];
    if !listen.ip().is_unspecified() && !ips.contains(&listen.ip()) {
        ips.push(listen.ip());
    }
    let server = ca.issue_server(&["localhost"], &ips)?;
    coredump_pki::write_pair(&layout.pki, "server", &server)?;
    Ok(Pki { ca, server, admin })
}

/// Binds the API server, writes the kubeconfig, and serves until `stop` is cancelled.
pub async fn start(
    layout: &Layout,
    listen: &str,
    registry: Registry,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the API server to {listen}"))?;
    let addr = listener.local_addr()?;
    let pki = ensure_pki(layout, &addr)?;
    let tls = coredump_apiserver::tls::server_config(
        pki.server.cert_pem.as_bytes(),
        pki.server.key_pem.as_bytes(),
    )?;
    let auth = AuthLayerState {
        authenticator: Arc::new(ClientCertAuthenticator::from_pem(
            pki.ca.cert_pem().as_bytes(),
        )?),
        authorizer: Arc::new(AllowGroupsAuthorizer::new(vec![ADMIN_GROUP.to_string()])),
    };
    let host = if addr.ip().is_unspecified() || addr.ip().is_loopback() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let server_url = format!("https://{host}:{}", addr.port());
    coredump_pki::write_kubeconfig(
        &layout.kubeconfig,
        &Kubeconfig {
            name: "coredump-detector",
            server: &server_url,
            ca_pem: pki.ca.cert_pem(),
            client: &pki.admin,
        },
    )?;
    tracing::info!(
        url = %server_url,
        "API server ready: kubectl --kubeconfig {} get coredumps -A",
        layout.kubeconfig.display()
    );
    let state = AppState::new(registry, auth);
    Ok(tokio::spawn(coredump_apiserver::serve_listener(
        listener,
        Arc::new(tls),
        state,
        stop.cancelled_owned(),
    )))
}

/// Records crashes through the in-process registry (same validation and defaults as a
/// `create` through the API).
pub struct RegistrySink(pub Registry);

#[async_trait::async_trait]
impl CoredumpSink for RegistrySink {
    async fn record(&self, coredump: Coredump) -> Result<(), SinkError> {
        let name = coredump.metadata.name.clone();
        match self.0.create_coredump(coredump).await {
            Ok(_) => Ok(()),
            Err(ApiError::AlreadyExists { .. }) => Err(SinkError::AlreadyExists(name)),
            Err(e) => Err(SinkError::Failed {
                name,
                message: e.to_string(),
            }),
        }
    }
}
