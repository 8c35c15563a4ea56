//! The `kubectl coredump` plugin end to end: a real crash on the real kernel captured by
//! standalone, then the real `kubectl` finding `kubectl-coredump` on `PATH` and listing,
//! showing and downloading it, byte for byte equal to `coredump-detector export`, and failing
//! cleanly (non-zero exit, the object named, no file left) for a missing object.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
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

#[test]
fn kubectl_coredump_lists_gets_and_downloads_a_real_crash() {
    let path_dir = plugin_dir();
    let sa = Standalone::start(&["--listen", "127.0.0.1:0"]);
    let kubeconfig = sa.kubeconfig();
    let out_dir = tempdir();
    let out = out_dir.path();
    let cwd_dir = tempdir();
    let cwd = cwd_dir.path();

    let crash = crasher(2, 41, "mixed", "segv", false);
    let pid = crash.pid;
    crash.wait(Duration::from_secs(30));
    let record = sa.wait_record(pid, Duration::from_secs(30));
    let name = record.metadata.name.clone();
    assert_eq!(record.metadata.namespace, "host");
    let exported = sa.export(&name);
    assert_eq!(exported.len() as u64, record.status.core_size);

    // list -A: header and the crash's row, cell by cell.
    let (ok, table, err) = plugin(path_dir.path(), &kubeconfig, cwd, &["list", "-A"]);
    assert!(ok, "{err}\nlog:\n{}", sa.log());
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
        .find(|l| l.split_whitespace().nth(1) == Some(name.as_str()))
        .unwrap_or_else(|| panic!("{name} not listed:\n{table}"))
        .split_whitespace()
        .collect();
    let pod = record.spec.pod_name.clone().unwrap_or("<none>".into());
    assert_eq!(row[0], "host", "{table}");
    assert_eq!(row[2], pod, "{table}");
    assert_eq!(row[4], "SIGSEGV", "{table}");
    assert_eq!(row[5], record.spec.executable, "{table}");
    assert_eq!(
        row[6],
        coredump_api::table::human_bytes(record.status.core_size),
        "{table}"
    );
    assert_eq!(row[7], "Stored", "{table}");

    // --pod filters on the server; an unknown pod lists nothing, and says where it looked.
    if let Some(pod) = record.spec.pod_name.as_deref() {
        let (ok, table, err) = plugin(
            path_dir.path(),
            &kubeconfig,
            cwd,
            &["list", "-n", "host", "--pod", pod],
        );
        assert!(ok, "{err}");
        assert!(
            table
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&name)),
            "{table}"
        );
    }
    let (ok, table, err) = plugin(
        path_dir.path(),
        &kubeconfig,
        cwd,
        &["list", "-n", "host", "--pod", "no-such-pod"],
    );
    assert!(ok, "{err}");
    assert_eq!(table, "No coredumps found in host namespace.\n");

    // --kubeconfig wins over $KUBECONFIG, and --context picks one of its contexts.
    let parsed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&kubeconfig).unwrap()).unwrap();
    let context = parsed["current-context"].as_str().unwrap().to_owned();
    assert!(!context.is_empty(), "{parsed}");
    let explicit = kubeconfig.to_str().unwrap();
    let nowhere = Path::new("/nonexistent/kubeconfig");
    let (ok, table, err) = plugin(
        path_dir.path(),
        nowhere,
        cwd,
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
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&name)),
        "{table}"
    );
    let (ok, _, err) = plugin(
        path_dir.path(),
        nowhere,
        cwd,
        &[
            "list",
            "--kubeconfig",
            explicit,
            "--context",
            "no-such-context",
        ],
    );
    assert!(!ok && err.contains("no-such-context"), "{err}");

    // get -o json is the object the server stores.
    let (ok, json, err) = plugin(
        path_dir.path(),
        &kubeconfig,
        cwd,
        &["get", &name, "-n", "host", "-o", "json"],
    );
    assert!(ok, "{err}");
    let got: Coredump = serde_json::from_str(&json).unwrap();
    assert_eq!(got.metadata.name, name);
    assert_eq!(got.spec, record.spec);
    assert_eq!(got.status, record.status);
    let (ok, yaml, err) = plugin(
        path_dir.path(),
        &kubeconfig,
        cwd,
        &["get", &name, "-n", "host"],
    );
    assert!(ok, "{err}");
    assert!(
        yaml.contains("kind: Coredump") && yaml.contains(&format!("pid: {pid}")),
        "{yaml}"
    );

    // download NAME -o F: the exported bytes, verified, and nothing else left in the directory.
    let file = out.join("crash.core");
    let (ok, _, err) = plugin(
        path_dir.path(),
        &kubeconfig,
        cwd,
        &[
            "download",
            &name,
            "-n",
            "host",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}\nlog:\n{}", sa.log());
    assert!(err.contains("SHA-256 verified"), "{err}");
    let downloaded = std::fs::read(&file).unwrap();
    assert_eq!(downloaded.len(), exported.len());
    assert!(downloaded == exported, "download differs from export");
    assert_eq!(names_in(out), ["crash.core"]);

    // Without -o: NAME.core in the working directory.
    let (ok, _, err) = plugin(
        path_dir.path(),
        &kubeconfig,
        cwd,
        &["download", &name, "-n", "host"],
    );
    assert!(ok, "{err}");
    assert!(std::fs::read(cwd.join(format!("{name}.core"))).unwrap() == exported);
    std::fs::remove_file(cwd.join(format!("{name}.core"))).unwrap();

    // A missing object: non-zero exit, the object and namespace named, no file at all.
    let (ok, _, err) = plugin(
        path_dir.path(),
        &kubeconfig,
        cwd,
        &["download", "missing", "-n", "host"],
    );
    assert!(!ok, "download of a missing coredump succeeded");
    assert!(
        err.contains("\"missing\"") && err.contains("\"host\"") && err.contains("NotFound"),
        "{err}"
    );
    assert!(names_in(cwd).is_empty(), "{:?}", names_in(cwd));

    // --pod before the CoredumpEndpoint exists: refused with the way to create it.
    let (ok, _, err) = plugin(
        path_dir.path(),
        &kubeconfig,
        cwd,
        &["download", "--pod", "host", "-n", "host"],
    );
    assert!(!ok);
    assert!(
        err.contains("no CoredumpEndpoint \"host\"") && err.contains("kubectl create -f -"),
        "{err}"
    );
    assert!(names_in(cwd).is_empty(), "{:?}", names_in(cwd));

    // With the endpoint: the tar.gz holds the blob, which decompresses to the exported core.
    let endpoint = sa.data().join("endpoint.yaml");
    std::fs::write(
        &endpoint,
        "apiVersion: coredump.fujitsu.com/v1alpha1\nkind: CoredumpEndpoint\nmetadata:\n  name: host\n  namespace: host\nspec:\n  podUID: host\n",
    )
    .unwrap();
    sa.kubectl_ok(&["create", "-f", endpoint.to_str().unwrap()]);
    let (ok, _, err) = plugin(
        path_dir.path(),
        &kubeconfig,
        cwd,
        &["download", "--pod", "host", "-n", "host"],
    );
    assert!(ok, "{err}\nlog:\n{}", sa.log());
    assert_eq!(names_in(cwd), ["host-coredump.tar.gz"]);
    let entries = untar_gz(&std::fs::read(cwd.join("host-coredump.tar.gz")).unwrap()).unwrap();
    let blob = &record.status.blob_path;
    let (_, zst) = entries.iter().find(|(p, _)| p == blob).unwrap_or_else(|| {
        panic!(
            "{blob} not in dump: {:?}",
            entries.iter().map(|e| &e.0).collect::<Vec<_>>()
        )
    });
    assert!(
        zstd::decode_all(&zst[..]).unwrap() == exported,
        "dump entry decompresses to the exported core"
    );
}
