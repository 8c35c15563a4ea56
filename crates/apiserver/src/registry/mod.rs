//! The typed object layer shared by the HTTP handlers and in-process callers (the standalone
//! ingest calls [`Registry::create_coredump`] directly). It owns Kubernetes object semantics on
//! top of the opaque [`MetadataStore`]: defaults on create (uid, creationTimestamp, generated
//! names), validation, `resourceVersion` preconditions, selectors, dry runs, field ownership
//! and server-side apply ([`apply`]), and the blob clean-up that deleting an object implies.

pub mod apply;
mod cleanup;
mod codec;
pub mod pages;
pub mod retention;
mod typed;

use std::sync::Arc;

use coredump_api::validation::{FieldError, FieldErrorKind};
use coredump_api::{DeleteOptions, FieldSelector, LabelSelector, Resource};
use coredump_store::{BlobStore, ListRequest, MetadataStore, ObjectKey, Precondition, StoreError};
use serde_json::Value;

pub use cleanup::{Stored, blob_path_of};
pub use codec::{decode, encode};

use crate::error::ApiError;

/// How many names `generateName` tries before giving up.
const GENERATE_NAME_ATTEMPTS: usize = 8;

/// Options of a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Validate and compute the result without persisting (`dryRun=All`).
    pub dry_run: bool,
    /// Who writes (`fieldManager`, else the client's user agent): owner of the fields it
    /// changes in `metadata.managedFields`. `None` (in-process callers) keeps the
    /// `managedFields` the object carries.
    pub manager: Option<String>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// Page size (0 = all).
    pub limit: usize,
    /// Continue token of the previous page.
    pub continue_token: Option<String>,
}

/// One page of objects.
#[derive(Debug, Clone)]
pub struct ObjectList<R> {
    /// Matching objects of this page.
    pub items: Vec<R>,
    /// Store revision the page was read at.
    pub resource_version: u64,
    /// Token of the next page.
    pub continue_token: Option<String>,
}

/// A JSON patch of one of the supported types.
#[derive(Debug, Clone)]
pub enum Patch {
    /// RFC 7386 (`application/merge-patch+json`).
    Merge(Value),
    /// RFC 6902 (`application/json-patch+json`).
    Json(json_patch::Patch),
    /// Server-side apply (`application/apply-patch+yaml`): the manager's whole configuration
    /// ([`Registry::apply`]).
    Apply(Value),
}

/// Typed access to our objects and their blobs.
#[derive(Clone)]
pub struct Registry {
    meta: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    signature_retention: Option<retention::Keep>,
}

fn key<R: Resource>(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        resource: R::PLURAL.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

fn invalid<R: Resource>(name: &str, errors: Vec<FieldError>) -> ApiError {
    ApiError::Invalid {
        kind: R::KIND.to_owned(),
        name: name.to_owned(),
        errors,
    }
}

fn to_json<R: Stored>(obj: &R) -> Result<Value, ApiError> {
    serde_json::to_value(obj).map_err(|e| ApiError::Internal {
        message: format!("encoding {} {}: {e}", R::KIND, obj.metadata().name),
    })
}

/// The manager of a write, at `now` (RFC 3339).
fn actor<'a>(manager: &'a str, now: &'a str) -> apply::Actor<'a> {
    apply::Actor {
        manager,
        api_version: coredump_api::API_VERSION,
        now,
    }
}

fn now_rfc3339() -> String {
    coredump_api::time::format_rfc3339(time::OffsetDateTime::now_utc())
}

/// An apply configuration names the object of the URL, with our API version and kind.
fn check_apply_identity<R: Resource>(config: &Value, name: &str) -> Result<(), ApiError> {
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "an apply configuration must be an object",
        ));
    }
    let api_version = config["apiVersion"].as_str().unwrap_or_default();
    let kind = config["kind"].as_str().unwrap_or_default();
    if api_version != coredump_api::API_VERSION || kind != R::KIND {
        return Err(ApiError::bad_request(format!(
            "the apply configuration is a {kind:?} of {api_version:?}, not a {} of {}",
            R::KIND,
            coredump_api::API_VERSION
        )));
    }
    match config["metadata"]["name"].as_str() {
        Some(n) if n == name => Ok(()),
        other => Err(ApiError::bad_request(format!(
            "the name of the applied object ({}) does not match the name on the URL ({name})",
            other.unwrap_or("none")
        ))),
    }
}

