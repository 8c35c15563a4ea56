//! The route table: every path we serve, wrapped in authentication and authorization.

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, get};
use coredump_api::{Coredump, CoredumpEndpoint, GROUP, VERSION};

use crate::AppState;
use crate::auth::authenticate_and_authorize;
use crate::error::ApiError;
use crate::http::defaults::CreateDefaults;
use crate::http::{buildid, core, discovery, dump, objects};

fn resource_routes<R: CreateDefaults>(subresource: MethodRouter<AppState>) -> Router<AppState> {
    let base = format!("/apis/{GROUP}/{VERSION}");
    let plural = R::PLURAL;
    Router::new()
        .route(&format!("{base}/{plural}"), get(objects::list_all::<R>))
        .route(
            &format!("{base}/namespaces/{{namespace}}/{plural}"),
            get(objects::list_namespaced::<R>)
                .post(objects::create::<R>)
                .delete(objects::delete_collection::<R>),
        )
        .route(
            &format!("{base}/namespaces/{{namespace}}/{plural}/{{name}}"),
            get(objects::get::<R>)
                .put(objects::update::<R>)
                .patch(objects::patch::<R>)
                .delete(objects::delete::<R>),
        )
        .route(
            &format!(
                "{base}/namespaces/{{namespace}}/{plural}/{{name}}/{}",
                R::SUBRESOURCE
            ),
            subresource,
        )
}

/// The whole API as an axum router (testable with `tower::ServiceExt::oneshot`; requests need
/// a [`crate::auth::PeerCertificates`] extension to authenticate by certificate).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(discovery::health))
        .route("/livez", get(discovery::health))
        .route("/readyz", get(discovery::health))
        .route("/version", get(discovery::version))
        .route("/apis", get(discovery::apis))
        .route(&format!("/apis/{GROUP}"), get(discovery::group))
        .route(
            &format!("/apis/{GROUP}/{VERSION}"),
            get(discovery::resources),
        )
        .route("/api/v1/namespaces/{name}", get(discovery::namespace))
        .route("/openapi/v2", get(discovery::openapi_v2))
        .route("/openapi/v3", get(discovery::openapi_v3))
        .route(
            &format!("/openapi/v3/apis/{GROUP}/{VERSION}"),
            get(discovery::openapi_v3_group_version),
        )
        .merge(resource_routes::<CoredumpEndpoint>(get(dump::dump)))
        .merge(resource_routes::<Coredump>(get(core::core)))
        .route(
            &format!("/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/coredumps/{{name}}/log"),
            get(core::log),
        )
        .route(
            &format!("/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/buildid/{{id}}/{{file}}"),
            get(buildid::get),
        )
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Inside authentication: anonymous callers get 401 whatever the path.
        .layer(axum::middleware::from_fn(
            crate::http::path_check::reject_unsafe_paths,
        ))
        .layer(from_fn_with_state(
            state.auth.clone(),
            authenticate_and_authorize,
        ))
        .with_state(state)
}
