//! `info` and `list --group`: what a crash record says, rendered for people. Pure functions of
//! the records (and the log text), so they are tested without a server.

use std::collections::BTreeMap;
use std::fmt::Write;

use coredump_api::Coredump;

/// Frames of the crashing thread shown by `info`.
const INFO_FRAMES: usize = 32;

/// `info NAME`: metadata, the crashing thread's backtrace, what limited the analysis, and the
/// container's last log lines when kept.
pub fn info(c: &Coredump, log: Option<&str>) -> String {
    let mut out = String::new();
    let s = &c.spec;
    let field = |out: &mut String, k: &str, v: &str| {
        if !v.is_empty() {
            let _ = writeln!(out, "{k:<12}{v}");
        }
    };
    field(&mut out, "Name:", &c.metadata.name);
    field(&mut out, "Namespace:", &c.metadata.namespace);
    field(&mut out, "Pod:", s.pod_name.as_deref().unwrap_or(""));
    field(
        &mut out,
        "Container:",
        s.container_name.as_deref().unwrap_or(""),
    );
    field(&mut out, "Image:", s.image.as_deref().unwrap_or(""));
    field(&mut out, "Node:", &s.node_name);
    field(&mut out, "Time:", &s.crash_time);
    let signal = match &s.fault_address {
        Some(a) => format!("{} ({}) at {a}", s.signal_name, s.signal),
        None => format!("{} ({})", s.signal_name, s.signal),
    };
    field(&mut out, "Signal:", &signal);
    field(&mut out, "Executable:", &s.executable);
    field(&mut out, "Command:", &s.command_line.join(" "));
    field(
        &mut out,
        "Process:",
        &format!("pid {} tid {}", s.pid, s.tid),
    );
    let state = match c.status.state {
        coredump_api::CoredumpState::Stored | coredump_api::CoredumpState::Truncated => format!(
            "{} ({} bytes, sha256 {})",
            c.status.state.as_str(),
            c.status.core_size,
            c.status.sha256
        ),
        other => format!("{} {}", other.as_str(), c.status.message),
    };
    field(&mut out, "Core:", state.trim());
    field(&mut out, "Signature:", &c.status.signature);
    match &c.status.analysis {
        None => out.push_str("\nNo backtrace: the core was not analysed.\n"),
        Some(a) => {
            for t in a.threads.iter().take(1) {
                let _ = writeln!(
                    out,
                    "\nBacktrace of thread {}{}:",
                    t.tid,
                    if t.crashed { " (crashed)" } else { "" }
                );
                for (i, f) in t.frames.iter().take(INFO_FRAMES).enumerate() {
                    let _ = writeln!(out, "  #{i:<3} {}", f.describe());
                }
                if t.frames.len() > INFO_FRAMES || t.truncated {
                    out.push_str("  ... (more frames)\n");
                }
                if let Some(why) = &t.stopped {
                    let _ = writeln!(out, "  ({why})");
                }
            }
            let others = a.threads.len().saturating_sub(1) + a.omitted_threads as usize;
            if others > 0 {
                let _ = writeln!(
                    out,
                    "Other threads: {others} (kubectl coredump get -o yaml)"
                );
            }
            if !a.problems.is_empty() {
                out.push_str("\nAnalysis limits:\n");
                for p in &a.problems {
                    let _ = writeln!(out, "  - {p}");
                }
            }
        }
    }
    match log {
        Some(text) if !text.is_empty() => {
            out.push_str("\nLast log lines of the container:\n");
            for line in text.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        _ => {}
    }
    out
}

/// One signature's crashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The signature (`<none>` for records without one).
    pub signature: String,
    /// How many crashes.
    pub count: usize,
    /// Namespace of the newest crash.
    pub namespace: String,
    /// Name of the newest crash.
    pub newest: String,
    /// Crash time of the oldest and newest.
    pub first: String,
    /// See `first`.
    pub last: String,
    /// The first frame that is not crash machinery, described.
    pub top: String,
}

