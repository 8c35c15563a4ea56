//! The values a cgroup path can tell us about a Kubernetes workload, and the
//! validation of their textual forms.
//!
//! Kept apart from the path walking so that the agent can also use these types
//! (and [`ContainerId::parse_status_form`]) when it matches pod status.

use std::fmt;

/// Where a process sits in Kubernetes, as far as its cgroup path says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodIdentity {
    /// The pod UID as kubelet names the pod cgroup: canonical lowercase UUID
    /// with dashes (`8-4-4-4-12`), or, for static pods, the 32 lowercase hex
    /// digits of kubelet's config hash (the mirror pod carries that hash in its
    /// `kubernetes.io/config.mirror` annotation, its own `metadata.uid` differs).
    pub pod_uid: String,
    /// The pod's QoS class, from the QoS level of the cgroup hierarchy.
    pub qos: QosClass,
    /// The container, when the process sits in a container cgroup; `None` for a
    /// process in the pod-level cgroup itself or in a pod-level helper cgroup
    /// (for example CRI-O's `crio-conmon-<id>` monitor).
    pub container: Option<ContainerId>,
}

impl PodIdentity {
    /// True when [`PodIdentity::pod_uid`] is a static pod's config hash rather
    /// than an API-server-assigned UUID.
    pub fn is_static_pod_hash(&self) -> bool {
        self.pod_uid.len() == 32
    }
}

/// Kubernetes pod QoS class, as kubelet lays out `kubepods`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    /// Pods directly under `kubepods` (no QoS level).
    Guaranteed,
    /// Pods under `kubepods/burstable`.
    Burstable,
    /// Pods under `kubepods/besteffort`.
    BestEffort,
}

impl QosClass {
    /// The spelling used in `pod.status.qosClass`.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }

    /// The QoS level name kubelet uses in cgroup paths, `None` for Guaranteed
    /// (which has no level of its own).
    pub(crate) fn from_cgroup_level(level: &str) -> Option<QosClass> {
        match level {
            "burstable" => Some(QosClass::Burstable),
            "besteffort" => Some(QosClass::BestEffort),
            _ => None,
        }
    }
}

impl fmt::Display for QosClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container as the runtime and Kubernetes pod status name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerId {
    /// The runtime that created the container.
    ///
    /// With kubelet's cgroupfs driver, containerd and Docker (cri-dockerd) both
    /// name the container cgroup by the bare id, so the path cannot tell them
    /// apart; such ids are reported as [`Runtime::Containerd`]. Use
    /// [`ContainerId::matches_status`] to compare with pod status, which
    /// compares ids only.
    pub runtime: Runtime,
    /// The 64 lowercase hex digit container id.
    pub id: String,
}

impl ContainerId {
    /// Parses the `containerID` form found in pod status
    /// (`containerd://<id>`, `cri-o://<id>`, `docker://<id>`), the inverse of
    /// `Display`. Returns `None` for any other runtime or a malformed id.
    pub fn parse_status_form(s: &str) -> Option<ContainerId> {
        let (scheme, id) = s.split_once("://")?;
        let runtime = Runtime::from_scheme(scheme)?;
        let id = normalize_container_id(id)?;
        Some(ContainerId { runtime, id })
    }

    /// True when `status_container_id` (pod status form) names the same
    /// container id, whatever runtime it names (see [`ContainerId::runtime`]).
    pub fn matches_status(&self, status_container_id: &str) -> bool {
        ContainerId::parse_status_form(status_container_id).is_some_and(|c| c.id == self.id)
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.runtime.scheme(), self.id)
    }
}

/// A container runtime that kubelet can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// containerd's CRI plugin (`cri-containerd-<id>.scope`, or the bare id).
    Containerd,
    /// CRI-O (`crio-<id>.scope`, or `crio-<id>` with cgroupfs).
    CriO,
    /// Docker through dockershim / cri-dockerd (`docker-<id>.scope`).
    Docker,
}

