//! Standalone served to the real `kubectl`: crashes of real processes on the real kernel become
//! `Coredump` objects that kubectl lists, watches, explains, downloads and deletes, with proper
//! `Status` errors, certificate authentication, and nothing lost across a restart.

// Test code: a failed step should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Standalone, crasher};
use coredump_api::Coredump;
use coredump_testkit::archive::untar_gz;
use coredump_testkit::poll::wait_for;

const GROUP_PATH: &str = "/apis/coredump.fujitsu.com/v1alpha1";

fn start() -> Standalone {
    Standalone::start(&["--listen", "127.0.0.1:0"])
}

/// Crashes a process and waits for its object through kubectl.
fn crash_and_get(sa: &Standalone, seed: u64) -> Coredump {
    let crash = crasher(2, seed, "mixed", "segv", false);
    let pid = crash.pid;
    crash.wait(Duration::from_secs(30));
    wait_for(
        &format!("coredump of pid {pid}"),
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let out = sa.kubectl_ok(&["get", "coredumps", "-A", "-o", "json"]);
            let list: serde_json::Value = serde_json::from_str(&out).unwrap();
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["spec"]["pid"] == pid)
                .map(|i| serde_json::from_value(i.clone()).unwrap())
        },
    )
    .unwrap()
}

#[test]
fn kubectl_lists_explains_downloads_and_deletes_real_crashes() {
    let sa = start();

    let resources = sa.kubectl_ok(&["api-resources", "--api-group=coredump.fujitsu.com"]);
    assert!(
        resources.contains("coredumps") && resources.contains("coredumpendpoints"),
        "{resources}"
    );
    assert!(
        resources.contains("Coredump") && resources.contains("CoredumpEndpoint"),
        "{resources}"
    );

    let obj = crash_and_get(&sa, 21);
    let name = obj.metadata.name.clone();
    assert_eq!(obj.metadata.namespace, "host");
    assert!(!obj.metadata.uid.is_empty() && !obj.metadata.resource_version.is_empty());

    // Table output names the crash and its signal.
    let table = sa.kubectl_ok(&["get", "coredumps", "-A"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("NAME") && header.contains("SIGNAL"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("SIGSEGV"), "{row}");

    let yaml = sa.kubectl_ok(&["get", "coredump", "-n", "host", &name, "-o", "yaml"]);
    assert!(
        yaml.contains("kind: Coredump") && yaml.contains(&format!("pid: {}", obj.spec.pid)),
        "{yaml}"
    );

    let explain = sa.kubectl_ok(&["explain", "coredump.spec"]);
    assert!(
        explain.contains("signal") && explain.contains("executable"),
        "{explain}"
    );

    // The core through the API equals `coredump-detector export`, byte for byte.
    let exported = sa.export(&name);
    let (ok, core, err) = sa.kubectl(&[
        "get",
        "--raw",
        &format!("{GROUP_PATH}/namespaces/host/coredumps/{name}/core"),
    ]);
    assert!(ok, "{err}");
    assert_eq!(core.len(), exported.len());
    assert!(core == exported, "core subresource differs from export");

    // A CoredumpEndpoint for the host "pod" serves the seed's tar.gz dump.
    let endpoint = sa.data().join("endpoint.yaml");
    std::fs::write(
        &endpoint,
        "apiVersion: coredump.fujitsu.com/v1alpha1\nkind: CoredumpEndpoint\nmetadata:\n  name: host\n  namespace: host\nspec:\n  podUID: host\n",
    )
    .unwrap();
    sa.kubectl_ok(&["create", "-f", endpoint.to_str().unwrap()]);
    let (ok, tgz, err) = sa.kubectl(&[
        "get",
        "--raw",
        &format!("{GROUP_PATH}/namespaces/host/coredumpendpoints/host/dump"),
    ]);
    assert!(ok, "{err}");
    let entries = untar_gz(&tgz).unwrap();
    let blob = &obj.status.blob_path;
    let (_, zst) = entries.iter().find(|(p, _)| p == blob).unwrap_or_else(|| {
        panic!(
            "{blob} not in dump: {:?}",
            entries.iter().map(|e| &e.0).collect::<Vec<_>>()
        )
    });
    assert!(
        blob.starts_with("host/host/crasher/"),
        "seed layout <ns>/<podUID>/<container>/: {blob}"
    );
    assert!(
        zstd::decode_all(&zst[..]).unwrap() == exported,
        "dump entry decompresses to the exported core"
    );

    // Deleting the object deletes its blob.
    let blob_file = sa.data().join("blobs").join(blob);
    assert!(blob_file.exists());
    sa.kubectl_ok(&["delete", "coredump", "-n", "host", &name]);
    let (ok, _, err) = sa.kubectl(&["get", "coredump", "-n", "host", &name]);
    assert!(!ok && err.contains("NotFound"), "{err}");
    assert!(!blob_file.exists(), "blob removed with its object");
}

#[test]
fn kubectl_watch_sees_a_crash_appear() {
    let sa = start();
    let mut watch = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(sa.kubeconfig())
        .arg("--cache-dir")
        .arg(sa.data().join("kubectl-cache"))
        .args([
            "get",
            "coredumps",
            "-A",
            "-w",
            "--request-timeout",
            "60s",
            "-o",
            "name",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = watch.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut seen = String::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
            if seen.contains("crasher-") {
                break;
            }
        }
        seen
    });
    // Give the watch a moment to be established before the crash (the watch replays current
    // objects anyway, so this only makes the test about a live event).
    std::thread::sleep(Duration::from_millis(500));
    let crash = crasher(1, 31, "text", "segv", false);
    let pid = crash.pid;
    crash.wait(Duration::from_secs(30));
    let seen = reader.join().unwrap();
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        seen.contains(&format!("crasher-{pid}-")),
        "watch output: {seen:?}"
    );
}

