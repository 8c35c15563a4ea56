//! Crash-loop protection on the crash path: one tenant's pod that crashes in a loop must not
//! fill the node's disk, the spool, the metadata store or the Event stream, nor delay anyone
//! else's crash. Decided here, before a single core byte is written:
//!
//! * **opt-out**: the agent writes what it knows of each pod on its node to
//!   `<dir>/pods/<pod-uid>.json` ([`PodPolicy`]): its namespace, whether it opted out of
//!   capture, and how many bytes its namespace may still store (the `NS_DISK_QUOTA` left). An
//!   opted-out pod's core is never written;
//! * **rate**: a token bucket per pod and one per namespace ([`Rate`]: a burst, then so many per
//!   minute). A crash over either is *suppressed*: no spool entry, no record of its own, but it
//!   is counted in the pod's state file, and the agent later publishes one `RateLimited` record
//!   per pod standing for all of them ([`Limiter::publish_suppressed`]);
//! * **bytes**: a byte bucket per pod (`pod_bytes_per_hour`, refilled continuously) caps the
//!   core *while it is captured* (the prefix is kept, `Truncated`), instead of after it was
//!   read and compressed. The namespace's disk quota is not applied here but by the ingest,
//!   which alone knows the namespace's usage for sure: a quota applied here from the agent's
//!   last published usage made the same crash `Truncated` or `QuotaExceeded` by timing.
//!
//! State lives in small flocked files under `<dir>/state/`, so concurrent handler processes
//! and the socket server agree; a damaged state file starts over with full buckets (it only
//! ever costs one burst). Pods without a policy file (the agent has not seen them yet) get the
//! per-pod limits and no namespace ones.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use coredump_api::CoredumpReason;
use serde::{Deserialize, Serialize};

use crate::admission::Refusal;

use crate::record::{CaptureState, CoreEncoding, CrashRecord};
use crate::spool::{Spool, create_private_dir_all};
use crate::{CaptureError, sys};

/// A token bucket: `burst` crashes at once, then `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    /// Bucket size.
    pub burst: u32,
    /// Refill per minute.
    pub per_minute: u32,
}

/// The limits the agent configures (`handler.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashLimits {
    /// Directory of the pod policies (`pods/`) and the bucket state (`state/`).
    pub dir: PathBuf,
    /// Crashes kept per pod.
    pub pod: Rate,
    /// Crashes kept per namespace (for pods whose namespace the agent told).
    pub namespace: Rate,
    /// Core bytes one pod may keep per hour (a bucket of that size, refilled continuously);
    /// 0 = no byte limit.
    pub pod_bytes_per_hour: u64,
}

/// What the agent tells the crash path about one pod (`pods/<pod-uid>.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodPolicy {
    /// The pod's namespace (selects the namespace bucket).
    pub namespace: String,
    /// Why the pod's cores are not wanted (its or its namespace's opt-out), if they are not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opted_out: Option<String>,
}

/// The crash path's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Capture, keeping at most this many bytes; `charge` is debited with what is kept.
    Pass {
        /// Largest core prefix to keep (the byte budget left).
        max_core_bytes: u64,
        /// Whom to charge the kept bytes to.
        charge: Option<Charge>,
    },
    /// Over a rate: counted on the pod's state, no record of its own.
    Suppress,
    /// A record without a core (opted out: `Skipped`).
    Refuse(Refusal),
}

/// A pod's byte bucket, to debit once the capture knows what it kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    state: PathBuf,
    pod_bytes_per_hour: u64,
}

impl Charge {
    /// Debits `bytes` kept from the pod's byte bucket. Failures only cost accuracy.
    pub fn debit(&self, bytes: u64) {
        let _ = with_state(&self.state, |s| {
            s.refill_bytes(now_ms(), self.pod_bytes_per_hour);
            s.byte_tokens -= bytes as f64;
            Ok(())
        });
    }
}

/// Bucket state of one pod or namespace.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct BucketState {
    /// Crash tokens (`None`: never used, i.e. a full bucket).
    tokens: Option<f64>,
    /// Whether `byte_tokens` was ever set (unset: a full bucket).
    #[serde(default)]
    byte_tokens_set: bool,
    /// Byte tokens.
    #[serde(default)]
    byte_tokens: f64,
    /// Last refill, ms since the epoch.
    updated_ms: u64,
    /// Crashes suppressed since the last summary (pods only).
    #[serde(default)]
    suppressed: u64,
    /// The last suppressed crash, for the summary record.
    #[serde(default)]
    last: Option<CrashRecord>,
    /// When the first crash of the unpublished count was suppressed (ms since the epoch).
    #[serde(default)]
    first_suppressed_ms: u64,
    /// When the last one was.
    #[serde(default)]
    last_suppressed_ms: u64,
    /// Why the last crash was suppressed.
    #[serde(default)]
    why: String,
    /// Number of summaries published (makes summary ids unique and deterministic).
    #[serde(default)]
    generation: u64,
}

