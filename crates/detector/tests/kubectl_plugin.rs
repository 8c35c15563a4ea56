//! The `kubectl coredump` plugin end to end: a real crash on the real kernel captured by
//! standalone, then the real `kubectl` finding `kubectl-coredump` on `PATH` and listing,
//! showing and downloading it, byte for byte equal to `coredump-detector export`, and failing
//! cleanly (non-zero exit, the object named, no file left) for a missing object. One test per
//! command and case, each on its own standalone and crash (one failure hides no other).

// Test code: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use common::{Standalone, crasher, plugin, plugin_dir};
use coredump_api::Coredump;
use coredump_testkit::archive::untar_gz;

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cdd-plugin-out-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

/// The directory holding `kubectl-coredump`, built once per test binary.
fn path_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(plugin_dir).path()
}

/// Standalone with one real crash recorded, its exported core, and an empty working directory.
struct Crashed {
    sa: Standalone,
    kubeconfig: PathBuf,
    record: Coredump,
    name: String,
    exported: Vec<u8>,
    cwd: tempfile::TempDir,
}

impl Crashed {
    fn new() -> Crashed {
        let sa = Standalone::start(&["--listen", "127.0.0.1:0"]);
        let kubeconfig = sa.kubeconfig();
        let crash = crasher(2, 41, "mixed", "segv", false);
        let pid = crash.pid;
        crash.wait(Duration::from_secs(30));
        let record = sa.wait_record(pid, Duration::from_secs(30));
        let name = record.metadata.name.clone();
        assert_eq!(record.metadata.namespace, "host");
        let exported = sa.export(&name);
        assert_eq!(exported.len() as u64, record.status.core_size);
        Crashed {
            sa,
            kubeconfig,
            record,
            name,
            exported,
            cwd: tempdir(),
        }
    }

    /// `kubectl coredump ARGS` with this standalone's kubeconfig, in the working directory.
    fn plugin(&self, args: &[&str]) -> (bool, String, String) {
        plugin(path_dir(), &self.kubeconfig, self.cwd.path(), args)
    }

    fn cwd(&self) -> &Path {
        self.cwd.path()
    }

    fn lists_name(&self, table: &str) -> bool {
        table
            .lines()
            .any(|l| l.split_whitespace().next() == Some(self.name.as_str()))
    }
}

/// `list -A`: the header and the crash's row, cell by cell.
#[test]
fn list_all_namespaces_shows_the_crash() {
    let c = Crashed::new();
    let (ok, table, err) = c.plugin(&["list", "-A"]);
    assert!(ok, "{err}\nlog:\n{}", c.sa.log());
    eprintln!("kubectl coredump list -A:\n{table}");
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "NAME",
            "POD",
            "CONTAINER",
            "SIGNAL",
            "EXECUTABLE",
            "SIZE",
            "STATE",
            "SIGNATURE",
            "AGE"
        ]
    );
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(c.name.as_str()))
        .unwrap_or_else(|| panic!("{} not listed:\n{table}", c.name))
        .split_whitespace()
        .collect();
    let pod = c.record.spec.pod_name.clone().unwrap_or("<none>".into());
    assert_eq!(row[0], "host", "{table}");
    assert_eq!(row[2], pod, "{table}");
    assert_eq!(row[4], "SIGSEGV", "{table}");
    assert_eq!(row[5], c.record.spec.executable, "{table}");
    assert_eq!(
        row[6],
        coredump_api::table::human_bytes(c.record.status.core_size),
        "{table}"
    );
    assert_eq!(row[7], "Stored", "{table}");
}

/// `--pod` filters on the server; an unknown pod lists nothing, and says where it looked.
#[test]
fn list_by_pod_filters_on_the_server() {
    let c = Crashed::new();
    if let Some(pod) = c.record.spec.pod_name.as_deref() {
        let (ok, table, err) = c.plugin(&["list", "-n", "host", "--pod", pod]);
        assert!(ok, "{err}");
        assert!(c.lists_name(&table), "{table}");
    }
    let (ok, table, err) = c.plugin(&["list", "-n", "host", "--pod", "no-such-pod"]);
    assert!(ok, "{err}");
    assert_eq!(table, "No coredumps found in host namespace.\n");
}

/// `--kubeconfig` wins over `$KUBECONFIG`, and `--context` picks one of its contexts.
#[test]
fn kubeconfig_and_context_flags_pick_the_cluster() {
    let c = Crashed::new();
    let parsed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&c.kubeconfig).unwrap()).unwrap();
    let context = parsed["current-context"].as_str().unwrap().to_owned();
    assert!(!context.is_empty(), "{parsed}");
    let explicit = c.kubeconfig.to_str().unwrap();
    let nowhere = Path::new("/nonexistent/kubeconfig");
    let (ok, table, err) = plugin(
        path_dir(),
        nowhere,
        c.cwd(),
        &[
            "list",
            "-n",
            "host",
            "--kubeconfig",
            explicit,
            "--context",
            &context,
        ],
    );
    assert!(ok, "{err}");
    assert!(c.lists_name(&table), "{table}");
    let (ok, _, err) = plugin(
        path_dir(),
        nowhere,
        c.cwd(),
        &[
            "list",
            "--kubeconfig",
            explicit,
            "--context",
            "no-such-context",
        ],
    );
    assert!(!ok && err.contains("no-such-context"), "{err}");
}

