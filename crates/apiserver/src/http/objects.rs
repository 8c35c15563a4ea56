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
use super::{body, render, unchunked, watch};
use crate::AppState;
use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::registry::{Patch, Stored, WriteOptions};

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
    if opts.limit == 0 {
        return unchunked::serve::<R>(&state.registry, namespace, repr, include, opts).await;
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
                manager: Some(field_manager(&params, &headers)?),
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
                manager: Some(field_manager(&params, &headers)?),
            },
        )
        .await?;
    let mut resp = render::object(repr, &updated, params.include_object()?, StatusCode::OK)?;
    body::add_warnings(&mut resp, &warnings);
    Ok(resp)
}

/// `PATCH .../namespaces/<ns>/<plural>/<name>`: JSON merge patch and JSON patch.
pub async fn patch<R: CreateDefaults>(
    State(state): State<AppState>,
    Path((ns, name)): Path<(String, String)>,
    user: Option<Extension<UserInfo>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    req: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref())?;
    let repr = representation(&headers)?;
    let ct = content_type(&headers);
    let bytes = body::read(req).await?;
    let patch = body::decode_patch(&ct, &bytes)?;
    if let Patch::Apply(config) = patch {
        let user = user.map(|Extension(u)| u).unwrap_or_default();
        return apply::<R>(&state, &ns, &name, &user, &params, config, repr).await;
    }
    let patched: R = state
        .registry
        .patch(
            &ns,
            &name,
            &patch,
            &WriteOptions {
                dry_run: params.dry_run()?,
                manager: Some(field_manager(&params, &headers)?),
            },
        )
        .await?;
    render::object(repr, &patched, params.include_object()?, StatusCode::OK)
}

/// Server-side apply (`PATCH` with `application/apply-patch+yaml`): creates the object when it
/// does not exist, which needs the `create` permission and the create-time defaults too.
async fn apply<R: CreateDefaults>(
    state: &AppState,
    ns: &str,
    name: &str,
    user: &UserInfo,
    params: &Params,
    config: serde_json::Value,
    repr: Representation,
) -> Result<Response, ApiError> {
    let Some(manager) = params.get("fieldManager").filter(|m| !m.is_empty()) else {
        return Err(crate::registry::apply::field_manager_required());
    };
    let manager = checked_manager(manager)?;
    let force = params.flag("force")?;
    // Unknown fields, as `fieldValidation` says (kubectl asks for Strict).
    let (typed, warnings) = body::decode_value::<R>(&config, params.field_validation()?)?;
    let exists = match state.registry.get::<R>(ns, name).await {
        Ok(_) => true,
        Err(ApiError::NotFound { .. }) => false,
        Err(e) => return Err(e),
    };
    let mut create_defaults = None;
    if !exists {
        let mut attrs = crate::auth::request_attributes(
            &axum::http::Method::POST,
            &format!("/apis/{}/namespaces/{ns}/{}", API_VERSION, R::PLURAL),
            None,
        );
        name.clone_into(&mut attrs.name);
        crate::auth::authorize(&state.auth, user, &attrs).await?;
        // What the create-time defaults fill in (a CoredumpEndpoint's podUID) is set too.
        let before = serde_json::to_value(&typed).map_err(internal)?;
        let mut filled = typed;
        filled.fill_on_create(ns, user, state).await?;
        let after = serde_json::to_value(&filled).map_err(internal)?;
        create_defaults = Some(crate::registry::apply::changed_fields(&before, &after));
    }
    let opts = WriteOptions {
        dry_run: params.dry_run()?,
        manager: Some(manager),
    };
    let (obj, created): (R, bool) = state
        .registry
        .apply(ns, name, &config, force, create_defaults.as_ref(), &opts)
        .await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut resp = render::object(repr, &obj, params.include_object()?, code)?;
    body::add_warnings(&mut resp, &warnings);
    Ok(resp)
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::Internal {
        message: format!("encoding an applied object: {e}"),
    }
}

/// Longest `fieldManager` kube-apiserver accepts.
const MAX_FIELD_MANAGER: usize = 128;

fn checked_manager(manager: &str) -> Result<String, ApiError> {
    if manager.len() > MAX_FIELD_MANAGER || manager.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "fieldManager: Invalid value: must be at most {MAX_FIELD_MANAGER} printable characters"
        )));
    }
    Ok(manager.to_owned())
}

/// Who owns the fields a create, update or patch changes: `fieldManager`, else the client's
/// user agent up to its first `/` (`kubectl`, `kubectl-edit`...), as kube-apiserver names it.
fn field_manager(params: &Params, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(m) = params.get("fieldManager").filter(|m| !m.is_empty()) {
        return checked_manager(m);
    }
    let agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or("unknown");
    let mut agent: String = agent.chars().filter(|c| !c.is_control()).collect();
    agent.truncate(MAX_FIELD_MANAGER);
    Ok(agent)
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
