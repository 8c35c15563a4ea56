//! Free-space floors that keep the node healthy. A floor far below kubelet's eviction threshold
//! (the old fixed 1 GiB) lets a tenant's large cores push the node into DiskPressure, and then
//! kubelet evicts everybody's pods. So by default (`auto`) a floor sits a margin above the
//! threshold kubelet enforces on its filesystem: kubelet's `evictionHard` `nodefs.available`
//! read from its configuration file when there is one, kubelet's own default (10 %) otherwise.
//!
//! `--min-free` and `--min-free-blobs` take `auto`, a byte quantity (`2Gi`) or a percentage of
//! the filesystem (`15%`).

use std::path::Path;

/// Percentage points above kubelet's threshold that `auto` keeps free.
pub const AUTO_MARGIN_PERCENT: f64 = 5.0;
/// kubelet's default hard eviction threshold for `nodefs.available`.
pub const KUBELET_DEFAULT_PERCENT: f64 = 10.0;
/// The smallest floor `auto` chooses, whatever the filesystem's size.
pub const AUTO_MINIMUM: u64 = 1 << 30;

/// A free-space floor as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FreeFloor {
    /// A margin above kubelet's eviction threshold (the default).
    Auto,
    /// Bytes.
    Bytes(u64),
    /// Percent of the filesystem.
    Percent(f64),
}

impl std::str::FromStr for FreeFloor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("auto") {
            return Ok(FreeFloor::Auto);
        }
        if let Some(p) = text.strip_suffix('%') {
            return parse_percent(p)
                .map(FreeFloor::Percent)
                .ok_or_else(|| format!("{text:?}: a percentage is 0% to 100%"));
        }
        crate::args::quantity(text).map(FreeFloor::Bytes)
    }
}

fn parse_percent(text: &str) -> Option<f64> {
    let p: f64 = text.trim().parse().ok()?;
    (0.0..=100.0).contains(&p).then_some(p)
}

/// kubelet's `evictionHard` threshold for `nodefs.available` in its configuration file:
/// `Some(Percent)` or `Some(Bytes)`; `None` when there is no file or no such entry.
pub fn kubelet_nodefs_threshold(config: &Path) -> Option<FreeFloor> {
    let text = read_host_file(config, Path::new("/proc"))?;
    let doc: serde_json::Value = serde_saphyr::from_str(&text).ok()?;
    let value = doc.get("evictionHard")?.get("nodefs.available")?.as_str()?;
    match value.parse().ok()? {
        FreeFloor::Auto => None,
        floor => Some(floor),
    }
}

/// Reads `path`; when it names a host file through `/proc/1/root` and PID 1 refuses that (an
/// init with capabilities the agent lacks: the kernel then denies `/proc/1/root` even to
/// root), reads it through the root of a kubelet process instead (kubelet sees the host's
/// files, and the agent runs in the host's PID namespace).
fn read_host_file(path: &Path, proc: &Path) -> Option<String> {
    let err = match std::fs::read_to_string(path) {
        Ok(text) => return Some(text),
        Err(e) => e,
    };
    let rest = path.strip_prefix(proc.join("1/root")).ok()?;
    if err.kind() != std::io::ErrorKind::PermissionDenied {
        return None;
    }
    std::fs::read_dir(proc)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_name().to_str()?.parse::<u32>().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            comm.trim().starts_with("kubelet").then(|| e.path())
        })
        .find_map(|pid| std::fs::read_to_string(pid.join("root").join(rest)).ok())
}

/// Total size of the filesystem holding `path`.
fn filesystem_size(path: &Path) -> Option<u64> {
    let vfs = rustix::fs::statvfs(path).ok()?;
    Some(vfs.f_blocks.saturating_mul(vfs.f_frsize))
}

impl FreeFloor {
    /// The floor in bytes for the filesystem of `path`. `kubelet` is kubelet's threshold if
    /// known; `assume_kubelet` says whether to assume kubelet's default without one (a node
    /// agent does, standalone does not and keeps [`AUTO_MINIMUM`]).
    pub fn bytes(self, path: &Path, kubelet: Option<FreeFloor>, assume_kubelet: bool) -> u64 {
        let size = filesystem_size(path).unwrap_or(0);
        let percent_of = |p: f64| (size as f64 * p / 100.0) as u64;
        match self {
            FreeFloor::Bytes(b) => b,
            FreeFloor::Percent(p) => percent_of(p),
            FreeFloor::Auto => {
                let threshold = match kubelet {
                    Some(FreeFloor::Bytes(b)) => Some(b),
                    Some(FreeFloor::Percent(p)) => Some(percent_of(p)),
                    _ if assume_kubelet => Some(percent_of(KUBELET_DEFAULT_PERCENT)),
                    _ => None,
                };
                match threshold {
                    Some(t) => t
                        .saturating_add(percent_of(AUTO_MARGIN_PERCENT))
                        .max(AUTO_MINIMUM),
                    None => AUTO_MINIMUM,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_auto_bytes_and_percentages() {
        assert_eq!("auto".parse::<FreeFloor>(), Ok(FreeFloor::Auto));
        assert_eq!("2Gi".parse::<FreeFloor>(), Ok(FreeFloor::Bytes(2 << 30)));
        assert_eq!("0".parse::<FreeFloor>(), Ok(FreeFloor::Bytes(0)));
        assert_eq!("15%".parse::<FreeFloor>(), Ok(FreeFloor::Percent(15.0)));
        assert!("150%".parse::<FreeFloor>().is_err());
        assert!("lots".parse::<FreeFloor>().is_err());
    }

    #[test]
    fn auto_sits_a_margin_above_kubelets_threshold() {
        let tmp = tempfile::tempdir().unwrap();
        let size = filesystem_size(tmp.path()).unwrap();
        let pct = |p: f64| (size as f64 * p / 100.0) as u64;
        let auto = FreeFloor::Auto;
        assert_eq!(
            auto.bytes(tmp.path(), None, true),
            (pct(10.0) + pct(5.0)).max(AUTO_MINIMUM),
            "kubelet's default 10 % plus 5"
        );
        assert_eq!(auto.bytes(tmp.path(), None, false), AUTO_MINIMUM);
        let config = tmp.path().join("config.yaml");
        std::fs::write(
            &config,
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nevictionHard:\n  nodefs.available: \"20%\"\n  memory.available: 100Mi\n",
        )
        .unwrap();
        let kubelet = kubelet_nodefs_threshold(&config);
        assert_eq!(kubelet, Some(FreeFloor::Percent(20.0)));
        assert_eq!(
            auto.bytes(tmp.path(), kubelet, true),
            (pct(20.0) + pct(5.0)).max(AUTO_MINIMUM)
        );
        std::fs::write(&config, "evictionHard:\n  nodefs.available: 3Gi\n").unwrap();
        assert_eq!(
            auto.bytes(tmp.path(), kubelet_nodefs_threshold(&config), true),
            ((3u64 << 30) + pct(5.0)).max(AUTO_MINIMUM)
        );
        assert_eq!(kubelet_nodefs_threshold(&tmp.path().join("missing")), None);
        assert_eq!(FreeFloor::Bytes(7).bytes(tmp.path(), kubelet, true), 7);
    }
}
