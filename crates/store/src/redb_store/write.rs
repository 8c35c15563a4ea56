//! Writes of the embedded store: each one a single redb write transaction that checks the
//! precondition, bumps the persisted revision, changes the object, appends the history record and
//! prunes history beyond the window, so a crash at any point leaves all of it or none of it.

use std::sync::Arc;

use bytes::Bytes;
use redb::{ReadableTable, Table};

use super::Inner;
use super::tables::{
    HISTORY, META, META_COMPACT, META_REVISION, OBJECTS, Record, RecordTuple, db_err, read_meta,
};
use crate::StoreError;
use crate::key;
use crate::metadata::{EventType, ObjectKey, Precondition, StoredObject, WatchEvent};

/// One requested change.
pub(super) enum Change {
    /// Create; the key must be absent.
    Create(Bytes),
    /// Replace; the key must exist and match the precondition.
    Update(Bytes, Precondition),
    /// Delete; the key must exist and match the precondition.
    Delete(Precondition),
}

/// Applies `change` to `key` and publishes the event. Returns the committed event (its object has
/// the new revision; for a deletion, the last value).
pub(super) fn apply(
    inner: &Inner,
    key: &ObjectKey,
    change: Change,
) -> Result<WatchEvent, StoreError> {
    key::validate(key)?;
    let encoded = key::encode(key);
    // redb serializes writers anyway; holding our own lock across commit *and* broadcast keeps
    // the broadcast in revision order, which watchers rely on to detect gaps.
    let _guard = inner.write_lock.lock().unwrap_or_else(|p| p.into_inner());
    let txn = inner.db.begin_write().map_err(db_err("begin write"))?;
    let event = {
        let mut objects = txn.open_table(OBJECTS).map_err(db_err("open objects"))?;
        let mut history = txn.open_table(HISTORY).map_err(db_err("open history"))?;
        let mut meta = txn.open_table(META).map_err(db_err("open meta"))?;
        let existing = objects
            .get(encoded.as_str())
            .map_err(db_err("read object"))?
            .map(|g| {
                let (rev, value) = g.value();
                (rev, value.to_vec())
            });
        let precondition = match &change {
            Change::Create(_) => Precondition::None,
            Change::Update(_, p) | Change::Delete(p) => *p,
        };
        match (&change, &existing) {
            (Change::Create(_), Some(_)) => return Err(StoreError::AlreadyExists(key.clone())),
            (Change::Update(..) | Change::Delete(_), None) => {
                return Err(StoreError::NotFound(key.clone()));
            }
            _ => {}
        }
        if let (Precondition::Revision(expected), Some((current, _))) = (precondition, &existing)
            && *current != expected
        {
            return Err(StoreError::Conflict {
                key: key.clone(),
                current: *current,
                expected,
            });
        }
        let revision = read_meta(&meta, META_REVISION)? + 1;
        let (kind, new_value) = match change {
            Change::Create(v) => (EventType::Added, Some(v)),
            Change::Update(v, _) => (EventType::Modified, Some(v)),
            Change::Delete(_) => (EventType::Deleted, None),
        };
        match &new_value {
            Some(v) => {
                objects
                    .insert(encoded.as_str(), (revision, v.as_ref()))
                    .map_err(db_err("write object"))?;
            }
            None => {
                objects
                    .remove(encoded.as_str())
                    .map_err(db_err("remove object"))?;
            }
        }
        let (prev_rev, prev_value) = existing.clone().unwrap_or((0, Vec::new()));
        history
            .insert(
                revision,
                (
                    Record::kind_byte(kind),
                    encoded.as_str(),
                    new_value.as_deref().unwrap_or(&[]),
                    prev_rev,
                    prev_value.as_slice(),
                ),
            )
            .map_err(db_err("append history"))?;
        meta.insert(META_REVISION, revision)
            .map_err(db_err("write revision"))?;
        if inner.options.history_window > 0 && revision >= inner.options.history_window {
            let keep_from = revision - inner.options.history_window + 1;
            discard_history_before(&mut history, &mut meta, keep_from)?;
        }
        WatchEvent {
            event_type: kind,
            object: StoredObject {
                key: key.clone(),
                revision,
                value: new_value.unwrap_or_else(|| Bytes::from(prev_value)),
            },
        }
    };
    txn.commit().map_err(db_err("commit"))?;
    // No receiver is fine: nobody watches.
    let _ = inner.events.send(Arc::new(event.clone()));
    Ok(event)
}

/// Discards history records below `revision` and records the new compaction point, unless an
/// earlier compaction already went at least that far.
pub(super) fn discard_history_before(
    history: &mut Table<u64, RecordTuple>,
    meta: &mut Table<&str, u64>,
    revision: u64,
) -> Result<(), StoreError> {
    if read_meta(meta, META_COMPACT)? >= revision {
        return Ok(());
    }
    loop {
        let first = history
            .first()
            .map_err(db_err("read history"))?
            .map(|(k, _)| k.value());
        match first {
            Some(rev) if rev < revision => {
                history.remove(rev).map_err(db_err("prune history"))?;
            }
            _ => break,
        }
    }
    meta.insert(META_COMPACT, revision)
        .map_err(db_err("write compaction point"))?;
    Ok(())
}

/// Explicit compaction (see [`crate::MetadataStore::compact`]).
pub(super) fn compact(inner: &Inner, revision: u64) -> Result<(), StoreError> {
    let _guard = inner.write_lock.lock().unwrap_or_else(|p| p.into_inner());
    let txn = inner.db.begin_write().map_err(db_err("begin write"))?;
    {
        let mut history = txn.open_table(HISTORY).map_err(db_err("open history"))?;
        let mut meta = txn.open_table(META).map_err(db_err("open meta"))?;
        let current = read_meta(&meta, META_REVISION)?;
        if revision > current {
            return Err(StoreError::Invalid {
                what: "compaction revision (beyond the current revision)",
                value: format!("{revision} > {current}"),
            });
        }
        discard_history_before(&mut history, &mut meta, revision)?;
    }
    txn.commit().map_err(db_err("commit"))
}
