//! Handlers of the object paths, generic over the kind: list (and watch), create,
//! deletecollection on collections; get, update, patch, delete on named objects.

use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use coredump_api::{API_VERSION, DeleteOptions, List};

use super::defaults::CreateDefaults;
use super::negotiate::{Representation, content_type, representation};
use super::params::Params;
use super::{body, render, watch};
use crate::AppState;
use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::registry::{Stored, WriteOptions};

async fn list_or_watch<R: Stored>(
    state: &AppState,
    namespace: Option<&str>,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Response, ApiError> {
    let repr = representation(headers)?;
    let include = params.include_object()?;
    let opts = params.list_options::<R>()?;
    if params.watch()? {
        return watch::serve::<R>(state, namespace, repr, include, opts, params).await;
    }
    let page = state.registry.list::<R>(namespace, &opts).await?;
    render::list(repr, page, include)
}

/// `GET /apis/<g>/<v>/<plural>`: all namespaces.
pub async fn list_all<R: Stored>(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    list_or_watch::<R>(&state, None, &headers, &params).await
}

/// `GET /apis/<g>/<v>/namespaces/<ns>/<plural>`.
pub async fn list_namespaced<R: Stored>(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    list_or_watch::<R>(&state, Some(&ns), &headers, &params).await
}

/// `POST /apis/<g>/<v>/namespaces/<ns>/<plural>`.
pub async fn create<R: CreateDefaults>(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    user: Option<Extension<UserInfo>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    req: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let repr = representation(&headers)?;
    let bytes = body::read(req).await?;
    let (mut obj, warnings) = body::decode::<R>(&headers, &bytes, params.field_validation()?)?;
    // The auth middleware attaches the caller to every API request; none means a router built
    // without it (in-process tests), which acts as nobody in particular.
    let user = user.map(|Extension(u)| u).unwrap_or_default();
    obj.fill_on_create(&ns, &user, &state).await?;
    let created = state
        .registry
        .create(
            &ns,
            obj,
            &WriteOptions {
                dry_run: params.dry_run()?,
            },
        )
        .await?;
    let mut resp = render::object(
        repr,
        &created,
        params.include_object()?,
        StatusCode::CREATED,
    )?;
    body::add_warnings(&mut resp, &warnings);
    Ok(resp)
}

/// `GET .../namespaces/<ns>/<plural>/<name>`.
pub async fn get<R: Stored>(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let repr = representation(&headers)?;
    let obj: R = state.registry.get(&ns, &name).await?;
    render::object(repr, &obj, params.include_object()?, StatusCode::OK)
}

/// `PUT .../namespaces/<ns>/<plural>/<name>`.
pub async fn update<R: Stored>(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    req: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let repr = representation(&headers)?;
    let bytes = body::read(req).await?;
    let (obj, warnings) = body::decode::<R>(&headers, &bytes, params.field_validation()?)?;
    let updated = state
        .registry
        .update(
            &ns,
            &name,
            obj,
            &WriteOptions {
                dry_run: params.dry_run()?,
            },
        )
        .await?;
    let mut resp = render::object(repr, &updated, params.include_object()?, StatusCode::OK)?;
    body::add_warnings(&mut resp, &warnings);
    Ok(resp)
}

/// `PATCH .../namespaces/<ns>/<plural>/<name>`: JSON merge patch and JSON patch.
pub async fn patch<R: Stored>(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    req: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let repr = representation(&headers)?;
    let ct = content_type(&headers);
    let bytes = body::read(req).await?;
    let patch = body::decode_patch(&ct, &bytes)?;
    let patched: R = state
        .registry
        .patch(
            &ns,
            &name,
            &patch,
            &WriteOptions {
                dry_run: params.dry_run()?,
            },
        )
        .await?;
    render::object(repr, &patched, params.include_object()?, StatusCode::OK)
}

/// Delete options from the body (optional) merged with query parameters.
fn delete_options(
    headers: &HeaderMap,
    bytes: &[u8],
    params: &Params,
) -> Result<DeleteOptions, ApiError> {
    let mut opts = if bytes.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        body::decode::<DeleteOptions>(headers, bytes, super::params::FieldValidation::Ignore)?.0
    };
    if params.dry_run()? && !opts.dry_run.iter().any(|d| d == "All") {
        opts.dry_run.push("All".to_owned());
    }
    if let Some(d) = opts.dry_run.iter().find(|d| *d != "All") {
        return Err(ApiError::bad_request(format!(
            "unsupported dryRun value {d:?}: only \"All\" is supported"
        )));
    }
    if let Some(p) = params.get("propagationPolicy") {
        opts.propagation_policy = Some(p.to_owned());
    }
    if let Some(p) = &opts.propagation_policy
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::bad_request(format!(
            "invalid propagationPolicy {p:?}"
        )));
    }
    Ok(opts)
}

/// `DELETE .../namespaces/<ns>/<plural>/<name>`: answers with the deleted object.
pub async fn delete<R: Stored>(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    req: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let repr = representation(&headers)?;
    let bytes = body::read(req).await?;
    let opts = delete_options(&headers, &bytes, &params)?;
    let deleted: R = state.registry.delete(&ns, &name, &opts).await?;
    render::object(repr, &deleted, params.include_object()?, StatusCode::OK)
}

/// `DELETE .../namespaces/<ns>/<plural>`: deletes every match, answers with the list deleted.
pub async fn delete_collection<R: Stored>(
    State(state): State<AppState>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    req: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    if !matches!(representation(&headers)?, Representation::Object) {
        return Err(ApiError::NotAcceptable {
            supported: "application/json".to_owned(),
        });
    }
    let bytes = body::read(req).await?;
    let opts = delete_options(&headers, &bytes, &params)?;
    let list = params.list_options::<R>()?;
    let deleted: Vec<R> = state
        .registry
        .delete_collection(Some(&ns), &list, &opts)
        .await?;
    let revision = state.registry.metadata_store().current_revision().await?;
    render::json(
        StatusCode::OK,
        &List {
            api_version: API_VERSION.to_owned(),
            kind: R::list_kind(),
            metadata: coredump_api::ListMeta {
                resource_version: revision.to_string(),
                ..Default::default()
            },
            items: deleted,
        },
        "application/json",
    )
}
