//! SIGINT and SIGTERM as one future, for every long-running role of the binary (agent, GC,
//! standalone, API server): a pod deletion sends SIGTERM, Ctrl-C sends SIGINT, and each role
//! shuts down (restoring `core_pattern` where it owns it) when this resolves.

/// Resolves on SIGINT or SIGTERM. If the handlers cannot be installed it never resolves and
/// logs `consequence` (what a kill without a clean shutdown leaves behind for this role).
pub async fn shutdown_signal(consequence: &'static str) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers; {consequence}");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
}
