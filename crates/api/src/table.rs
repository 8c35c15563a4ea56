//! `meta.k8s.io/v1` `Table`: what `kubectl get` asks for, so the server decides the columns.
//! The column definitions and cell rendering of our two kinds live with the kinds
//! ([`crate::Resource`]); this module has the wire shapes and the shared formatting.

use serde::{Deserialize, Serialize};

use crate::meta::{ListMeta, META_API_VERSION};

/// One column (`TableColumnDefinition`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableColumnDefinition {
    /// Header, e.g. `Name`.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean`.
    #[serde(rename = "type")]
    pub column_type: String,
    /// OpenAPI format hint (`name` marks the name column, `date-time`, ...).
    #[serde(default)]
    pub format: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// 0 = always shown, higher = only with `-o wide`.
    #[serde(default)]
    pub priority: i32,
}

impl TableColumnDefinition {
    /// A column.
    pub fn new(
        name: &str,
        column_type: &str,
        format: &str,
        description: &str,
        priority: i32,
    ) -> Self {
        Self {
            name: name.to_owned(),
            column_type: column_type.to_owned(),
            format: format.to_owned(),
            description: description.to_owned(),
            priority,
        }
    }
}

/// One row (`TableRow`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRow {
    /// One cell per column.
    pub cells: Vec<serde_json::Value>,
    /// The object (`PartialObjectMetadata` by default, the full object with
    /// `includeObject=Object`, absent with `includeObject=None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<serde_json::Value>,
}

/// A table of objects. `Row` is [`TableRow`] for a table read from the wire; a server may
/// write rows of its own type that serialize the same way (straight from its objects, with no
/// `serde_json::Value` in between).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Table<Row = TableRow> {
    /// Always `meta.k8s.io/v1`.
    pub api_version: String,
    /// Always `Table`.
    pub kind: String,
    /// The list's metadata (resourceVersion, continue).
    pub metadata: ListMeta,
    /// Columns; may be empty in watch events after the first.
    pub column_definitions: Vec<TableColumnDefinition>,
    /// Rows.
    pub rows: Vec<Row>,
}

impl<Row> Table<Row> {
    /// A table with the given columns and rows.
    pub fn new(
        metadata: ListMeta,
        column_definitions: Vec<TableColumnDefinition>,
        rows: Vec<Row>,
    ) -> Self {
        Self {
            api_version: META_API_VERSION.to_owned(),
            kind: "Table".to_owned(),
            metadata,
            column_definitions,
            rows,
        }
    }
}

/// What a row carries as `object` (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the query parameter value (`None`, `Metadata`, `Object`); `None` if unknown.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "None" => Some(Self::None),
            "Metadata" | "" => Some(Self::Metadata),
            "Object" => Some(Self::Object),
            _ => None,
        }
    }
}

/// Human-readable byte size with binary units: `512B`, `1.5KiB`, `12MiB`, `1.0GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1023), "1023B");
        assert_eq!(human_bytes(1024), "1.0KiB");
        assert_eq!(human_bytes(1536), "1.5KiB");
        assert_eq!(human_bytes(12 * 1024 * 1024), "12MiB");
        assert_eq!(human_bytes(1 << 30), "1.0GiB");
        assert_eq!(human_bytes(u64::MAX), "16EiB");
    }

    #[test]
    fn include_object() {
        assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
        assert_eq!(IncludeObject::parse("None"), Some(IncludeObject::None));
        assert_eq!(
            IncludeObject::parse("Metadata"),
            Some(IncludeObject::Metadata)
        );
        assert_eq!(IncludeObject::parse("All"), None);
    }

    #[test]
    fn table_wire_shape() {
        let t = Table::new(
            ListMeta {
                resource_version: "3".into(),
                ..Default::default()
            },
            vec![TableColumnDefinition::new("Name", "string", "name", "d", 0)],
            vec![TableRow {
                cells: vec![serde_json::json!("a")],
                object: None,
            }],
        );
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            serde_json::json!({
                "apiVersion": "meta.k8s.io/v1", "kind": "Table", "metadata": {"resourceVersion": "3"},
                "columnDefinitions": [{"name": "Name", "type": "string", "format": "name", "description": "d", "priority": 0}],
                "rows": [{"cells": ["a"]}]
            })
        );
    }
}
