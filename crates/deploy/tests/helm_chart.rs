//! The committed chart `deploy/helm/coredump-detector` is what `deploy --helm-chart` writes for
//! the defaults (`deploy default coredump DIR --helm-chart`), byte for byte: a drift between
//! the render code and the chart fails here. After an intended change:
//! `UPDATE_GOLDEN=1 cargo test -p coredump-deploy --test helm_chart`, then review the diff.
//! With a `helm` binary (`scripts/control-plane/build.sh helm`), `helm template` of the chart
//! renders exactly the objects `deploy` renders for the same values (certificates aside).
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::path::PathBuf;

use coredump_deploy::DeployOptions;
use coredump_deploy::helm::chart_files;
use serde_json::Value;

fn chart_dir() -> PathBuf {
    common::repo_root().join("deploy/helm/coredump-detector")
}

#[test]
fn committed_chart_matches_the_render_code() {
    let files = chart_files(&DeployOptions::new("default", "coredump")).unwrap();
    let dir = chart_dir();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        coredump_deploy::helm::write_chart(&dir, &DeployOptions::new("default", "coredump"))
            .unwrap();
    }
    for (relative, text) in files {
        let committed = std::fs::read_to_string(dir.join(&relative)).unwrap_or_default();
        assert!(
            committed == text,
            "{} differs from the render code; if intended, run UPDATE_GOLDEN=1 cargo test -p \
             coredump-deploy --test helm_chart\n--- rendered:\n{text}",
            relative.display()
        );
    }
}

/// Documents of a multi-document YAML stream (or kubectl's JSON), as JSON, keyed by kind/name,
/// with certificate material blanked (generated anew by each side).
fn objects(yaml: &str) -> std::collections::BTreeMap<String, Value> {
    let mut out = std::collections::BTreeMap::new();
    for doc in serde_saphyr::from_multiple::<Value>(yaml).unwrap() {
        let mut doc = doc;
        if doc.is_null() {
            continue;
        }
        if let Some(data) = doc.get_mut("data").and_then(Value::as_object_mut) {
            for v in data.values_mut() {
                *v = Value::String("CERT".into());
            }
        }
        if let Some(ca) = doc.pointer_mut("/spec/caBundle") {
            *ca = Value::String("CERT".into());
        }
        let key = format!("{}/{}", doc["kind"], doc["metadata"]["name"]);
        assert!(out.insert(key.clone(), doc).is_none(), "twice: {key}");
    }
    out
}

#[test]
fn helm_template_renders_what_deploy_renders() {
    let helm = coredump_testplane::helm::helm_binary().unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut opts = DeployOptions::new("on", "y");
    opts.create_namespace = false;
    opts.gc_threshold = "45m".into();
    opts.ns_disk_quota = "2Gi".into();
    opts.image = "registry.example/coredump-detector:1.2".into();
    opts.host_dir = "/srv/core dumps: x".into();
    opts.max_age = "0".into();
    opts.capture = coredump_capture::socket::CaptureMode::Auto;
    let out = std::process::Command::new(helm)
        .env("HELM_CACHE_HOME", home.path().join("c"))
        .env("HELM_CONFIG_HOME", home.path().join("f"))
        .env("HELM_DATA_HOME", home.path().join("d"))
        .args(["template", "r", chart_dir().to_str().unwrap(), "-n", "on"])
        .args([
            "--set-string",
            "service=y,gcThreshold=45m,nsDiskQuota=2Gi,maxAge=0",
        ])
        .args([
            "--set-string",
            "image=registry.example/coredump-detector:1.2",
        ])
        .args(["--set-string", "hostDir=/srv/core dumps: x,capture=auto"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let certs = coredump_deploy::generate_certs("on", "y").unwrap();
    let deployed = objects(&coredump_deploy::render(&opts, &certs).unwrap());
    let mut helm = objects(&String::from_utf8(out.stdout).unwrap());
    // `--max-age=0` is what the chart passes for 0 (the GC reads it as "never"); `deploy`
    // leaves the flag out.
    let gc = helm.get_mut("\"Deployment\"/\"coredump-gc\"").unwrap();
    let args = gc
        .pointer_mut("/spec/template/spec/containers/0/args")
        .and_then(Value::as_array_mut)
        .unwrap();
    assert_eq!(args[2], "--max-age=0");
    args.remove(2);
    assert_eq!(
        helm.keys().collect::<Vec<_>>(),
        deployed.keys().collect::<Vec<_>>()
    );
    for (key, object) in &deployed {
        assert_eq!(&helm[key], object, "{key}");
    }
}
