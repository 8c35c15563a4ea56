//! The on-disk layout of the embedded store, in one place: three redb tables and the encoding of
//! history records. Changing anything here changes the file format.
//!
//! * `objects`: encoded key (`<resource>/<namespace>/<name>`) → (revision, value).
//! * `history`: revision → the change made at that revision, with the object's state before it,
//!   so a list can be answered as of an older revision (snapshot pagination) and a `Deleted`
//!   event carries the last value.
//! * `meta`: `revision` (last committed) and `compact_revision` (history before it is gone).

use bytes::Bytes;
use redb::{ReadableTable, TableDefinition};

use crate::StoreError;
use crate::key;
use crate::metadata::{EventType, StoredObject, WatchEvent};

/// Live objects.
pub(super) const OBJECTS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("objects");

/// A history record on disk: (kind, encoded key, new value, previous revision or 0, previous
/// value).
pub(super) type RecordTuple<'a> = (u8, &'a str, &'a [u8], u64, &'a [u8]);

/// One record per revision.
pub(super) const HISTORY: TableDefinition<u64, RecordTuple> = TableDefinition::new("history");

/// Counters.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// `meta` key of the last committed revision.
pub(super) const META_REVISION: &str = "revision";
/// `meta` key of the compaction point: history records below it were discarded.
pub(super) const META_COMPACT: &str = "compact_revision";

/// Maps any redb error to [`StoreError::Backend`] with what we were doing.
pub(super) fn db_err<E: Into<redb::Error>>(
    operation: &'static str,
) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::backend(format!("redb {operation}"), e.into())
}

/// Reads a counter from `meta` (0 if never written).
pub(super) fn read_meta(
    table: &impl ReadableTable<&'static str, u64>,
    name: &str,
) -> Result<u64, StoreError> {
    Ok(table
        .get(name)
        .map_err(db_err("read meta"))?
        .map(|g| g.value())
        .unwrap_or(0))
}

/// A decoded history record.
pub(super) struct Record {
    /// What happened.
    pub kind: EventType,
    /// Encoded key.
    pub key: String,
    /// Value after the change (empty for deletions).
    pub value: Vec<u8>,
    /// The object before the change: (revision, value), `None` if it did not exist.
    pub prev: Option<(u64, Vec<u8>)>,
}

impl Record {
    /// Kind byte stored on disk.
    pub fn kind_byte(kind: EventType) -> u8 {
        match kind {
            EventType::Added => 0,
            EventType::Modified => 1,
            EventType::Deleted => 2,
        }
    }

    /// Decodes the stored tuple; a record this version cannot read is a backend error.
    pub fn decode(
        revision: u64,
        (kind, key, value, prev_rev, prev_value): RecordTuple<'_>,
    ) -> Result<Self, StoreError> {
        let kind = match kind {
            0 => EventType::Added,
            1 => EventType::Modified,
            2 => EventType::Deleted,
            other => {
                return Err(StoreError::backend(
                    format!("decode history record at revision {revision}"),
                    format!("unknown event kind {other}"),
                ));
            }
        };
        Ok(Self {
            kind,
            key: key.to_owned(),
            value: value.to_vec(),
            prev: (prev_rev != 0).then(|| (prev_rev, prev_value.to_vec())),
        })
    }

    /// The watch event for this record at `revision`: deletions carry the last value.
    pub fn into_event(self, revision: u64) -> Result<WatchEvent, StoreError> {
        let key = key::decode(&self.key).ok_or_else(|| {
            StoreError::backend(
                format!("decode history record at revision {revision}"),
                format!("malformed key {:?}", self.key),
            )
        })?;
        let value = match self.kind {
            EventType::Deleted => self.prev.map(|(_, v)| v).unwrap_or_default(),
            EventType::Added | EventType::Modified => self.value,
        };
        Ok(WatchEvent {
            event_type: self.kind,
            object: StoredObject {
                key,
                revision,
                value: Bytes::from(value),
            },
        })
    }
}
