//! The aggregated Kubernetes API server of `coredump.fujitsu.com/v1alpha1`: HTTPS with rustls,
//! routes in axum, objects through the typed [`registry::Registry`] over the store traits, and
//! authentication and authorization behind [`auth::Authenticator`] and [`auth::Authorizer`].
//!
//! * [`router`] builds the whole API for in-process tests;
//! * [`serve`] runs it over TLS until a shutdown future completes;
//! * [`cli::run`] is the `coredump-detector apiserver` role.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod cli;
pub mod compaction;
pub mod delegation;
pub mod error;
pub mod http;
pub mod pods;
pub mod registry;
mod router;
mod serve;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

pub use error::ApiError;
pub use registry::Registry;
pub use router::router;
pub use serve::{ServeError, ServerConfig, serve, serve_listener};

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Object access.
    pub registry: Registry,
    /// Authentication and authorization.
    pub auth: auth::AuthLayerState,
    /// Period of watch BOOKMARK events (when clients allow them).
    pub bookmark_interval: Duration,
    /// Gzip level of `dump` archives.
    pub dump_gzip_level: u32,
    /// Finds live pods (fills `spec.podUID` of new `CoredumpEndpoint`s).
    pub pods: Arc<dyn pods::PodLookup>,
    /// Users who may create `Coredump`s only with a token bound to a node, and then only of
    /// that node (`--node-bound-users`: the agents' service account).
    pub node_bound_users: Arc<[String]>,
    openapi: Arc<http::discovery::OpenApiDocs>,
}

impl AppState {
    /// State with default settings (no pod lookup: `spec.podUID` must be given).
    pub fn new(registry: Registry, auth: auth::AuthLayerState) -> Self {
        Self {
            registry,
            auth,
            bookmark_interval: Duration::from_secs(60),
            dump_gzip_level: http::dump::DEFAULT_GZIP_LEVEL,
            pods: Arc::new(pods::NoPodLookup),
            node_bound_users: Arc::from(Vec::new()),
            openapi: http::discovery::OpenApiDocs::build(),
        }
    }
}
