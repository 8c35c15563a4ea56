//! The rendered manifest of a multi-node install (issue 13, points 4 and 5): the shared core
//! volume (`--blob-volume-claim`) or a bucket instead of the node's hostPath, etcd's data on a
//! claim or an existing etcd cluster (`--etcd-storage-class`, `--etcd-servers`), and API server
//! replicas (`--api-replicas`). Each test pins the exact fields the flag changes, and each
//! refused combination is refused by name before anything is written.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod rendered;

use std::collections::BTreeMap;

use coredump_deploy::{CaKeys, DeployError, DeployOptions, write};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rendered::{args, cores_host_path, find, has, mounts, pod, rendered, volume_names};

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

#[test]
fn a_storage_class_gives_etcd_a_claim_template_instead_of_the_host_path() {
    let mut o = opts();
    o.etcd_storage_class = Some("fast-ssd".into());
    o.etcd_storage_size = "2Gi".into();
    let docs = rendered(&o);
    let etcd: StatefulSet = find(&docs, "StatefulSet", "etcd");
    let templates = etcd.spec.volume_claim_templates.clone().unwrap();
    assert_eq!(templates.len(), 1);
    let claim = &templates[0];
    assert_eq!(claim.metadata.name.as_deref(), Some("etcd-data-dir"));
    let spec = claim.spec.clone().unwrap();
    assert_eq!(spec.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
    assert_eq!(spec.storage_class_name.as_deref(), Some("fast-ssd"));
    assert_eq!(
        spec.resources.unwrap().requests,
        Some(BTreeMap::from([(
            "storage".to_string(),
            Quantity("2Gi".into())
        )]))
    );
    let pod = pod(&docs, "StatefulSet", "etcd");
    assert_eq!(volume_names(&pod), ["tls"]);
    assert!(mounts(&pod).contains(&("etcd-data-dir".into(), "/var/lib/etcd".into())));
}

#[test]
fn the_etcd_claim_size_takes_the_projects_quantity_grammar() {
    for (given, rendered_as) in [
        ("1Gi", "1Gi"),
        ("512Mi", "512Mi"),
        ("1.5Gi", "1536Mi"),
        ("1GB", "1000000000"),
        ("3000", "3000"),
        ("1Ti", "1Ti"),
    ] {
        let mut o = opts();
        o.etcd_storage_class = Some("standard".into());
        o.etcd_storage_size = given.into();
        let docs = rendered(&o);
        let doc: serde_json::Value = find(&docs, "StatefulSet", "etcd");
        assert_eq!(
            doc["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
            rendered_as,
            "{given}"
        );
    }
    for bad in ["lots", "1 Gi", "0", "-1Gi"] {
        let mut o = opts();
        o.etcd_storage_class = Some("standard".into());
        o.etcd_storage_size = bad.into();
        refused(o, "--etcd-storage-size", "");
    }
    let mut o = opts();
    o.etcd_storage_class = Some("Not_A_Class".into());
    refused(o, "--etcd-storage-class", "");
}

#[test]
fn the_default_etcd_keeps_its_host_path_and_no_template() {
    let docs = rendered(&opts());
    let etcd: StatefulSet = find(&docs, "StatefulSet", "etcd");
    assert_eq!(etcd.spec.volume_claim_templates, None);
    let pod = pod(&docs, "StatefulSet", "etcd");
    assert_eq!(volume_names(&pod), ["etcd-data-dir", "tls"]);
    assert_eq!(
        pod.volumes.unwrap()[0].host_path.as_ref().unwrap().path,
        "/var/lib/coredump-detector/etcd"
    );
}

#[test]
fn existing_etcd_servers_replace_the_bundled_etcd() {
    let mut o = opts();
    o.etcd_servers = vec![
        "https://etcd-0.db.example:2379".into(),
        "https://10.0.0.7:2379".into(),
    ];
    o.etcd_client_secret = Some("coredump-etcd-client".into());
    let docs = rendered(&o);
    for (kind, name) in [
        ("StatefulSet", "etcd"),
        ("Service", "etcd-svc"),
        ("Secret", "etcd-server-tls"),
        ("Secret", "etcd-client-tls"),
        ("NetworkPolicy", "etcd"),
    ] {
        assert!(!has(&docs, kind, name), "{kind} {name} is rendered");
    }
    for (kind, name) in [
        ("Service", "dumps"),
        ("Secret", "servercrt"),
        ("NetworkPolicy", "apiserver"),
    ] {
        assert!(has(&docs, kind, name), "{kind} {name} is missing");
    }
    assert_eq!(
        args(&docs, API.0, API.1)[..7],
        [
            "apiserver",
            "--secure-port=8443",
            "--etcd-servers=https://etcd-0.db.example:2379,https://10.0.0.7:2379",
            "--etcd-cafile=/var/run/coredump-etcd/ca.crt",
            "--etcd-certfile=/var/run/coredump-etcd/tls.crt",
            "--etcd-keyfile=/var/run/coredump-etcd/tls.key",
            "--tls-cert-file=/var/run/coredump/tls.crt",
        ]
    );
    let api = pod(&docs, API.0, API.1);
    let client = api
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "etcd-client")
        .unwrap();
    let secret = client.secret.as_ref().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("coredump-etcd-client"));
    assert_eq!(secret.default_mode, Some(0o440));
    assert!(mounts(&api).contains(&("etcd-client".into(), "/var/run/coredump-etcd".into())));
}