/// Groups records by signature, the largest group first.
pub fn groups(items: &[Coredump]) -> Vec<Group> {
    let mut by: BTreeMap<String, Vec<&Coredump>> = BTreeMap::new();
    for c in items {
        let key = if c.status.signature.is_empty() {
            "<none>".to_owned()
        } else {
            c.status.signature.clone()
        };
        by.entry(key).or_default().push(c);
    }
    let mut out: Vec<Group> = by
        .into_iter()
        .map(|(signature, mut cs)| {
            cs.sort_by(|a, b| a.spec.crash_time.cmp(&b.spec.crash_time));
            let newest = cs[cs.len() - 1];
            Group {
                signature,
                count: cs.len(),
                namespace: newest.metadata.namespace.clone(),
                newest: newest.metadata.name.clone(),
                first: cs[0].spec.crash_time.clone(),
                last: newest.spec.crash_time.clone(),
                top: top_frame(newest),
            }
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.signature.cmp(&b.signature)));
    out
}

fn top_frame(c: &Coredump) -> String {
    let Some(t) = c.status.analysis.as_ref().and_then(|a| a.threads.first()) else {
        return "<no backtrace>".to_owned();
    };
    t.frames
        .iter()
        .find(|f| {
            !f.function
                .as_deref()
                .is_some_and(coredump_api::analysis::is_crash_machinery)
                && f.function.is_some()
        })
        .or(t.frames.first())
        .map(|f| f.describe())
        .unwrap_or_else(|| "<no frames>".to_owned())
}

/// The `list --group` table.
pub fn render_groups(groups: &[Group], all_namespaces: bool) -> String {
    let mut rows: Vec<Vec<String>> = vec![];
    let mut header = vec!["SIGNATURE", "COUNT", "FIRST", "LAST", "NEWEST", "TOP FRAME"];
    if all_namespaces {
        header.insert(4, "NAMESPACE");
    }
    rows.push(header.iter().map(|s| (*s).to_owned()).collect());
    for g in groups {
        let mut row = vec![
            g.signature.clone(),
            g.count.to_string(),
            g.first.clone(),
            g.last.clone(),
            g.newest.clone(),
            g.top.clone(),
        ];
        if all_namespaces {
            row.insert(4, g.namespace.clone());
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let last = r.len() - 1;
        for (i, cell) in r.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}   ", w = widths[i]);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use coredump_api::{Analysis, Frame, ThreadBacktrace};

    fn crash(name: &str, sig: &str, time: &str, top: &str) -> Coredump {
        let mut c = Coredump::default();
        c.metadata.name = name.into();
        c.metadata.namespace = "ns".into();
        c.spec.crash_time = time.into();
        c.spec.signal = 6;
        c.spec.signal_name = "SIGABRT".into();
        c.status.signature = sig.into();
        c.status.analysis = Some(Analysis {
            threads: vec![ThreadBacktrace {
                tid: 9,
                crashed: true,
                frames: vec![
                    Frame {
                        pc: "0x1".into(),
                        function: Some("abort".into()),
                        ..Frame::default()
                    },
                    Frame {
                        pc: "0x2".into(),
                        function: Some(top.into()),
                        file: Some("a.c".into()),
                        line: Some(3),
                        ..Frame::default()
                    },
                ],
                ..ThreadBacktrace::default()
            }],
            problems: vec!["binary x not available".into()],
            ..Analysis::default()
        });
        c
    }

    #[test]
    fn groups_count_and_order() {
        let items = [
            crash("c1", "aaaa", "2024-01-01T00:00:01Z", "f"),
            crash("c2", "bbbb", "2024-01-01T00:00:02Z", "g"),
            crash("c3", "aaaa", "2024-01-01T00:00:03Z", "f"),
        ];
        let g = groups(&items);
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].signature.as_str(), g[0].count), ("aaaa", 2));
        assert_eq!(g[0].newest, "c3");
        assert_eq!(g[0].first, "2024-01-01T00:00:01Z");
        assert_eq!(g[0].top, "f (a.c:3)", "abort is machinery");
        let table = render_groups(&g, false);
        let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header[..3], ["SIGNATURE", "COUNT", "FIRST"]);
        assert!(table.lines().nth(1).unwrap().starts_with("aaaa "));
    }

    #[test]
    fn info_shows_backtrace_problems_and_log() {
        let c = crash("c1", "aaaa", "t", "parse");
        let text = info(&c, Some("line one\nline two\n"));
        assert!(text.contains("Signature:  aaaa"), "{text}");
        assert!(text.contains("#1   parse (a.c:3)"), "{text}");
        assert!(text.contains("  - binary x not available"), "{text}");
        assert!(text.contains("  line two"), "{text}");
        let bare = info(&Coredump::default(), None);
        assert!(bare.contains("No backtrace"), "{bare}");
    }
}
