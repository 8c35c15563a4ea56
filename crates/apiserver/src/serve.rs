//! The HTTPS server: a TCP accept loop, a TLS handshake per connection (bounded in time), the
//! peer's certificate chain attached to every request, HTTP/1.1 or HTTP/2 by ALPN, and a
//! graceful shutdown that stops accepting and gives open requests a few seconds.
//!
//! Sized for large downloads (a `core` is gigabytes, measured by `benches/download.rs`):
//! writes are gathered into [`WRITE_BUFFER`] before TLS encrypts them, so HTTP/2's DATA frames
//! (16 KiB each, the client's frame size) share full 16 KiB TLS records and one `writev`
//! carries many records, instead of a record pair (16 384 + 9 bytes) and a system call per
//! frame; HTTP/2 keeps [`H2_SEND_BUFFER`] of a response queued per stream.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::AppState;
use crate::auth::PeerCertificates;

/// Longest TLS handshake allowed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for open requests (watches never end by themselves).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Plaintext gathered per connection before encryption (larger writes go straight through).
const WRITE_BUFFER: usize = 256 * 1024;
/// Encrypted bytes rustls may hold before the socket takes them: one `writev` of 16 records.
const TLS_SEND_BUFFER: usize = 256 * 1024;
/// Response bytes HTTP/2 queues per stream ahead of the client's flow-control window (hyper's
/// default is 400 KiB): a core's next frame is ready while the window opens.
const H2_SEND_BUFFER: usize = 1024 * 1024;
/// HTTP/2 receive windows: request bodies are small objects, so the defaults' sizes (1 MiB per
/// stream and connection) are kept for the stream and the connection gets room for several.
const H2_STREAM_WINDOW: u32 = 1024 * 1024;
const H2_CONNECTION_WINDOW: u32 = 4 * 1024 * 1024;

/// What to serve where.
pub struct ServerConfig {
    /// Listen address.
    pub bind: SocketAddr,
    /// TLS configuration (see [`crate::tls::server_config`]).
    pub tls: Arc<rustls::ServerConfig>,
    /// Shared handler state.
    pub state: AppState,
    /// Tasks serving the server (configuration followers, compaction), stopped with it.
    pub background: crate::delegation::BackgroundTasks,
}

/// The server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding the listen address failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Binds `config.bind` and serves until `shutdown` completes.
pub async fn serve(
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.bind,
            source,
        })?;
    let _background = config.background;
    serve_listener(listener, config.tls, config.state, shutdown).await;
    Ok(())
}

/// Serves on an already bound listener until `shutdown` completes (tests bind port 0 first).
pub async fn serve_listener(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let app = crate::router(state);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_send_buf_size(H2_SEND_BUFFER)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "API server listening");
    }
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let certs: Vec<_> = tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default();
            let peer_certs = PeerCertificates(Arc::new(certs));
            tls.get_mut().1.set_buffer_limit(Some(TLS_SEND_BUFFER));
            let io = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, tls);
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(peer_certs.clone());
                app.clone().oneshot(req.map(Body::new))
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("open connections did not finish in time; closing them");
    }
}
