//! `kubectl coredump list` output: the same columns and cells the server gives
//! `kubectl get coredumps` (from `coredump_api::Resource` for `Coredump`), with `NAMESPACE` in
//! front for `-A`, laid out like kubectl's printer (upper-case headers, left-aligned columns
//! three spaces apart), oldest crash first and newest last, so the latest crash is the line
//! right above the prompt.

use coredump_api::time::parse_rfc3339;
use coredump_api::{Coredump, Resource};
use time::OffsetDateTime;

/// Gap between columns, as kubectl prints it.
const GAP: &str = "   ";

/// Sorts crashes oldest first by crash time (creation time when that is unparsable), then by
/// namespace and name so equal times still give a stable order.
pub fn sort_oldest_first(items: &mut [Coredump]) {
    let key = |c: &Coredump| {
        parse_rfc3339(&c.spec.crash_time)
            .or_else(|| {
                c.metadata
                    .creation_timestamp
                    .as_deref()
                    .and_then(parse_rfc3339)
            })
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    };
    items.sort_by(|a, b| {
        key(a)
            .cmp(&key(b))
            .then_with(|| a.metadata.namespace.cmp(&b.metadata.namespace))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// Renders `items` in the given order as a text table ending in a newline; `all_namespaces`
/// adds the `NAMESPACE` column. Ages are relative to `now`. No items gives the message kubectl
/// prints in that case, naming the namespace.
pub fn render(
    items: &[Coredump],
    all_namespaces: bool,
    namespace: &str,
    now: OffsetDateTime,
) -> String {
    if items.is_empty() {
        return if all_namespaces {
            "No coredumps found.\n".to_owned()
        } else {
            format!("No coredumps found in {namespace} namespace.\n")
        };
    }
    let mut header: Vec<String> = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE".to_owned());
    }
    header.extend(
        Coredump::columns()
            .iter()
            .map(|c| c.name.to_ascii_uppercase()),
    );
    let mut rows = vec![header];
    for item in items {
        let mut row = Vec::new();
        if all_namespaces {
            row.push(item.metadata.namespace.clone());
        }
        row.extend(item.cells(now).into_iter().map(|cell| match cell {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }));
        rows.push(row);
    }
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(GAP);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use coredump_api::{CoredumpSpec, CoredumpState, CoredumpStatus, ObjectMeta};

    fn crash(ns: &str, name: &str, minute: u32, size: u64, pod: Option<&str>) -> Coredump {
        Coredump {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: ns.into(),
                creation_timestamp: Some(format!("2026-01-01T10:{minute:02}:00Z")),
                ..Default::default()
            },
            spec: CoredumpSpec {
                pod_name: pod.map(Into::into),
                container_name: pod.map(|_| "app".into()),
                executable: "/usr/bin/crasher".into(),
                signal: 11,
                signal_name: "SIGSEGV".into(),
                crash_time: format!("2026-01-01T10:{minute:02}:00Z"),
                ..Default::default()
            },
            status: CoredumpStatus {
                state: if size == 0 {
                    CoredumpState::QuotaExceeded
                } else {
                    CoredumpState::Stored
                },
                core_size: size,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn now() -> OffsetDateTime {
        parse_rfc3339("2026-01-01T10:30:00Z").unwrap()
    }

    #[test]
    fn all_namespaces_table_is_aligned_sorted_and_human_sized() {
        let mut items = vec![
            crash("shop", "web-late", 25, 3 * 1024 * 1024 / 2, Some("web-0")),
            crash("host", "h-early", 5, 512, None),
            crash("shop", "quota", 20, 0, Some("db-0")),
        ];
        sort_oldest_first(&mut items);
        let text = render(&items, true, "ignored", now());
        let expected = "\
NAMESPACE   NAME       POD      CONTAINER   SIGNAL    EXECUTABLE         SIZE     STATE           SIGNATURE   AGE
host        h-early    <none>   <none>      SIGSEGV   /usr/bin/crasher   512B     Stored          <none>      25m
shop        quota      db-0     app         SIGSEGV   /usr/bin/crasher   0B       QuotaExceeded   <none>      10m
shop        web-late   web-0    app         SIGSEGV   /usr/bin/crasher   1.5MiB   Stored          <none>      5m
";
        assert_eq!(text, expected);
    }

    #[test]
    fn one_namespace_has_no_namespace_column_and_large_sizes_round() {
        let items = vec![crash("shop", "big", 29, 12 * 1024 * 1024 * 1024, Some("p"))];
        let text = render(&items, false, "shop", now());
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "NAME   POD   CONTAINER   SIGNAL    EXECUTABLE         SIZE    STATE    SIGNATURE   AGE"
        );
        assert_eq!(
            lines.next().unwrap(),
            "big    p     app         SIGSEGV   /usr/bin/crasher   12GiB   Stored   <none>      60s"
        );
        assert_eq!(lines.next(), None);
    }

    #[test]
    fn empty_lists_say_where_nothing_was_found() {
        assert_eq!(
            render(&[], false, "shop", now()),
            "No coredumps found in shop namespace.\n"
        );
        assert_eq!(render(&[], true, "x", now()), "No coredumps found.\n");
    }

    #[test]
    fn equal_times_sort_by_namespace_then_name() {
        let mut items = vec![
            crash("b", "z", 1, 1, None),
            crash("a", "y", 1, 1, None),
            crash("a", "x", 1, 1, None),
        ];
        sort_oldest_first(&mut items);
        let names: Vec<_> = items.iter().map(|c| c.metadata.name.as_str()).collect();
        assert_eq!(names, ["x", "y", "z"]);
    }
}