/// The 409 of an apply that conflicts, worded as kube-apiserver words it (kubectl adds its
/// advice about `--force-conflicts`).
fn apply_conflict<R: Resource>(name: &str, conflicts: &[apply::Conflict]) -> ApiError {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with {:?} using {}: {}",
                c.manager,
                coredump_api::API_VERSION,
                apply::display(&c.field)
            )
        })
        .collect();
    let message = if lines.len() == 1 {
        format!("Apply failed with 1 conflict: {}", lines[0])
    } else {
        format!(
            "Apply failed with {} conflicts: {}",
            lines.len(),
            lines.join("\n")
        )
    };
    ApiError::ApplyConflict {
        resource: R::PLURAL.to_owned(),
        name: name.to_owned(),
        message,
        causes: conflicts
            .iter()
            .map(|c| {
                (
                    format!("conflict with {:?}", c.manager),
                    apply::display(&c.field),
                )
            })
            .collect(),
    }
}

fn parse_revision(rv: &str) -> Option<u64> {
    rv.parse().ok()
}

/// Random suffix for `generateName`, from the alphabet Kubernetes uses (no vowels, no
/// look-alikes).
fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

impl Registry {
    /// A registry over these stores.
    pub fn new(meta: Arc<dyn MetadataStore>, blobs: Arc<dyn BlobStore>) -> Self {
        Self {
            meta,
            blobs,
            signature_retention: None,
        }
    }

    /// Keeps only the first and the last cores of each signature of each pod
    /// ([`retention`]).
    pub fn with_signature_retention(mut self, keep: Option<retention::Keep>) -> Self {
        self.signature_retention = keep;
        self
    }

    /// The retention by signature in force, if any.
    pub fn signature_retention(&self) -> Option<retention::Keep> {
        self.signature_retention
    }

    /// The metadata store (for watches).
    pub fn metadata_store(&self) -> &Arc<dyn MetadataStore> {
        &self.meta
    }