/// `get -o json` is the object the server stores; plain `get` prints it as YAML.
#[test]
fn get_prints_the_stored_object() {
    let c = Crashed::new();
    let (ok, json, err) = c.plugin(&["get", &c.name, "-n", "host", "-o", "json"]);
    assert!(ok, "{err}");
    let got: Coredump = serde_json::from_str(&json).unwrap();
    assert_eq!(got.metadata.name, c.name);
    assert_eq!(got.spec, c.record.spec);
    assert_eq!(got.status, c.record.status);
    let (ok, yaml, err) = c.plugin(&["get", &c.name, "-n", "host"]);
    assert!(ok, "{err}");
    assert!(
        yaml.contains("kind: Coredump") && yaml.contains(&format!("pid: {}", c.record.spec.pid)),
        "{yaml}"
    );
}

/// `download NAME -o F`: the exported bytes, verified, and nothing else left in the directory;
/// without `-o`: `NAME.core` in the working directory.
#[test]
fn download_writes_the_exported_core() {
    let c = Crashed::new();
    let out_dir = tempdir();
    let file = out_dir.path().join("crash.core");
    let (ok, _, err) = c.plugin(&[
        "download",
        &c.name,
        "-n",
        "host",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{err}\nlog:\n{}", c.sa.log());
    assert!(err.contains("SHA-256 verified"), "{err}");
    let downloaded = std::fs::read(&file).unwrap();
    assert_eq!(downloaded.len(), c.exported.len());
    assert!(downloaded == c.exported, "download differs from export");
    assert_eq!(names_in(out_dir.path()), ["crash.core"]);

    let (ok, _, err) = c.plugin(&["download", &c.name, "-n", "host"]);
    assert!(ok, "{err}");
    assert_eq!(names_in(c.cwd()), [format!("{}.core", c.name)]);
    assert!(std::fs::read(c.cwd().join(format!("{}.core", c.name))).unwrap() == c.exported);
}

/// A missing object: non-zero exit, the object and namespace named, no file at all.
#[test]
fn download_of_a_missing_coredump_fails_cleanly() {
    let c = Crashed::new();
    let (ok, _, err) = c.plugin(&["download", "missing", "-n", "host"]);
    assert!(!ok, "download of a missing coredump succeeded");
    assert!(
        err.contains("\"missing\"") && err.contains("\"host\"") && err.contains("NotFound"),
        "{err}"
    );
    assert!(names_in(c.cwd()).is_empty(), "{:?}", names_in(c.cwd()));
}

/// `--pod` before the CoredumpEndpoint exists: refused with the way to create it. With the
/// endpoint: the tar.gz holds the blob, which decompresses to the exported core.
#[test]
fn download_by_pod_needs_the_endpoint_then_gives_the_dump() {
    let c = Crashed::new();
    let (ok, _, err) = c.plugin(&["download", "--pod", "host", "-n", "host"]);
    assert!(!ok);
    assert!(
        err.contains("no CoredumpEndpoint \"host\"") && err.contains("kubectl create -f -"),
        "{err}"
    );
    assert!(names_in(c.cwd()).is_empty(), "{:?}", names_in(c.cwd()));

    let endpoint = c.sa.data().join("endpoint.yaml");
    std::fs::write(
        &endpoint,
        "apiVersion: coredump.fujitsu.com/v1alpha1\nkind: CoredumpEndpoint\nmetadata:\n  name: host\n  namespace: host\nspec:\n  podUID: host\n",
    )
    .unwrap();
    c.sa.kubectl_ok(&["create", "-f", endpoint.to_str().unwrap()]);
    let (ok, _, err) = c.plugin(&["download", "--pod", "host", "-n", "host"]);
    assert!(ok, "{err}\nlog:\n{}", c.sa.log());
    assert_eq!(names_in(c.cwd()), ["host-coredump.tar.gz"]);
    let entries = untar_gz(&std::fs::read(c.cwd().join("host-coredump.tar.gz")).unwrap()).unwrap();
    let blob = &c.record.status.blob_path;
    let (_, zst) = entries.iter().find(|(p, _)| p == blob).unwrap_or_else(|| {
        panic!(
            "{blob} not in dump: {:?}",
            entries.iter().map(|e| &e.0).collect::<Vec<_>>()
        )
    });
    assert!(
        zstd::decode_all(&zst[..]).unwrap() == c.exported,
        "dump entry decompresses to the exported core"
    );
}