#[test]
fn errors_come_back_as_kubernetes_status() {
    let sa = start();
    let (ok, _, err) = sa.kubectl(&["get", "coredumps", "-n", "host", "nope"]);
    assert!(!ok && err.contains("Error from server (NotFound)"), "{err}");

    let (ok, _, err) = sa.kubectl(&[
        "get",
        "--raw",
        &format!("{GROUP_PATH}/namespaces/host/frobnicators"),
    ]);
    assert!(!ok && err.contains("NotFound"), "{err}");

    // Bad JSON body.
    let bad = sa.data().join("bad.json");
    std::fs::write(&bad, "{ this is not json").unwrap();
    let (ok, _, err) = sa.kubectl(&[
        "create",
        "--raw",
        &format!("{GROUP_PATH}/namespaces/host/coredumpendpoints"),
        "-f",
        bad.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("BadRequest"), "{err}");

    // Missing pod name.
    let unnamed = sa.data().join("unnamed.yaml");
    std::fs::write(&unnamed, "apiVersion: coredump.fujitsu.com/v1alpha1\nkind: CoredumpEndpoint\nmetadata:\n  namespace: host\nspec:\n  podUID: host\n").unwrap();
    let (ok, _, err) = sa.kubectl(&["create", "-f", unnamed.to_str().unwrap()]);
    assert!(
        !ok && (err.contains("name") || err.contains("Invalid")),
        "{err}"
    );

    // Conflicting update: a stale resourceVersion.
    let ep = sa.data().join("ep.yaml");
    std::fs::write(&ep, "apiVersion: coredump.fujitsu.com/v1alpha1\nkind: CoredumpEndpoint\nmetadata:\n  name: web\n  namespace: host\nspec:\n  podUID: host\n").unwrap();
    sa.kubectl_ok(&["create", "-f", ep.to_str().unwrap()]);
    let current: serde_json::Value = serde_json::from_str(&sa.kubectl_ok(&[
        "get",
        "coredumpendpoint",
        "-n",
        "host",
        "web",
        "-o",
        "json",
    ]))
    .unwrap();
    sa.kubectl_ok(&[
        "label",
        "coredumpendpoint",
        "-n",
        "host",
        "web",
        "touched=yes",
    ]);
    let mut stale = current.clone();
    stale["metadata"]["labels"] = serde_json::json!({"stale": "yes"});
    let stale_path = sa.data().join("stale.json");
    std::fs::write(&stale_path, serde_json::to_vec(&stale).unwrap()).unwrap();
    let (ok, _, err) = sa.kubectl(&["replace", "-f", stale_path.to_str().unwrap()]);
    assert!(!ok && err.contains("Conflict"), "{err}");

    // Path traversal in ?container= is refused.
    let (ok, _, err) = sa.kubectl(&[
        "get",
        "--raw",
        &format!("{GROUP_PATH}/namespaces/host/coredumpendpoints/web/dump?container=../../etc"),
    ]);
    assert!(!ok && err.contains("BadRequest"), "{err}");
}

#[test]
fn clients_without_the_certificate_are_refused() {
    let sa = start();
    let kubeconfig: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sa.kubeconfig()).unwrap()).unwrap();
    let server = kubeconfig["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap()
        .to_string();
    // curl: kubectl answers a 401 by prompting for a password, which hides the status.
    let curl = |path: &str| {
        let out = Command::new("curl")
            .args(["-sk", "-w", "\n%{http_code}", &format!("{server}{path}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let denied = curl(&format!("{GROUP_PATH}/coredumps"));
    assert!(denied.ends_with("\n401"), "{denied}");
    let status: serde_json::Value = serde_json::from_str(denied.lines().next().unwrap()).unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("Unauthorized"))
    );
    // Health probes stay open for kubelet.
    assert_eq!(curl("/healthz"), "ok\n200");
}

#[test]
fn restart_keeps_every_record_and_blob() {
    let mut sa = start();
    let a = crash_and_get(&sa, 41);
    let b = crash_and_get(&sa, 42);
    let core_a = sa.export(&a.metadata.name);
    assert!(sa.stop());
    sa.spawn();
    let list: serde_json::Value =
        serde_json::from_str(&sa.kubectl_ok(&["get", "coredumps", "-n", "host", "-o", "json"]))
            .unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&a.metadata.name.as_str()) && names.contains(&b.metadata.name.as_str()),
        "{names:?}"
    );
    let again: Coredump = serde_json::from_str(&sa.kubectl_ok(&[
        "get",
        "coredump",
        "-n",
        "host",
        &a.metadata.name,
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        again.metadata.uid, a.metadata.uid,
        "same object, not a re-creation"
    );
    let (ok, core, err) = sa.kubectl(&[
        "get",
        "--raw",
        &format!(
            "{GROUP_PATH}/namespaces/host/coredumps/{}/core",
            a.metadata.name
        ),
    ]);
    assert!(ok, "{err}");
    assert!(core == core_a, "core unchanged across restart");
}
