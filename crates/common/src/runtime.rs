//! The async runtime of the long-running roles.

/// Why the runtime did not start.
#[derive(Debug, thiserror::Error)]
#[error("starting the async runtime: {0}")]
pub struct RuntimeError(#[from] std::io::Error);

/// Two worker threads whatever the node's size, so a node role never takes a thread per CPU of
/// a large node (the agent, the GC and the API server run beside the node's workloads).
pub fn runtime() -> Result<tokio::runtime::Runtime, RuntimeError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// One worker per CPU: the roles that serve downloads (the API server, standalone), where
/// decompression and TLS of concurrent downloads use what the pod's CPU limit allows.
pub fn server_runtime() -> Result<tokio::runtime::Runtime, RuntimeError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