    /// The blob store (for downloads).
    pub fn blob_store(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// Creates an object in `namespace` (the object's own namespace must be empty or equal).
    /// Sets `uid`, `creationTimestamp`, `apiVersion`/`kind`, and the name from `generateName`.
    pub async fn create<R: Stored>(
        &self,
        namespace: &str,
        mut obj: R,
        opts: &WriteOptions,
    ) -> Result<R, ApiError> {
        check_type_meta::<R>(&obj)?;
        let meta = obj.metadata_mut();
        if meta.namespace.is_empty() {
            namespace.clone_into(&mut meta.namespace);
        } else if meta.namespace != namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta.uid = uuid::Uuid::new_v4().to_string();
        meta.creation_timestamp = Some(coredump_api::time::format_rfc3339(
            time::OffsetDateTime::now_utc(),
        ));
        meta.resource_version.clear();
        obj.set_type_meta();
        if let Some(manager) = &opts.manager {
            let now = now_rfc3339();
            let managed = apply::track_update(None, &to_json(&obj)?, &[], actor(manager, &now));
            obj.metadata_mut().managed_fields = managed;
        }
        let generate = obj.metadata().name.is_empty() && !obj.metadata().generate_name.is_empty();
        for _ in 0..GENERATE_NAME_ATTEMPTS {
            if generate {
                let m = obj.metadata_mut();
                m.name = format!("{}{}", m.generate_name, name_suffix());
            }
            let errors = obj.validate_create();
            if !errors.is_empty() {
                return Err(invalid::<R>(&obj.metadata().name, errors));
            }
            let k = key::<R>(namespace, &obj.metadata().name);
            if opts.dry_run {
                if self.meta.get(&k).await?.is_some() {
                    return Err(StoreError::AlreadyExists(k).into());
                }
                return Ok(obj);
            }
            match self.meta.create(&k, encode(&obj)?).await {
                Ok(revision) => {
                    obj.metadata_mut().resource_version = revision.to_string();
                    obj.after_create(self).await;
                    return Ok(obj);
                }
                Err(StoreError::AlreadyExists(_)) if generate => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::Conflict {
            resource: R::PLURAL.to_owned(),
            name: obj.metadata().generate_name.clone(),
            detail: "could not generate a unique name; try again".to_owned(),
        })
    }

    /// Reads one object.
    pub async fn get<R: Stored>(&self, namespace: &str, name: &str) -> Result<R, ApiError> {
        let k = key::<R>(namespace, name);
        match self.meta.get(&k).await? {
            Some(stored) => decode(&stored),
            None => Err(StoreError::NotFound(k).into()),
        }
    }

    /// Lists one page of objects (all namespaces when `namespace` is `None`), filtered by the
    /// selectors. A page may hold fewer than `limit` matches and still have a continue token.
    pub async fn list<R: Stored>(
        &self,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ObjectList<R>, ApiError> {
        let page = self
            .meta
            .list(&ListRequest {
                resource: R::PLURAL.to_owned(),
                namespace: namespace.map(str::to_owned),
                limit: opts.limit,
                continue_token: opts.continue_token.clone(),
            })
            .await?;
        Ok(ObjectList {
            items: matching(&page.items, opts)?,
            resource_version: page.revision,
            continue_token: page.continue_token,
        })
    }

    /// Every matching object, all pages.
    pub async fn list_all<R: Stored>(
        &self,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ObjectList<R>, ApiError> {
        let mut opts = opts.clone();
        opts.limit = 0;
        opts.continue_token = None;
        self.list(namespace, &opts).await
    }

    /// Replaces an object. `metadata.resourceVersion` is required and must be current (409
    /// otherwise); `uid` and `creationTimestamp` are kept from the stored object.
    pub async fn update<R: Stored>(
        &self,
        namespace: &str,
        name: &str,
        mut obj: R,
        opts: &WriteOptions,
    ) -> Result<R, ApiError> {
        check_type_meta::<R>(&obj)?;
        let meta = obj.metadata();
        if meta.name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta.name
            )));
        }
        if !meta.namespace.is_empty() && meta.namespace != namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let Some(expected) = parse_revision(&meta.resource_version) else {
            return Err(invalid::<R>(
                name,
                vec![FieldError {
                    field: "metadata.resourceVersion".to_owned(),
                    kind: FieldErrorKind::Invalid(meta.resource_version.clone()),
                    detail: "must be specified for an update".to_owned(),
                }],
            ));
        };
        let old: R = self.get(namespace, name).await?;
        let m = obj.metadata_mut();
        namespace.clone_into(&mut m.namespace);
        m.uid.clone_from(&old.metadata().uid);
        m.creation_timestamp
            .clone_from(&old.metadata().creation_timestamp);
        obj.set_type_meta();
        if let Some(manager) = &opts.manager {
            let now = now_rfc3339();
            let managed = apply::track_update(
                Some(&to_json(&old)?),
                &to_json(&obj)?,
                &old.metadata().managed_fields,
                actor(manager, &now),
            );
            obj.metadata_mut().managed_fields = managed;
        }
        let errors = obj.validate_update(&old);
        if !errors.is_empty() {
            return Err(invalid::<R>(name, errors));
        }
        let k = key::<R>(namespace, name);
        if opts.dry_run {
            if old.metadata().resource_version != expected.to_string() {
                return Err(StoreError::Conflict {
                    key: k,
                    current: 0,
                    expected,
                }
                .into());
            }
            return Ok(obj);
        }
        let revision = self
            .meta
            .update(&k, encode(&obj)?, Precondition::Revision(expected))
            .await?;
        obj.metadata_mut().resource_version = revision.to_string();
        Ok(obj)
    }