impl Runtime {
    /// The scheme Kubernetes uses in pod status `containerID`.
    pub fn scheme(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Docker => "docker",
        }
    }

    fn from_scheme(scheme: &str) -> Option<Runtime> {
        match scheme {
            "containerd" => Some(Runtime::Containerd),
            "cri-o" => Some(Runtime::CriO),
            "docker" => Some(Runtime::Docker),
            _ => None,
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

/// Returns the lowercase id when `s` is exactly 64 hex digits.
pub(crate) fn normalize_container_id(s: &str) -> Option<String> {
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

/// Returns the canonical pod UID for the text after `pod` in a cgroup name:
/// a UUID written with dashes (cgroupfs) or underscores (systemd), or a
/// static pod's 32 hex digit config hash.
pub(crate) fn normalize_pod_uid(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    if bytes.len() == 32 && bytes.iter().all(u8::is_ascii_hexdigit) {
        return Some(s.to_ascii_lowercase());
    }
    if bytes.len() != 36 {
        return None;
    }
    let mut out = String::with_capacity(36);
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if b != b'-' && b != b'_' {
                return None;
            }
            out.push('-');
        } else if b.is_ascii_hexdigit() {
            out.push(char::from(b.to_ascii_lowercase()));
        } else {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899";

    #[test]
    fn status_form_round_trips_for_every_runtime() {
        for runtime in [Runtime::Containerd, Runtime::CriO, Runtime::Docker] {
            let c = ContainerId {
                runtime,
                id: ID.to_owned(),
            };
            let text = c.to_string();
            assert_eq!(text, format!("{}://{ID}", runtime.scheme()));
            assert_eq!(ContainerId::parse_status_form(&text), Some(c));
        }
        assert_eq!(
            ContainerId {
                runtime: Runtime::CriO,
                id: ID.to_owned()
            }
            .to_string(),
            format!("cri-o://{ID}")
        );
    }

    #[test]
    fn status_form_rejects_other_runtimes_and_bad_ids() {
        for bad in [
            format!("containerd//{ID}"),
            format!("rkt://{ID}"),
            format!("containerd://{}", &ID[..63]),
            format!("containerd://{ID}0"),
            format!("containerd://{}g", &ID[..63]),
            "containerd://".to_owned(),
            String::new(),
            ID.to_owned(),
        ] {
            assert_eq!(ContainerId::parse_status_form(&bad), None, "{bad}");
        }
    }

    #[test]
    fn status_form_lowercases_the_id() {
        let upper = format!("docker://{}", ID.to_ascii_uppercase());
        let parsed = ContainerId::parse_status_form(&upper).unwrap();
        assert_eq!(parsed.id, ID);
    }

    #[test]
    fn matches_status_ignores_the_runtime_guess() {
        let c = ContainerId {
            runtime: Runtime::Containerd,
            id: ID.to_owned(),
        };
        assert!(c.matches_status(&format!("docker://{ID}")));
        assert!(c.matches_status(&format!("containerd://{ID}")));
        let other = ID.replace('3', "4");
        assert!(!c.matches_status(&format!("containerd://{other}")));
        assert!(!c.matches_status("containerd://"));
    }

    #[test]
    fn pod_uid_forms() {
        let canonical = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
        assert_eq!(normalize_pod_uid(canonical).as_deref(), Some(canonical));
        assert_eq!(
            normalize_pod_uid("0a1b2c3d_4e5f_6789_abcd_ef0123456789").as_deref(),
            Some(canonical)
        );
        assert_eq!(
            normalize_pod_uid("0A1B2C3D-4E5F-6789-ABCD-EF0123456789").as_deref(),
            Some(canonical)
        );
        assert_eq!(
            normalize_pod_uid("6c1d1b7a8a0e4f2b9e3d5c7a9b1d3f5e").as_deref(),
            Some("6c1d1b7a8a0e4f2b9e3d5c7a9b1d3f5e")
        );
        for bad in [
            "",
            "0a1b2c3d-4e5f-6789-abcd-ef012345678",
            "0a1b2c3d-4e5f-6789-abcd-ef01234567890",
            "0a1b2c3d4e5f-6789-abcd-ef0123456789a",
            "0a1b2c3d-4e5f-6789-abcd-ef012345678g",
            "0a1b2c3d.4e5f.6789.abcd.ef0123456789",
            "6c1d1b7a8a0e4f2b9e3d5c7a9b1d3f5",
            "6c1d1b7a8a0e4f2b9e3d5c7a9b1d3f5x",
        ] {
            assert_eq!(normalize_pod_uid(bad), None, "{bad}");
        }
    }

    #[test]
    fn qos_spelling_matches_pod_status() {
        assert_eq!(QosClass::Guaranteed.to_string(), "Guaranteed");
        assert_eq!(QosClass::Burstable.to_string(), "Burstable");
        assert_eq!(QosClass::BestEffort.to_string(), "BestEffort");
    }
}
