//! Turning objects and lists into response bodies in the negotiated representation.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coredump_api::meta::META_API_VERSION;
use coredump_api::{
    API_VERSION, IncludeObject, List, ListMeta, ObjectMeta, PartialObjectMetadata, Resource, Table,
};
use serde::Serialize;
use time::OffsetDateTime;

use super::negotiate::Representation;
use crate::error::ApiError;
use crate::registry::ObjectList;

/// A JSON response with the given status and content type.
pub fn json<T: Serialize>(
    code: StatusCode,
    body: &T,
    content_type: &'static str,
) -> Result<Response, ApiError> {
    let bytes = encode(body)?;
    Ok((
        code,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        bytes,
    )
        .into_response())
}

fn table_content_type(api_version: &str) -> &'static str {
    if api_version.ends_with("v1beta1") {
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
    } else {
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    }
}

/// A table of `items`; `columns` false leaves the column definitions out (watch events after
/// the first).
pub fn table<'a, R: Resource>(
    api_version: &str,
    items: &'a [R],
    metadata: ListMeta,
    include: IncludeObject,
    columns: bool,
) -> Table<Row<'a, R>> {
    let now = OffsetDateTime::now_utc();
    let rows = items
        .iter()
        .map(|item| Row::new(item, include, now))
        .collect();
    let mut t = Table::new(
        metadata,
        if columns { R::columns() } else { Vec::new() },
        rows,
    );
    api_version.clone_into(&mut t.api_version);
    t
}

/// One object's row of a table (the wire's `TableRow`), serialized straight from the object:
/// building a `serde_json::Value` of every row's object first cost a fifth of an unchunked
/// `Table` list's CPU.
#[derive(Serialize)]
pub struct Row<'a, R> {
    cells: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<RowObject<'a, R>>,
}

/// What a [`Row`] carries as `object` (`?includeObject=`).
#[derive(Serialize)]
#[serde(untagged)]
enum RowObject<'a, R> {
    /// `PartialObjectMetadata`, the default.
    Metadata(MetadataOf<'a>),
    /// The whole object.
    Object(&'a R),
}

/// `PartialObjectMetadata` of a borrowed object: the same JSON, without copying the metadata.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetadataOf<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: &'a ObjectMeta,
}

impl<'a, R: Resource> Row<'a, R> {
    /// `item`'s row, its age counted to `now`.
    fn new(item: &'a R, include: IncludeObject, now: OffsetDateTime) -> Self {
        let object = match include {
            IncludeObject::None => None,
            IncludeObject::Metadata => Some(RowObject::Metadata(MetadataOf {
                api_version: META_API_VERSION,
                kind: "PartialObjectMetadata",
                metadata: item.metadata(),
            })),
            IncludeObject::Object => Some(RowObject::Object(item)),
        };
        Row {
            cells: item.cells(now),
            object,
        }
    }
}

/// Serializes to a JSON value.
pub fn to_value<T: Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal {
        message: format!("encoding object: {e}"),
    })
}

/// One object in the negotiated representation.
pub fn object<R: Resource>(
    repr: Representation,
    obj: &R,
    include: IncludeObject,
    code: StatusCode,
) -> Result<Response, ApiError> {
    match repr {
        Representation::Object => json(code, obj, "application/json"),
        Representation::Table(v) => {
            let meta = ListMeta {
                resource_version: obj.metadata().resource_version.clone(),
                ..Default::default()
            };
            json(
                code,
                &table(v, std::slice::from_ref(obj), meta, include, true),
                table_content_type(v),
            )
        }
        Representation::PartialMetadata => json(
            code,
            &PartialObjectMetadata::new(obj.metadata().clone()),
            "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
        ),
    }
}

/// The value of one object in the negotiated representation (for watch events).
pub fn object_value<R: Resource>(
    repr: Representation,
    obj: &R,
    include: IncludeObject,
    columns: bool,
) -> Result<serde_json::Value, ApiError> {
    match repr {
        Representation::Object => to_value(obj),
        Representation::Table(v) => {
            let meta = ListMeta {
                resource_version: obj.metadata().resource_version.clone(),
                ..Default::default()
            };
            to_value(&table(v, std::slice::from_ref(obj), meta, include, columns))
        }
        Representation::PartialMetadata => {
            to_value(&PartialObjectMetadata::new(obj.metadata().clone()))
        }
    }
}

/// A page of objects in the negotiated representation.
pub fn list<R: Resource>(
    repr: Representation,
    page: ObjectList<R>,
    include: IncludeObject,
) -> Result<Response, ApiError> {
    let (body, content_type) = list_body(repr, page, include)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response())
}

/// The body of [`list`] and its content type. Every representation ends with its array of
/// items (`items` or `rows`), so a body of no items ends in `[]}`: the unchunked list
/// ([`super::unchunked`]) writes its items between the two.
pub fn list_body<R: Resource>(
    repr: Representation,
    page: ObjectList<R>,
    include: IncludeObject,
) -> Result<(Vec<u8>, &'static str), ApiError> {
    let metadata = ListMeta {
        resource_version: page.resource_version.to_string(),
        continue_token: page.continue_token,
        remaining_item_count: None,
    };
    match repr {
        Representation::Object => Ok((
            encode(&List {
                api_version: API_VERSION.to_owned(),
                kind: R::list_kind(),
                metadata,
                items: page.items,
            })?,
            "application/json",
        )),
        Representation::Table(v) => Ok((
            encode(&table(v, &page.items, metadata, include, true))?,
            table_content_type(v),
        )),
        Representation::PartialMetadata => {
            let items = page
                .items
                .iter()
                .map(|i| PartialObjectMetadata::new(i.metadata().clone()))
                .collect();
            Ok((
                encode(&List {
                    api_version: META_API_VERSION.to_owned(),
                    kind: "PartialObjectMetadataList".to_owned(),
                    metadata,
                    items,
                })?,
                "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
            ))
        }
    }
}

/// Appends the JSON of `item` as an element of [`list_body`]'s array in `repr` (the object, its
/// metadata, or its table row with its age counted to `now`).
pub fn append_list_item<R: Resource>(
    repr: Representation,
    item: &R,
    include: IncludeObject,
    now: OffsetDateTime,
    out: &mut Vec<u8>,
) -> Result<(), ApiError> {
    let written = match repr {
        Representation::Object => serde_json::to_writer(&mut *out, item),
        Representation::Table(_) => serde_json::to_writer(&mut *out, &Row::new(item, include, now)),
        Representation::PartialMetadata => serde_json::to_writer(
            &mut *out,
            &PartialObjectMetadata::new(item.metadata().clone()),
        ),
    };
    written.map_err(|e| ApiError::Internal {
        message: format!("encoding object: {e}"),
    })
}

fn encode<T: Serialize>(body: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(body).map_err(|e| ApiError::Internal {
        message: format!("encoding response: {e}"),
    })
}
