//! What `/proc/<pid>` tells about the crashing process while the kernel holds it. Every read is
//! bounded, nothing goes through `/proc/<pid>/root` (the process's own filesystem view is not to
//! be trusted) and `environ` is never read (it may hold secrets).

use std::path::PathBuf;

use crate::fsutil::read_prefix;
use crate::record::PodRef;

/// At most this many bytes of `/proc/<pid>/cmdline`.
const CMDLINE_LIMIT: u64 = 4096;
/// At most this many arguments are kept.
const CMDLINE_ARGS: usize = 64;
/// At most this many bytes of `/proc/<pid>/cgroup`.
const CGROUP_LIMIT: u64 = 16 << 10;

/// Metadata read from `/proc/<pid>`; fields are empty when unreadable (the process may already
/// be gone if the kernel did not hold it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcInfo {
    /// `comm`.
    pub comm: String,
    /// Target of the `exe` link.
    pub exe: String,
    /// Arguments, bounded.
    pub cmdline: Vec<String>,
    /// Raw cgroup membership text.
    pub cgroup: String,
    /// Pod identity derived from `cgroup`.
    pub pod: Option<PodRef>,
}

/// Reads what we keep about `pid` from the proc filesystem mounted at `proc_root` (normally
/// `/proc`; tests pass a recorded tree).
pub fn read(proc_root: &std::path::Path, pid: u32) -> ProcInfo {
    let dir = proc_root.join(pid.to_string());
    let comm = read_prefix(&dir.join("comm"), 64)
        .map(|b| {
            String::from_utf8_lossy(&b)
                .trim_end_matches('\n')
                .to_string()
        })
        .unwrap_or_default();
    let exe = std::fs::read_link(dir.join("exe"))
        .map(|p: PathBuf| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cmdline = read_prefix(&dir.join("cmdline"), CMDLINE_LIMIT)
        .map(|b| split_cmdline(&b))
        .unwrap_or_default();
    let cgroup = read_prefix(&dir.join("cgroup"), CGROUP_LIMIT)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let pod = pod_of(&cgroup);
    ProcInfo {
        comm,
        exe,
        cmdline,
        cgroup,
        pod,
    }
}

/// Pod identity from cgroup membership text, `None` outside pods.
pub fn pod_of(cgroup: &str) -> Option<PodRef> {
    coredump_cgroup::parse_proc_cgroup(cgroup).map(|id| PodRef {
        pod_uid: id.pod_uid,
        qos: format!("{:?}", id.qos),
        container_id: id.container.map(|c| c.to_string()),
    })
}

fn split_cmdline(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .take(CMDLINE_ARGS)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_recorded_proc_tree() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("4242");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("comm"), "crasher\n").unwrap();
        std::fs::write(dir.join("cmdline"), b"/bin/crasher\0--size\0\x0164\0").unwrap();
        std::fs::write(
            dir.join("cgroup"),
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b7c4e8e_0f2c_4f3e_9a55_7a1f0d2b9c11.slice/cri-containerd-4f5a1c3b2d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708.scope\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("/bin/crasher", dir.join("exe")).unwrap();
        let info = read(root.path(), 4242);
        assert_eq!(info.comm, "crasher");
        assert_eq!(info.exe, "/bin/crasher");
        assert_eq!(info.cmdline, vec!["/bin/crasher", "--size", "\u{1}64"]);
        let pod = info.pod.expect("pod identity");
        assert_eq!(pod.pod_uid, "0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11");
        assert_eq!(pod.qos, "BestEffort");
        assert_eq!(
            pod.container_id.as_deref(),
            Some("containerd://4f5a1c3b2d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708")
        );
    }

    #[test]
    fn missing_process_gives_empty_info() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(read(root.path(), 1), ProcInfo::default());
    }

    #[test]
    fn cmdline_is_bounded() {
        let many: Vec<u8> = (0..1000).flat_map(|_| b"ab\0".to_vec()).collect();
        assert_eq!(split_cmdline(&many).len(), CMDLINE_ARGS);
    }
}
