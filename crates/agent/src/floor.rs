//! Free-space floors that keep the node healthy. A floor far below kubelet's eviction threshold
//! (the old fixed 1 GiB) lets a tenant's large cores push the node into DiskPressure, and then
//! kubelet evicts everybody's pods. So by default (`auto`) a floor sits a margin above the
//! threshold kubelet enforces on its filesystem: kubelet's `nodefs.available` hard eviction
//! threshold, kubelet's own default (10 %) when none is found.
//!
//! The threshold is read from the kubelet that runs on the node (the agent sees the host's
//! processes): its `--eviction-hard` flag, else the `evictionHard` of its `--config` file, read
//! through that kubelet's own root (`/proc/<pid>/root`). Distributions keep the file in
//! different places, and the host's init may not let anyone through `/proc/1/root`, so the
//! running kubelet is the one reliable source. `--kubelet-config PATH` names a file instead.
//!
//! `--min-free` and `--min-free-blobs` take `auto`, a byte quantity (`2Gi`) or a percentage of
//! the filesystem (`15%`).

use std::path::{Path, PathBuf};

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
        coredump_common::parse_bytes(text)
            .map(FreeFloor::Bytes)
            .map_err(|e| e.to_string())
    }
}

fn parse_percent(text: &str) -> Option<f64> {
    let p: f64 = text.trim().parse().ok()?;
    (0.0..=100.0).contains(&p).then_some(p)
}

/// Where kubelet's eviction threshold is read (`--kubelet-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeletConfig {
    /// `auto`: from the kubelet processes running on the node.
    Running,
    /// A kubelet configuration file.
    File(PathBuf),
}

impl std::str::FromStr for KubeletConfig {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "" => Err("empty: `auto` or a file's path".into()),
            "auto" => Ok(KubeletConfig::Running),
            path => Ok(KubeletConfig::File(path.into())),
        }
    }
}

impl KubeletConfig {
    /// kubelet's `nodefs.available` thresholds: one per kubelet found (`proc` is the host's
    /// `/proc`), or that of the configuration file. Empty when none is known.
    pub fn thresholds(&self, proc: &Path) -> Vec<FreeFloor> {
        match self {
            KubeletConfig::File(path) => kubelet_nodefs_threshold(path).into_iter().collect(),
            KubeletConfig::Running => running_kubelets(proc)
                .iter()
                .filter_map(RunningKubelet::threshold)
                .collect(),
        }
    }
}

/// kubelet's `evictionHard` threshold for `nodefs.available` in its configuration file:
/// `Some(Percent)` or `Some(Bytes)`; `None` when there is no file or no such entry.
pub fn kubelet_nodefs_threshold(config: &Path) -> Option<FreeFloor> {
    let text = std::fs::read_to_string(config).ok()?;
    let doc: serde_json::Value = serde_saphyr::from_str(&text).ok()?;
    let value = doc.get("evictionHard")?.get("nodefs.available")?.as_str()?;
    match value.parse().ok()? {
        FreeFloor::Auto => None,
        floor => Some(floor),
    }
}

/// The `nodefs.available` entry of kubelet's `--eviction-hard` flag
/// (`memory.available<100Mi,nodefs.available<10%`).
fn eviction_flag_threshold(flag: &str) -> Option<FreeFloor> {
    let value = flag
        .split(',')
        .find_map(|signal| signal.trim().strip_prefix("nodefs.available<"))?;
    match value.parse().ok()? {
        FreeFloor::Auto => None,
        floor => Some(floor),
    }
}

/// At most this many `/proc` entries are looked at for kubelets.
const MAX_PROC_ENTRIES: usize = 1 << 16;

/// A kubelet process seen in `/proc`.
struct RunningKubelet {
    /// `/proc/<pid>`.
    dir: PathBuf,
    /// Its command line.
    args: Vec<String>,
}

/// The processes whose executable's name starts with `kubelet`.
fn running_kubelets(proc: &Path) -> Vec<RunningKubelet> {
    let Ok(entries) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    entries
        .take(MAX_PROC_ENTRIES)
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let program = Path::new(args.first()?).file_name()?.to_str()?;
            program.starts_with("kubelet").then(|| RunningKubelet {
                dir: e.path(),
                args,
            })
        })
        .collect()
}

impl RunningKubelet {
    /// The value of `--name=value` or `--name value`.
    fn flag(&self, name: &str) -> Option<&str> {
        let mut args = self.args.iter().skip(1);
        while let Some(arg) = args.next() {
            if let Some(value) = arg.strip_prefix(name) {
                if let Some(value) = value.strip_prefix('=') {
                    return Some(value);
                }
                if value.is_empty() {
                    return args.next().map(String::as_str);
                }
            }
        }
        None
    }

    /// Its `--eviction-hard` threshold, else the one of its `--config` file, read as the
    /// kubelet sees it (through its own root, or its working directory for a relative path).
    fn threshold(&self) -> Option<FreeFloor> {
        if let Some(t) = self
            .flag("--eviction-hard")
            .and_then(eviction_flag_threshold)
        {
            return Some(t);
        }
        let config = Path::new(self.flag("--config")?);
        let path = match config.strip_prefix("/") {
            Ok(inside) => self.dir.join("root").join(inside),
            Err(_) => self.dir.join("cwd").join(config),
        };
        kubelet_nodefs_threshold(&path)
    }
}

/// Total size of the filesystem holding `path`.
fn filesystem_size(path: &Path) -> Option<u64> {
    let vfs = rustix::fs::statvfs(path).ok()?;
    Some(vfs.f_blocks.saturating_mul(vfs.f_frsize))
}

