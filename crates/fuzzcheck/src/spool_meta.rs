//! A spool entry's `meta.json`, as the ingest reads it, and what the ingest derives from it.

use coredump_api::validation;
use coredump_capture::CrashRecord;
use coredump_ingest::object::{build, place};

/// Decodes the input as a `meta.json`. A record that decodes survives a round trip, and the
/// `Coredump` the ingest makes of it has a valid name and valid label values (else the object
/// could never be created and the crash would stay in the spool).
pub fn spool_meta(data: &[u8]) {
    let Ok(record) = serde_json::from_slice::<CrashRecord>(data) else {
        return;
    };
    let json = serde_json::to_vec(&record).unwrap_or_else(|e| panic!("encoding {record:?}: {e}"));
    let back: CrashRecord =
        serde_json::from_slice(&json).unwrap_or_else(|e| panic!("decoding our own record: {e}"));
    assert_eq!(back, record, "the record changed in a round trip");
    assert_eq!(
        record.core_file_name().is_some(),
        record.encoding != coredump_capture::CoreEncoding::None
    );

    let placement = place(&record, None, "host");
    if let Err(e) = validation::dns1123_label(&placement.name) {
        panic!(
            "object name {:?} from id {:?}: {e}",
            placement.name, record.id
        );
    }
    let obj = build(
        &record,
        None,
        &placement,
        "node-1",
        Some(("blob".to_owned(), record.stored_size)),
        None,
    );
    for (k, v) in &obj.metadata.labels {
        if let Err(e) = validation::label_value(v) {
            panic!("label {k}={v:?}: {e}");
        }
    }
}
