//! The plain-HTTP endpoint of the node roles (agent, GC) for kubelet's probes and Prometheus:
//! `/metrics` in the OpenMetrics text format, `/healthz` (the process answers) and `/readyz`
//! (what the role says about itself, with the reason when it is not ready).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// Content type of `/metrics`: what `prometheus_client`'s text encoder writes.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a role exposes: its metrics and its readiness.
pub trait Health: Send + Sync + 'static {
    /// The metrics in the OpenMetrics text format.
    fn metrics(&self) -> String;
    /// `Ok` when ready, else why not (the body of the 503).
    fn ready(&self) -> Result<(), String>;
}

/// The routes.
pub fn router(health: Arc<dyn Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn metrics(State(h): State<Arc<dyn Health>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        h.metrics(),
    )
}

async fn readyz(State(h): State<Arc<dyn Health>>) -> (StatusCode, String) {
    match h.ready() {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// Binds `addr` and serves until `stop` is cancelled; returns the bound address and the task.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<dyn Health>,
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
    tracing::info!(address = %bound, "serving /metrics, /healthz, /readyz");
    Ok((bound, task))
}

/// The text exposition format of `registry`. A poisoned lock still encodes: the counters are
/// plain atomics and never half-updated.
pub fn encode_registry(registry: &Mutex<Registry>) -> String {
    let mut out = String::new();
    let registry = match registry.lock() {
        Ok(r) => r,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "encoding metrics");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Probe {
        ready: AtomicBool,
    }

    impl Health for Probe {
        fn metrics(&self) -> String {
            "# EOF\n".into()
        }
        fn ready(&self) -> Result<(), String> {
            if self.ready.load(Ordering::Acquire) {
                Ok(())
            } else {
                Err("not yet".into())
            }
        }
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_probes_and_metrics_on_a_real_socket() {
        let probe = Arc::new(Probe {
            ready: AtomicBool::new(false),
        });
        let stop = CancellationToken::new();
        let (addr, task) = serve(
            "127.0.0.1:0".parse().unwrap(),
            Arc::clone(&probe) as Arc<dyn Health>,
            stop.clone(),
        )
        .await
        .unwrap();
        let not_ready = get(addr, "/readyz").await;
        assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
        assert!(not_ready.ends_with("not yet"), "{not_ready}");
        probe.ready.store(true, Ordering::Release);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/healthz").await.ends_with("ok"));
        let metrics = get(addr, "/metrics").await;
        assert!(
            metrics.contains(&format!("content-type: {OPENMETRICS_CONTENT_TYPE}")),
            "{metrics}"
        );
        assert!(metrics.ends_with("# EOF\n"), "{metrics}");
        stop.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
    }
}