impl FreeFloor {
    /// The floor in bytes for the filesystem of `path`. `kubelet` holds kubelet's thresholds
    /// if known (the highest counts); `assume_kubelet` says whether to assume kubelet's default
    /// without one (a node agent does, standalone does not and keeps [`AUTO_MINIMUM`]).
    pub fn bytes(self, path: &Path, kubelet: &[FreeFloor], assume_kubelet: bool) -> u64 {
        let size = filesystem_size(path).unwrap_or(0);
        let percent_of = |p: f64| (size as f64 * p / 100.0) as u64;
        let in_bytes = |floor: &FreeFloor| match *floor {
            FreeFloor::Bytes(b) => Some(b),
            FreeFloor::Percent(p) => Some(percent_of(p)),
            FreeFloor::Auto => None,
        };
        match self {
            FreeFloor::Bytes(b) => b,
            FreeFloor::Percent(p) => percent_of(p),
            FreeFloor::Auto => {
                let threshold = match kubelet.iter().filter_map(in_bytes).max() {
                    Some(t) => Some(t),
                    None if assume_kubelet => Some(percent_of(KUBELET_DEFAULT_PERCENT)),
                    None => None,
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
            auto.bytes(tmp.path(), &[], true),
            (pct(10.0) + pct(5.0)).max(AUTO_MINIMUM),
            "kubelet's default 10 % plus 5"
        );
        assert_eq!(auto.bytes(tmp.path(), &[], false), AUTO_MINIMUM);
        let config = tmp.path().join("config.yaml");
        std::fs::write(
            &config,
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nevictionHard:\n  nodefs.available: \"20%\"\n  memory.available: 100Mi\n",
        )
        .unwrap();
        let kubelet = kubelet_nodefs_threshold(&config);
        assert_eq!(kubelet, Some(FreeFloor::Percent(20.0)));
        let kubelet: Vec<FreeFloor> = kubelet.into_iter().collect();
        assert_eq!(
            auto.bytes(tmp.path(), &kubelet, true),
            (pct(20.0) + pct(5.0)).max(AUTO_MINIMUM)
        );
        std::fs::write(&config, "evictionHard:\n  nodefs.available: 3Gi\n").unwrap();
        assert_eq!(
            auto.bytes(
                tmp.path(),
                &KubeletConfig::File(config.clone()).thresholds(Path::new("/nonexistent")),
                true
            ),
            ((3u64 << 30) + pct(5.0)).max(AUTO_MINIMUM)
        );
        assert_eq!(kubelet_nodefs_threshold(&tmp.path().join("missing")), None);
        assert_eq!(FreeFloor::Bytes(7).bytes(tmp.path(), &kubelet, true), 7);
    }

    /// A recorded `/proc`: `pid`'s command line and, under its root, `files`.
    fn process(proc: &Path, pid: u32, args: &[&str], files: &[(&str, &str)]) {
        let dir = proc.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmdline = args.join("\0");
        cmdline.push('\0');
        std::fs::write(dir.join("cmdline"), cmdline).unwrap();
        for (path, text) in files {
            let file = dir.join("root").join(path.trim_start_matches('/'));
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
    }

    #[test]
    fn the_running_kubelets_flags_and_config_give_the_threshold() {
        let tmp = tempfile::tempdir().unwrap();
        let proc = tmp.path();
        std::fs::create_dir_all(proc.join("self")).unwrap();
        process(proc, 1, &["/sbin/init"], &[]);
        let running = KubeletConfig::Running;
        assert_eq!(running.thresholds(proc), vec![], "no kubelet, no threshold");

        // The config file is read through the kubelet's own root, where it names it.
        process(
            proc,
            200,
            &[
                "/usr/bin/kubelet",
                "--config",
                "/etc/k/kubelet.yaml",
                "--v=2",
            ],
            &[(
                "/etc/k/kubelet.yaml",
                "evictionHard:\n  nodefs.available: 7%\n",
            )],
        );
        assert_eq!(running.thresholds(proc), vec![FreeFloor::Percent(7.0)]);

        // The flag wins over the file; several kubelets: the highest threshold counts.
        process(
            proc,
            300,
            &[
                "/opt/bin/kubelet-v1.37",
                "--config=/etc/k/kubelet.yaml",
                "--eviction-hard=memory.available<100Mi,nodefs.available<12Gi",
            ],
            &[(
                "/etc/k/kubelet.yaml",
                "evictionHard:\n  nodefs.available: 1%\n",
            )],
        );
        let found = running.thresholds(proc);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.contains(&FreeFloor::Bytes(12 << 30)), "{found:?}");
        let size = filesystem_size(tmp.path()).unwrap();
        let margin = (size as f64 * AUTO_MARGIN_PERCENT / 100.0) as u64;
        let seven = (size as f64 * 7.0 / 100.0) as u64;
        assert_eq!(
            FreeFloor::Auto.bytes(tmp.path(), &found, true),
            ((12u64 << 30).max(seven) + margin).max(AUTO_MINIMUM)
        );

        // Not a kubelet: ignored whatever its flags.
        let only_other = tempfile::tempdir().unwrap();
        process(
            only_other.path(),
            400,
            &["/bin/kubectl", "--eviction-hard=nodefs.available<50%"],
            &[],
        );
        assert_eq!(running.thresholds(only_other.path()), vec![]);
        assert_eq!("auto".parse(), Ok(KubeletConfig::Running));
        assert_eq!(
            "/etc/kubelet.yaml".parse(),
            Ok(KubeletConfig::File("/etc/kubelet.yaml".into()))
        );
    }
}
