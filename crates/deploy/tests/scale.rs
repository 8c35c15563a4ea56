//! The rendered manifest of a multi-node install (issue 13, points 4 and 5): the shared core
//! volume (`--blob-volume-claim`) or a bucket instead of the node's hostPath, etcd's data on a
//! claim or an existing etcd cluster (`--etcd-storage-class`, `--etcd-servers`), and API server
//! replicas (`--api-replicas`). Each test pins the exact fields the flag changes, and each
//! refused combination is refused by name before anything is written.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod rendered;

use coredump_deploy::{CaKeys, DeployError, DeployOptions, write};
use k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource;
use rendered::{args, cores_host_path, mounts, pod, rendered, volume_names};

const API: (&str, &str) = ("Deployment", "dumps");
const GC: (&str, &str) = ("Deployment", "coredump-gc");
const AGENT: (&str, &str) = ("DaemonSet", "kcdt-ds");

fn opts() -> DeployOptions {
    DeployOptions::new("ops", "dumps")
}

/// `write` refuses `opts` for `option` with a reason containing `why`, writing nothing.
fn refused(opts: DeployOptions, option: &str, why: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    match write(&dir, &opts, CaKeys::Discard) {
        Err(DeployError::InvalidOption {
            option: got,
            reason,
            ..
        }) => {
            assert_eq!(got, option, "{reason}");
            assert!(reason.contains(why), "{option}: {reason}");
        }
        other => panic!("{option}: {other:?}"),
    }
    assert!(!dir.exists(), "{option}: wrote {}", dir.display());
}

#[test]
fn a_claim_replaces_the_host_path_in_the_agent_the_api_server_and_the_gc() {
    let mut o = opts();
    o.blob_volume_claim = Some("cores-rwx".into());
    let docs = rendered(&o);
    let claim = Some(PersistentVolumeClaimVolumeSource {
        claim_name: "cores-rwx".into(),
        read_only: None,
    });
    for (kind, name) in [API, GC, AGENT] {
        let pod = pod(&docs, kind, name);
        let cores: Vec<_> = pod
            .volumes
            .iter()
            .flatten()
            .filter(|v| v.name == "coredump-backend")
            .collect();
        assert_eq!(cores.len(), 1, "{name}");
        assert_eq!(cores[0].persistent_volume_claim, claim, "{name}");
        assert_eq!(cores[0].host_path, None, "{name}");
        assert!(
            mounts(&pod).contains(&("coredump-backend".into(), "/coredump".into())),
            "{name}"
        );
        let args = args(&docs, kind, name);
        for flag in ["--local-path=/coredump", "--backend-kind=local"] {
            assert!(args.contains(&flag.to_string()), "{name}: {args:?}");
        }
        assert!(
            !args.iter().any(|a| a.starts_with("--blob-store")),
            "{args:?}"
        );
    }
    // The GC's state stays beside the cores, on the claim that outlives every pod.
    assert!(
        !args(&docs, GC.0, GC.1)
            .iter()
            .any(|a| a.starts_with("--state-file"))
    );
}

#[test]
fn with_a_bucket_the_api_server_and_the_gc_mount_no_core_volume() {
    let mut o = opts();
    o.blob_store = "s3://cores/a".into();
    let docs = rendered(&o);
    let api = pod(&docs, API.0, API.1);
    assert_eq!(volume_names(&api), ["tls", "etcd-client"]);
    assert_eq!(
        mounts(&api),
        [
            ("tls".to_string(), "/var/run/coredump".to_string()),
            ("etcd-client".into(), "/var/run/coredump-etcd".into())
        ]
    );
    let gc = pod(&docs, GC.0, GC.1);
    assert_eq!(volume_names(&gc), ["gc-state"]);
    assert!(gc.volumes.as_ref().unwrap()[0].empty_dir.is_some());
    assert_eq!(
        mounts(&gc),
        [("gc-state".to_string(), "/var/lib/coredump-gc".to_string())]
    );
    assert_eq!(
        args(&docs, GC.0, GC.1),
        [
            "gc",
            "--gc-threshold=30m",
            "--max-age=720h",
            "--metrics-bind-address=0.0.0.0:9103",
            "--blob-store=s3://cores/a",
            "--state-file=/var/lib/coredump-gc/state.json",
        ]
    );
    for (kind, name) in [API, GC] {
        let args = args(&docs, kind, name);
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with("--local-path") || a.starts_with("--backend-kind")),
            "{name}: {args:?}"
        );
    }
    // The agent still measures its free-space floor on the node's disk.
    assert_eq!(
        cores_host_path(&pod(&docs, AGENT.0, AGENT.1)).as_deref(),
        Some("/var/lib/coredump-detector/cores")
    );
}

#[test]
fn the_default_keeps_the_host_path_everywhere() {
    let docs = rendered(&opts());
    for (kind, name) in [API, GC, AGENT] {
        assert_eq!(
            cores_host_path(&pod(&docs, kind, name)).as_deref(),
            Some("/var/lib/coredump-detector/cores"),
            "{name}"
        );
    }
}

#[test]
fn a_claim_and_a_bucket_together_are_refused() {
    let mut o = opts();
    o.blob_volume_claim = Some("cores-rwx".into());
    o.blob_store = "s3://cores".into();
    refused(
        o,
        "--blob-volume-claim",
        "cannot be combined with --blob-store",
    );
    let mut o = opts();
    o.blob_volume_claim = Some("Bad_Claim".into());
    refused(o, "--blob-volume-claim", "");
}