impl BucketState {
    fn refill(&mut self, now: u64, rate: Rate) {
        let burst = f64::from(rate.burst);
        let elapsed_min = now.saturating_sub(self.updated_ms) as f64 / 60_000.0;
        let tokens = match self.tokens {
            None => burst,
            Some(t) => (t + elapsed_min * f64::from(rate.per_minute)).min(burst),
        };
        self.tokens = Some(tokens);
    }

    fn refill_bytes(&mut self, now: u64, per_hour: u64) {
        let cap = per_hour as f64;
        if !self.byte_tokens_set {
            self.byte_tokens = cap;
            self.byte_tokens_set = true;
        } else {
            let elapsed_h = now.saturating_sub(self.updated_ms) as f64 / 3_600_000.0;
            self.byte_tokens = (self.byte_tokens + elapsed_h * cap).min(cap);
        }
    }
}

/// `ms` since the epoch as RFC 3339 (UTC, seconds).
fn rfc3339_ms(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Largest state file read (a `last` record is a few KiB).
const STATE_LIMIT: u64 = 256 << 10;
/// Largest pod policy read.
const POLICY_LIMIT: u64 = 4 << 10;

/// Runs `f` on the state at `path` under its flock, writing the result back.
fn with_state<T>(
    path: &Path,
    f: impl FnOnce(&mut BucketState) -> Result<T, CaptureError>,
) -> Result<T, CaptureError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc_nofollow())
        .open(path)
        .map_err(|e| CaptureError::io("open", path, e))?;
    sys::lock(&file).map_err(|e| CaptureError::io("lock", path, e))?;
    let mut text = Vec::new();
    (&mut file)
        .take(STATE_LIMIT)
        .read_to_end(&mut text)
        .map_err(|e| CaptureError::io("read", path, e))?;
    let mut state: BucketState = serde_json::from_slice(&text).unwrap_or_default();
    let out = f(&mut state)?;
    state.updated_ms = now_ms();
    let json = serde_json::to_vec(&state).map_err(|source| CaptureError::Config {
        path: path.to_path_buf(),
        source,
    })?;
    file.rewind()
        .and_then(|()| file.set_len(0))
        .and_then(|()| file.write_all(&json))
        .map_err(|e| CaptureError::io("write", path, e))?;
    Ok(out)
}

fn libc_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// A name safe as one path segment: pod UIDs (hex and dashes) and namespaces (DNS labels).
fn safe_segment(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The limits of one crash path, over their directory.
#[derive(Debug, Clone)]
pub struct Limiter<'a> {
    limits: &'a CrashLimits,
}