#[test]
fn plain_http_etcd_servers_need_no_client_secret() {
    let mut o = opts();
    o.etcd_servers = vec!["http://etcd.db:2379".into()];
    let docs = rendered(&o);
    let args = args(&docs, API.0, API.1);
    assert!(args.contains(&"--etcd-servers=http://etcd.db:2379".to_string()));
    assert!(
        !args.iter().any(|a| a.starts_with("--etcd-cafile")),
        "{args:?}"
    );
    assert_eq!(
        volume_names(&pod(&docs, API.0, API.1)),
        ["tls", "coredump-backend"]
    );
}

#[test]
fn etcd_flags_that_cannot_work_are_refused() {
    let with = |servers: &[&str], secret: Option<&str>, class: Option<&str>| {
        let mut o = opts();
        o.etcd_servers = servers.iter().map(|s| s.to_string()).collect();
        o.etcd_client_secret = secret.map(str::to_string);
        o.etcd_storage_class = class.map(str::to_string);
        o
    };
    refused(
        with(&["etcd:2379"], None, None),
        "--etcd-servers",
        "must be a URL",
    );
    refused(
        with(&["https://etcd:2379/v3"], Some("s"), None),
        "--etcd-servers",
        "scheme://host[:port] only",
    );
    refused(
        with(&["https://etcd:70000"], Some("s"), None),
        "--etcd-servers",
        "not 1 to 65535",
    );
    refused(
        with(&["https://etcd:2379"], None, None),
        "--etcd-servers",
        "need --etcd-client-secret",
    );
    refused(
        with(&["https://a:2379", "http://b:2379"], Some("s"), None),
        "--etcd-servers",
        "mixes http:// and https://",
    );
    refused(
        with(&["http://etcd:2379"], Some("s"), None),
        "--etcd-client-secret",
        "use no TLS",
    );
    refused(
        with(&[], Some("s"), None),
        "--etcd-client-secret",
        "is for --etcd-servers",
    );
    refused(
        with(&["https://etcd:2379"], Some("s"), Some("standard")),
        "--etcd-storage-class",
        "--etcd-servers replaces",
    );
}

#[test]
fn replicas_get_a_disruption_budget_and_spread_over_nodes() {
    let mut o = opts();
    o.blob_store = "s3://cores".into();
    o.api_replicas = 3;
    let docs = rendered(&o);
    let api: Deployment = find(&docs, API.0, API.1);
    let spec = api.spec;
    assert_eq!(spec.replicas, Some(3));
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/component".to_string(),
            "apiserver".to_string(),
        ),
        (
            "app.kubernetes.io/name".to_string(),
            "coredump-detector".to_string(),
        ),
    ]);
    let anti = spec
        .template
        .spec
        .unwrap()
        .affinity
        .unwrap()
        .pod_anti_affinity
        .unwrap();
    assert_eq!(
        anti.required_during_scheduling_ignored_during_execution,
        None
    );
    let preferred = anti
        .preferred_during_scheduling_ignored_during_execution
        .unwrap();
    assert_eq!(preferred.len(), 1);
    assert_eq!(preferred[0].weight, 100);
    let term = &preferred[0].pod_affinity_term;
    assert_eq!(term.topology_key, "kubernetes.io/hostname");
    assert_eq!(
        term.label_selector.as_ref().unwrap().match_labels,
        Some(labels.clone())
    );
    let pdb: PodDisruptionBudget = find(&docs, "PodDisruptionBudget", "dumps");
    assert_eq!(pdb.metadata.namespace.as_deref(), Some("ops"));
    let pdb = pdb.spec.unwrap();
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(pdb.min_available, None);
    assert_eq!(pdb.selector.unwrap().match_labels, Some(labels));
    // Right after the Deployment it protects.
    let position = |kind: &str, name: &str| {
        docs.iter()
            .position(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap()
    };
    assert_eq!(
        position("PodDisruptionBudget", "dumps"),
        position("Deployment", "dumps") + 1
    );
}

#[test]
fn one_replica_has_no_budget_and_no_affinity() {
    let docs = rendered(&opts());
    assert!(!docs.iter().any(|d| d["kind"] == "PodDisruptionBudget"));
    let api: Deployment = find(&docs, API.0, API.1);
    let spec = api.spec;
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.template.spec.unwrap().affinity, None);
}

#[test]
fn replicas_with_a_claim_are_accepted() {
    let mut o = opts();
    o.blob_volume_claim = Some("cores-rwx".into());
    o.api_replicas = 2;
    let docs = rendered(&o);
    let api: Deployment = find(&docs, API.0, API.1);
    assert_eq!(api.spec.replicas, Some(2));
    assert!(has(&docs, "PodDisruptionBudget", "dumps"));
}

#[test]
fn replicas_that_could_not_read_the_cores_are_refused() {
    let mut o = opts();
    o.api_replicas = 2;
    refused(
        o,
        "--api-replicas",
        "give a bucket (--blob-store s3://, gs:// or az://) or --blob-volume-claim NAME",
    );
    let mut o = opts();
    o.api_replicas = 0;
    refused(o, "--api-replicas", "at least 1");
}
