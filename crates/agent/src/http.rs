//! The agent's plain-HTTP endpoint for kubelet and Prometheus: `/metrics` (text format),
//! `/healthz` (the process answers) and `/readyz` (the kernel points at our handler and the
//! informers have their initial lists, so crashes are resolved, not guessed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::informer::Caches;
use crate::metrics::Metrics;

/// What the endpoints report on.
#[derive(Clone)]
pub struct Health {
    /// Metrics to expose.
    pub metrics: Arc<Metrics>,
    /// Informer caches (ready when synced).
    pub caches: Caches,
    /// Whether `core_pattern` points at our handler.
    pub capturing: Arc<AtomicBool>,
}

/// The routes.
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
}

async fn readyz(State(h): State<Health>) -> (StatusCode, String) {
    let capturing = h.capturing.load(Ordering::Acquire);
    let synced = h.caches.synced();
    if capturing && synced {
        (StatusCode::OK, "ok".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("capturing: {capturing}, informers synced: {synced}"),
        )
    }
}

/// Binds `addr` and serves until `stop` is cancelled; returns the bound address and the task.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(health);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics endpoint failed");
        }
    });
    Ok((bound, task))
}
