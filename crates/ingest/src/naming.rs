//! Names derived from a crash record: the `Coredump` object name and the blob file names.
//! Deterministic, so a retried ingest lands on the same object and files.

use coredump_capture::CrashRecord;

/// Longest object name we generate (fits a label value and a DNS label).
const MAX_NAME: usize = 63;

/// Longest stamp kept from the spool id, so that the pid and some of the process name fit.
const MAX_STAMP: usize = 20;

/// `Coredump` name: `<comm>-<pid>-<stamp>`, lowercased to DNS-1123 label characters.
/// The stamp is the spool id's unique suffix, so pid reuse cannot collide.
pub fn coredump_name(record: &CrashRecord) -> String {
    let stamp = record.id.rsplit('-').next().unwrap_or("0");
    // The spool writes 8 hex digits; a record from elsewhere may end in anything, and the
    // name must still end with an alphanumeric and fit MAX_NAME.
    let mut stamp = sanitize(stamp);
    stamp.truncate(MAX_STAMP);
    let stamp = stamp.trim_end_matches('-');
    let suffix = if stamp.is_empty() {
        format!("-{}", record.pid)
    } else {
        format!("-{}-{stamp}", record.pid)
    };
    let mut base = sanitize(&record.comm);
    if base.is_empty() {
        base = "process".into();
    }
    base.truncate(MAX_NAME.saturating_sub(suffix.len()));
    let base = base.trim_end_matches('-');
    format!("{base}{suffix}")
}

/// Lowercase alphanumerics and `-`, other characters become `-`, no leading `-`.
pub fn sanitize(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() { c } else { '-' }
        })
        .collect();
    mapped.trim_start_matches('-').to_string()
}

/// File name of the stored core for an object name (the API's rule, which validation enforces).
pub fn core_file(name: &str) -> String {
    coredump_api::coredump::core_file_name(name)
}

/// File name of the container's log tail stored beside the core.
pub fn log_file(name: &str) -> String {
    format!("{name}.log")
}

/// File name of the JSON record stored beside the core.
pub fn record_file(name: &str) -> String {
    format!("{name}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(comm: &str, pid: u32, id: &str) -> CrashRecord {
        let mut r: CrashRecord =
            serde_json::from_str(include_str!("../tests/data/meta.json")).unwrap();
        r.comm = comm.into();
        r.pid = pid;
        r.id = id.into();
        r
    }

    #[test]
    fn names_are_dns_labels_and_deterministic() {
        let r = record("My_App.bin", 42, "1700000000-42-0a1b2c3d");
        assert_eq!(coredump_name(&r), "my-app-bin-42-0a1b2c3d");
        let long = record(&"x".repeat(100), 4_194_304, "1-4194304-ffffffff");
        let name = coredump_name(&long);
        assert!(name.len() <= 63, "{name}");
        assert!(name.ends_with("-4194304-ffffffff"));
        assert_eq!(
            coredump_name(&record("", 1, "1-1-00000001")),
            "process-1-00000001"
        );
        assert_eq!(
            coredump_name(&record("---", 1, "1-1-00000001")),
            "process-1-00000001"
        );
    }

    #[test]
    fn ids_not_written_by_the_spool_still_give_dns_labels() {
        // Found by the spool_meta fuzz target: a trailing symbol became a trailing '-'.
        let r = record("crasher", 4242, "1700000000-4242-0a1b2c3d?");
        assert_eq!(coredump_name(&r), "crasher-4242-0a1b2c3d");
        assert_eq!(coredump_name(&record("a", 7, "x-")), "a-7");
        let long_stamp = record("crasher", 4242, &format!("1-{}", "f".repeat(200)));
        let name = coredump_name(&long_stamp);
        assert_eq!(name, format!("crasher-4242-{}", "f".repeat(MAX_STAMP)));
        for name in [coredump_name(&r), name] {
            coredump_api::validation::dns1123_label(&name).unwrap();
        }
    }
}