impl<'a> Limiter<'a> {
    /// A limiter for `limits`.
    pub fn new(limits: &'a CrashLimits) -> Limiter<'a> {
        Limiter { limits }
    }

    fn pods_dir(&self) -> PathBuf {
        self.limits.dir.join("pods")
    }

    fn state_dir(&self) -> PathBuf {
        self.limits.dir.join("state")
    }

    /// Path of the policy file of `pod_uid` (for the agent that writes it).
    pub fn policy_path(&self, pod_uid: &str) -> Option<PathBuf> {
        safe_segment(pod_uid).then(|| self.pods_dir().join(format!("{pod_uid}.json")))
    }

    /// Reads the policy the agent left for `pod_uid`; none when absent or unreadable.
    pub fn policy(&self, pod_uid: &str) -> Option<PodPolicy> {
        let path = self.policy_path(pod_uid)?;
        let bytes = crate::fsutil::read_bounded(&path, POLICY_LIMIT).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Decides a crash of `record` (a pod crash; other crashes always pass).
    pub fn gate(&self, record: &CrashRecord, max_core_bytes: u64) -> Result<Gate, CaptureError> {
        let Some(pod) = record.pod.as_ref().filter(|p| safe_segment(&p.pod_uid)) else {
            return Ok(Gate::Pass {
                max_core_bytes,
                charge: None,
            });
        };
        let policy = self.policy(&pod.pod_uid).unwrap_or_default();
        if let Some(reason) = policy.opted_out {
            return Ok(Gate::Refuse(Refusal::new(
                CaptureState::Skipped,
                CoredumpReason::OptedOut,
                reason,
            )));
        }
        let state_dir = self.state_dir();
        create_private_dir_all(&state_dir)?;
        let pod_state = state_dir.join(format!("pod-{}", pod.pod_uid));
        let ns_state = safe_segment(&policy.namespace)
            .then(|| state_dir.join(format!("ns-{}", policy.namespace)));
        let limits = self.limits;
        let now = now_ms();
        // Lock order: pod, then namespace, in every process.
        with_state(&pod_state, |p| {
            p.refill(now, limits.pod);
            if limits.pod_bytes_per_hour > 0 {
                p.refill_bytes(now, limits.pod_bytes_per_hour);
            }
            let pod_ok = p.tokens.unwrap_or(0.0) >= 1.0;
            let bytes_ok = limits.pod_bytes_per_hour == 0 || p.byte_tokens >= 1.0;
            let ns_ok = match (&ns_state, pod_ok && bytes_ok) {
                (Some(ns), true) => with_state(ns, |n| {
                    n.refill(now, limits.namespace);
                    let ok = n.tokens.unwrap_or(0.0) >= 1.0;
                    if ok {
                        n.tokens = n.tokens.map(|t| t - 1.0);
                    }
                    Ok(ok)
                })?,
                _ => true,
            };
            if !(pod_ok && bytes_ok && ns_ok) {
                if p.suppressed == 0 {
                    p.first_suppressed_ms = now;
                }
                p.suppressed = p.suppressed.saturating_add(1);
                p.last_suppressed_ms = now;
                p.last = Some(record.clone());
                p.why = if !pod_ok {
                    format!(
                        "the pod's crash rate limit ({} at once, {} per minute)",
                        limits.pod.burst, limits.pod.per_minute
                    )
                } else if !bytes_ok {
                    format!(
                        "the pod's core byte budget ({} bytes per hour)",
                        limits.pod_bytes_per_hour
                    )
                } else {
                    format!(
                        "namespace {}'s crash rate limit ({} at once, {} per minute)",
                        policy.namespace, limits.namespace.burst, limits.namespace.per_minute
                    )
                };
                return Ok(Gate::Suppress);
            }
            p.tokens = p.tokens.map(|t| t - 1.0);
            let mut cap = max_core_bytes;
            if limits.pod_bytes_per_hour > 0 {
                cap = cap.min(p.byte_tokens.max(0.0) as u64);
            }
            Ok(Gate::Pass {
                max_core_bytes: cap,
                charge: (limits.pod_bytes_per_hour > 0).then(|| Charge {
                    state: pod_state.clone(),
                    pod_bytes_per_hour: limits.pod_bytes_per_hour,
                }),
            })
        })
    }

    /// Publishes one `RateLimited` record per pod whose suppressed crashes are due, standing
    /// for all of them (`suppressed` counts them, the facts are the last one's), and starts the
    /// count over. A count is due once no crash was suppressed for `quiet` (the loop paused or
    /// ended), or its first crash is `max_delay` old (a loop that never pauses still leaves
    /// one record per `max_delay`, not one per crash). Returns the ids published. Ids derive from
    /// the pod's summary generation, so a summary published again after a crash between
    /// publication and reset lands on the same record.
    pub fn publish_suppressed(
        &self,
        spool: &Spool,
        quiet: std::time::Duration,
        max_delay: std::time::Duration,
    ) -> Result<Vec<String>, CaptureError> {
        let now = now_ms();
        let due = |s: &BucketState| {
            now.saturating_sub(s.last_suppressed_ms) >= quiet.as_millis() as u64
                || now.saturating_sub(s.first_suppressed_ms) >= max_delay.as_millis() as u64
        };
        let dir = self.state_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut published = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("pod-") {
                continue;
            }
            let path = dir.join(&name);
            let id = with_state(&path, |s| {
                let Some(last) = s.last.clone().filter(|_| s.suppressed > 0 && due(s)) else {
                    return Ok(None);
                };
                let id = format!(
                    "{}-{}-s{:07x}",
                    last.time,
                    last.pid,
                    s.generation % 0xfff_ffff
                );
                let mut record = last;
                record.id.clone_from(&id);
                record.state = CaptureState::RateLimited;
                record.cause = Some(CoredumpReason::CrashLoop);
                record.encoding = CoreEncoding::None;
                record.raw_size = 0;
                record.kept_size = 0;
                record.stored_size = 0;
                record.sha256.clear();
                record.suppressed = s.suppressed;
                record.reason = format!(
                    "{} crashes of this pod between {} and {} were not kept (over {}); this record stands for them, with the facts of the last one",
                    s.suppressed,
                    rfc3339_ms(s.first_suppressed_ms),
                    rfc3339_ms(s.last_suppressed_ms),
                    s.why
                );
                if !spool.entry_dir(&id).exists() {
                    let pending = spool.begin(&id)?;
                    spool.publish(pending, &record)?;
                }
                s.suppressed = 0;
                s.last = None;
                s.generation = s.generation.wrapping_add(1);
                Ok(Some(id))
            })?;
            published.extend(id);
        }
        Ok(published)
    }

    /// Removes the policy and state of pods not in `live` (pod UIDs), once their suppressed
    /// crashes are published.
    pub fn forget_pods_except(&self, live: &std::collections::HashSet<String>) {
        for (dir, prefix, suffix) in [
            (self.pods_dir(), "", ".json"),
            (self.state_dir(), "pod-", ""),
        ] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(uid) = name
                    .strip_prefix(prefix)
                    .and_then(|n| n.strip_suffix(suffix))
                else {
                    continue;
                };
                if live.contains(uid) {
                    continue;
                }
                let path = dir.join(&name);
                let pending = prefix == "pod-"
                    && with_state(&path, |s| Ok(s.suppressed > 0)).unwrap_or(false);
                if !pending {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }

    /// Writes the policy of `pod_uid` atomically (the agent's side).
    pub fn write_policy(&self, pod_uid: &str, policy: &PodPolicy) -> Result<(), CaptureError> {
        let Some(path) = self.policy_path(pod_uid) else {
            return Ok(());
        };
        create_private_dir_all(&self.pods_dir())?;
        let json = serde_json::to_vec(policy).map_err(|source| CaptureError::Config {
            path: path.clone(),
            source,
        })?;
        if crate::fsutil::read_bounded(&path, POLICY_LIMIT)
            .ok()
            .as_deref()
            == Some(&json[..])
        {
            return Ok(());
        }
        crate::fsutil::write_atomic(&path, &json)
    }
}

/// Keeps the kept-bytes charge of an admitted capture until it is published.
pub fn debit(charge: Option<&Charge>, bytes: u64) {
    if let Some(c) = charge {
        c.debit(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::PodRef;

    fn limits(dir: &Path) -> CrashLimits {
        CrashLimits {
            dir: dir.to_path_buf(),
            pod: Rate {
                burst: 3,
                per_minute: 0,
            },
            namespace: Rate {
                burst: 5,
                per_minute: 0,
            },
            pod_bytes_per_hour: 0,
        }
    }

    fn record(uid: &str, pid: u32) -> CrashRecord {
        let mut r: CrashRecord = serde_json::from_value(serde_json::json!({
            "id": format!("1-{pid}-00000001"), "pid": pid, "tid": pid, "signal": 11, "time": 1700000000,
            "uid": 0, "gid": 0, "hostname": "n", "comm": "crasher", "exe": "/crasher",
            "cmdline": ["crasher"], "cgroup": "", "raw_size": 0, "kept_size": 0, "stored_size": 0,
            "sha256": "", "encoding": "none", "state": "Stored", "held_ms": 0, "done_ms": 0
        }))
        .unwrap();
        r.pod = Some(PodRef {
            pod_uid: uid.into(),
            qos: "BestEffort".into(),
            container_id: None,
        });
        r
    }

    const A: &str = "0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11";
    const B: &str = "1c8d5f9f-1f3d-4a4f-8b66-8b2f1e3cad22";

    #[test]
    fn a_pod_gets_its_burst_then_is_counted_not_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let l = limits(tmp.path());
        let limiter = Limiter::new(&l);
        for pid in 0..3 {
            assert!(matches!(
                limiter.gate(&record(A, pid), 100).unwrap(),
                Gate::Pass {
                    max_core_bytes: 100,
                    ..
                }
            ));
        }
        for pid in 3..10 {
            assert_eq!(limiter.gate(&record(A, pid), 100).unwrap(), Gate::Suppress);
        }
        // Another pod has its own bucket.
        assert!(matches!(
            limiter.gate(&record(B, 50), 100).unwrap(),
            Gate::Pass { .. }
        ));

        let spool = Spool::open(tmp.path().join("spool")).unwrap();
        let zero = std::time::Duration::ZERO;
        let hour = std::time::Duration::from_secs(3600);
        assert!(
            limiter
                .publish_suppressed(&spool, hour, hour)
                .unwrap()
                .is_empty(),
            "not due while crashes keep coming and the first is recent"
        );
        let ids = limiter.publish_suppressed(&spool, zero, hour).unwrap();
        assert_eq!(ids.len(), 1, "one summary for pod A");
        let summary = spool.record(&ids[0]).unwrap();
        assert_eq!(summary.state, CaptureState::RateLimited);
        assert_eq!(summary.cause, Some(CoredumpReason::CrashLoop));
        assert_eq!(summary.suppressed, 7);
        assert_eq!(summary.pid, 9, "facts of the last suppressed crash");
        assert!(summary.reason.contains("7 crashes"), "{}", summary.reason);
        assert!(
            limiter
                .publish_suppressed(&spool, zero, zero)
                .unwrap()
                .is_empty(),
            "counted once"
        );
    }

    #[test]
    fn the_namespace_bucket_is_shared_by_its_pods_and_opt_out_refuses() {
        let tmp = tempfile::tempdir().unwrap();
        let l = limits(tmp.path());
        let limiter = Limiter::new(&l);
        let policy = PodPolicy {
            namespace: "team-a".into(),
            ..PodPolicy::default()
        };
        limiter.write_policy(A, &policy).unwrap();
        limiter.write_policy(B, &policy).unwrap();
        let passed = (0..6)
            .filter(|i| {
                let uid = if i % 2 == 0 { A } else { B };
                matches!(
                    limiter.gate(&record(uid, *i), 1).unwrap(),
                    Gate::Pass { .. }
                )
            })
            .count();
        assert_eq!(passed, 5, "the namespace's burst, though each pod had 3");
        limiter
            .write_policy(
                A,
                &PodPolicy {
                    namespace: "team-a".into(),
                    opted_out: Some("opted out: pod has coredump.fujitsu.com/capture=false".into()),
                },
            )
            .unwrap();
        match limiter.gate(&record(A, 99), 1).unwrap() {
            Gate::Refuse(Refusal {
                state,
                cause,
                reason,
            }) => {
                assert_eq!(state, CaptureState::Skipped);
                assert_eq!(cause, CoredumpReason::OptedOut);
                assert!(reason.starts_with("opted out"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_byte_budget_caps_the_core_while_it_is_captured() {
        let tmp = tempfile::tempdir().unwrap();
        let mut l = limits(tmp.path());
        l.pod_bytes_per_hour = 1000;
        let limiter = Limiter::new(&l);
        let Gate::Pass {
            max_core_bytes,
            charge,
        } = limiter.gate(&record(A, 1), 1 << 30).unwrap()
        else {
            panic!("first crash passes");
        };
        assert_eq!(max_core_bytes, 1000);
        debit(charge.as_ref(), 700);
        let Gate::Pass {
            max_core_bytes,
            charge,
        } = limiter.gate(&record(A, 2), 1 << 30).unwrap()
        else {
            panic!("budget left");
        };
        assert!((300..=301).contains(&max_core_bytes), "{max_core_bytes}");
        debit(charge.as_ref(), 300);
        assert_eq!(
            limiter.gate(&record(A, 3), 1 << 30).unwrap(),
            Gate::Suppress,
            "budget spent"
        );
        // The namespace's quota is the ingest's: another pod gets its own byte budget, whatever
        // its namespace holds.
        limiter
            .write_policy(
                B,
                &PodPolicy {
                    namespace: "team-b".into(),
                    opted_out: None,
                },
            )
            .unwrap();
        assert!(matches!(
            limiter.gate(&record(B, 4), 1 << 30).unwrap(),
            Gate::Pass {
                max_core_bytes: 1000,
                ..
            }
        ));
    }

    #[test]
    fn unsafe_names_never_become_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let l = limits(tmp.path());
        let limiter = Limiter::new(&l);
        assert_eq!(limiter.policy_path("../x"), None);
        assert!(matches!(
            limiter.gate(&record("../../etc", 1), 5).unwrap(),
            Gate::Pass {
                max_core_bytes: 5,
                charge: None
            }
        ));
        assert!(!tmp.path().join("state").exists());
    }
}