    /// Applies a patch to the current object and stores the result. Without a
    /// `resourceVersion` in the patch, a concurrent change is retried; with one, it must match.
    pub async fn patch<R: Stored>(
        &self,
        namespace: &str,
        name: &str,
        patch: &Patch,
        opts: &WriteOptions,
    ) -> Result<R, ApiError> {
        const ATTEMPTS: usize = 5;
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let current: R = self.get(namespace, name).await?;
            let (patched, pinned) = apply_patch(&current, name, patch)?;
            match self.update(namespace, name, patched, opts).await {
                Err(e @ ApiError::Conflict { .. }) if !pinned => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or(ApiError::Internal {
            message: "patch retries exhausted".to_owned(),
        }))
    }

    /// Server-side apply of `config` by `opts.manager`: creates the object when it does not
    /// exist and the caller gave `create_defaults` (it checked the `create` permission and
    /// computed what create-time defaults fill in: set, owned by nobody), else sets what the configuration says and removes what the manager applied
    /// before and no longer applies ([`apply`]). Returns the object and whether it was created.
    /// A concurrent change is retried; fields another manager owns with another value are a 409
    /// unless `force`.
    pub async fn apply<R: Stored>(
        &self,
        namespace: &str,
        name: &str,
        config: &Value,
        force: bool,
        create_defaults: Option<&Value>,
        opts: &WriteOptions,
    ) -> Result<(R, bool), ApiError> {
        let Some(manager) = opts.manager.as_deref().filter(|m| !m.is_empty()) else {
            return Err(apply::field_manager_required());
        };
        check_apply_identity::<R>(config, name)?;
        // The result is stored as computed: no second round of update tracking.
        let store_opts = WriteOptions {
            dry_run: opts.dry_run,
            manager: None,
        };
        const ATTEMPTS: usize = 5;
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let current: Option<R> = match self.get(namespace, name).await {
                Ok(c) => Some(c),
                Err(ApiError::NotFound { .. }) if create_defaults.is_some() => None,
                Err(ApiError::NotFound { .. }) => {
                    return Err(ApiError::Conflict {
                        resource: R::PLURAL.to_owned(),
                        name: name.to_owned(),
                        detail: "the object was deleted while it was applied; apply again"
                            .to_owned(),
                    });
                }
                Err(e) => return Err(e),
            };
            let (current_json, managed) = match &current {
                Some(c) => (to_json(c)?, c.metadata().managed_fields.clone()),
                None => (Value::Object(serde_json::Map::new()), Vec::new()),
            };
            let now = now_rfc3339();
            let (mut doc, managed) =
                apply::apply(&current_json, &managed, config, actor(manager, &now), force)
                    .map_err(|conflicts| apply_conflict::<R>(name, &conflicts))?;
            if current.is_none()
                && let Some(defaults) = create_defaults
            {
                apply::fill_unset(&mut doc, defaults);
            }
            doc["metadata"]["name"] = Value::from(name);
            doc["metadata"]["namespace"] = Value::from(namespace);
            let mut obj: R = serde_json::from_value(doc).map_err(|e| {
                ApiError::bad_request(format!(
                    "the applied configuration is not a {}: {e}",
                    R::KIND
                ))
            })?;
            obj.set_type_meta();
            obj.metadata_mut().managed_fields = managed;
            let stored = match current {
                None => self
                    .create(namespace, obj, &store_opts)
                    .await
                    .map(|o| (o, true)),
                Some(c) => {
                    c.metadata()
                        .resource_version
                        .clone_into(&mut obj.metadata_mut().resource_version);
                    self.update(namespace, name, obj, &store_opts)
                        .await
                        .map(|o| (o, false))
                }
            };
            match stored {
                Err(e @ (ApiError::Conflict { .. } | ApiError::AlreadyExists { .. })) => {
                    last = Some(e)
                }
                other => return other,
            }
        }
        Err(last.unwrap_or(ApiError::Internal {
            message: "apply retries exhausted".to_owned(),
        }))
    }

    /// Deletes an object (honouring preconditions and dry run), then what it owns: a
    /// Coredump's blob; an endpoint's blobs and Coredump objects.
    pub async fn delete<R: Stored>(
        &self,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<R, ApiError> {
        let current: R = self.get(namespace, name).await?;
        let k = key::<R>(namespace, name);
        let mut precondition = Precondition::None;
        if let Some(pre) = &opts.preconditions {
            if let Some(uid) = &pre.uid
                && *uid != current.metadata().uid
            {
                return Err(ApiError::Conflict {
                    resource: R::PLURAL.to_owned(),
                    name: name.to_owned(),
                    detail: format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        current.metadata().uid
                    ),
                });
            }
            if let Some(rv) = &pre.resource_version {
                let expected = parse_revision(rv).ok_or_else(|| {
                    ApiError::bad_request(format!("invalid resourceVersion precondition {rv:?}"))
                })?;
                precondition = Precondition::Revision(expected);
            }
        }
        // Without a caller precondition, still delete exactly the version we read, so that the
        // clean-up below matches the object that was removed.
        if precondition == Precondition::None
            && let Some(rv) = parse_revision(&current.metadata().resource_version)
        {
            precondition = Precondition::Revision(rv);
        }
        if opts.dry_run.iter().any(|d| d == "All") {
            if let Precondition::Revision(expected) = precondition
                && current.metadata().resource_version != expected.to_string()
            {
                return Err(StoreError::Conflict {
                    key: k,
                    current: 0,
                    expected,
                }
                .into());
            }
            return Ok(current);
        }
        let stored = self.meta.delete(&k, precondition).await?;
        let deleted: R = decode(&stored)?;
        deleted.after_delete(self).await;
        Ok(deleted)
    }

    /// Deletes every matching object, returning those deleted.
    pub async fn delete_collection<R: Stored>(
        &self,
        namespace: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<R>, ApiError> {
        let all: ObjectList<R> = self.list_all(namespace, list).await?;
        let mut deleted = Vec::with_capacity(all.items.len());
        for obj in all.items {
            let m = obj.metadata();
            match self.delete::<R>(&m.namespace, &m.name, opts).await {
                Ok(d) => deleted.push(d),
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }
}

/// The objects among `stored` that `opts`' selectors match, decoded. A stored object that
/// cannot be decoded is left out (and logged): one planted or damaged record must not hide
/// every other one.
pub fn matching<R: Stored>(
    stored: &[coredump_store::StoredObject],
    opts: &ListOptions,
) -> Result<Vec<R>, ApiError> {
    let mut items = Vec::with_capacity(stored.len());
    for stored in stored {
        let obj: R = match decode(stored) {
            Ok(obj) => obj,
            Err(e @ ApiError::Corrupt { .. }) => {
                tracing::error!(error = %e, "leaving a refused stored object out of a list");
                continue;
            }
            Err(e) => return Err(e),
        };
        if matches(&obj, opts) {
            items.push(obj);
        }
    }
    Ok(items)
}

/// Whether `obj` matches `opts`' label and field selectors.
pub fn matches<R: Resource>(obj: &R, opts: &ListOptions) -> bool {
    opts.labels.matches(&obj.metadata().labels) && opts.fields.matches(|f| obj.field(f))
}

/// A body naming another kind or group-version is a client error, not something to coerce.
fn check_type_meta<R: Resource>(obj: &R) -> Result<(), ApiError> {
    let (api_version, kind) = obj.type_meta();
    if !kind.is_empty() && kind != R::KIND {
        return Err(ApiError::bad_request(format!(
            "the object kind {kind:?} is not {:?}",
            R::KIND
        )));
    }
    if !api_version.is_empty() && api_version != coredump_api::API_VERSION {
        return Err(ApiError::bad_request(format!(
            "the object apiVersion {api_version:?} is not {:?}",
            coredump_api::API_VERSION
        )));
    }
    Ok(())
}

/// Bytes (as JSON) the `copy` operations of one JSON patch may copy in all: each `copy` of a
/// document into itself doubles it, so a 1 KiB patch of 22 copies took 14 s and ~1 GiB (found
/// while fuzzing `api_body`). Kubernetes bounds copies the same way (`AccumulatedCopySizeLimit`).
const MAX_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

/// The length of `value` encoded as JSON.
fn encoded_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// Applies `patch` to `current` (the object named `name`), without storing anything. Returns
/// the patched object, its `resourceVersion` taken from `current` when the patch cleared it,
/// and whether the patch pinned another `resourceVersion` (then a conflict is not retried).
/// Public so that the fuzz targets reach it without a store.
pub fn apply_patch<R: Stored>(
    current: &R,
    name: &str,
    patch: &Patch,
) -> Result<(R, bool), ApiError> {
    let mut doc = serde_json::to_value(current).map_err(|e| ApiError::Internal {
        message: format!("encoding {name}: {e}"),
    })?;
    let invalid_patch = |detail: String| ApiError::Invalid {
        kind: R::KIND.to_owned(),
        name: name.to_owned(),
        errors: vec![FieldError {
            field: String::new(),
            kind: FieldErrorKind::Invalid(String::new()),
            detail,
        }],
    };
    match patch {
        Patch::Merge(p) => json_patch::merge(&mut doc, p),
        Patch::Apply(_) => {
            return Err(ApiError::bad_request(
                "an apply patch is applied with Registry::apply, not merged",
            ));
        }
        Patch::Json(p) => {
            // One operation at a time, so that each `copy` is measured against the document as
            // it then is. A failed operation leaves `doc` half patched, but it is dropped.
            let mut copied = 0usize;
            for op in p.iter() {
                if let json_patch::PatchOperation::Copy(c) = op
                    && let Some(value) = doc.pointer(c.from.as_str())
                {
                    copied = copied.saturating_add(encoded_len(value));
                    if copied > MAX_PATCH_COPY_BYTES {
                        return Err(invalid_patch(format!(
                            "the JSON patch copies more than {MAX_PATCH_COPY_BYTES} bytes"
                        )));
                    }
                }
                json_patch::patch(&mut doc, std::slice::from_ref(op)).map_err(|e| {
                    invalid_patch(format!("the JSON patch could not be applied: {e}"))
                })?;
            }
        }
    }
    let pinned = doc["metadata"]["resourceVersion"] != current.metadata().resource_version.as_str();
    let mut patched: R = serde_json::from_value(doc).map_err(|e| {
        ApiError::bad_request(format!(
            "the patched object is not a valid {}: {e}",
            R::KIND
        ))
    })?;
    if patched.metadata().resource_version.is_empty() {
        patched
            .metadata_mut()
            .resource_version
            .clone_from(&current.metadata().resource_version);
    }
    Ok((patched, pinned))
}

#[cfg(test)]
mod tests {
    use coredump_api::CoredumpEndpoint;

    use super::*;

    fn endpoint() -> CoredumpEndpoint {
        serde_json::from_str(
            r#"{"apiVersion":"coredump.fujitsu.com/v1alpha1","kind":"CoredumpEndpoint",
            "metadata":{"name":"web-0","namespace":"default","resourceVersion":"9"},
            "spec":{"podUID":"u"}}"#,
        )
        .unwrap()
    }

    fn json_patch(ops: &str) -> Patch {
        Patch::Json(serde_json::from_str(ops).unwrap())
    }

    #[test]
    fn json_patches_apply_in_order_and_keep_the_resource_version() {
        let patch = json_patch(
            r#"[{"op":"add","path":"/metadata/labels","value":{"a":"b"}},
                {"op":"copy","from":"/metadata/labels/a","path":"/spec/podUID"},
                {"op":"remove","path":"/metadata/resourceVersion"}]"#,
        );
        let (patched, pinned) = apply_patch(&endpoint(), "web-0", &patch).unwrap();
        assert_eq!(patched.spec.pod_uid, "b");
        assert_eq!(patched.metadata.resource_version, "9");
        assert!(
            pinned,
            "a removed resourceVersion differs from the current one"
        );
    }

    #[test]
    fn a_json_patch_that_doubles_the_object_is_refused() {
        // Each copy of metadata into a new key of itself doubles it: 40 of them would need
        // terabytes. The copies stop at MAX_PATCH_COPY_BYTES.
        let ops: Vec<String> = (0..40)
            .map(|i| format!(r#"{{"op":"copy","from":"/metadata","path":"/metadata/k{i}"}}"#))
            .collect();
        let patch = json_patch(&format!("[{}]", ops.join(",")));
        let started = std::time::Instant::now();
        let err = apply_patch(&endpoint(), "web-0", &patch).unwrap_err();
        assert!(err.to_string().contains("copies more than"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}
