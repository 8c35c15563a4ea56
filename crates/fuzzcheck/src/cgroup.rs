//! `/proc/<pid>/cgroup` text, as the crash handler captures it, to a pod identity.

use coredump_cgroup::{ContainerId, parse_proc_cgroup};

/// Parses the input as a cgroup file. An identity found has a canonical pod UID and a
/// container id that survives its status form; the order of the lines does not matter.
pub fn cgroup(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let found = parse_proc_cgroup(&text);
    if let Some(id) = &found {
        assert!(canonical_pod_uid(&id.pod_uid), "pod uid {:?}", id.pod_uid);
        if let Some(c) = &id.container {
            let status_form = c.to_string();
            assert_eq!(
                ContainerId::parse_status_form(&status_form).as_ref(),
                Some(c),
                "container id {status_form:?} does not parse back"
            );
        }
    }
    let reversed: String = text.lines().rev().map(|l| format!("{l}\n")).collect();
    assert_eq!(
        parse_proc_cgroup(&reversed),
        found,
        "the verdict depends on the order of the lines"
    );
}

/// A lowercase UUID with dashes, or the 32 lowercase hex digits of a static pod's hash.
fn canonical_pod_uid(uid: &str) -> bool {
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    match uid.len() {
        32 => uid.bytes().all(hex),
        36 => uid.bytes().enumerate().all(|(i, b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                hex(b)
            }
        }),
        _ => false,
    }
}
