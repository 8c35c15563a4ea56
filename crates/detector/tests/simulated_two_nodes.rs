//! Issue 13's multi-node test, simulated on one machine and named for it: two nodes that are
//! two `coredump-detector agent` host processes (separate host directories, spools and node
//! names, a fake kubepods cgroup per pod, as the other cluster tests run the agent), two
//! `coredump-detector apiserver` replicas, one real etcd, one bucket on a real SeaweedFS, and
//! the real kube-apiserver with its aggregator in front. The real kernel core pipe captures
//! the crashes, under the machine-wide kernel lock.
//!
//! The two agents run one after the other, not at once: a machine has one `core_pattern`,
//! which each agent takes over when it starts (and which the agent is being taught to refuse
//! to share with a second live agent), so node A's agent captures node A's crash and stops,
//! then node B's does the same. Each node's crash is stored in the bucket and recorded in etcd
//! by then; no agent is needed to serve it.
//!
//! kube-apiserver's aggregator dials one Service, which these tests map to one loopback port:
//! it cannot balance over two processes. So the Service is pointed at the replica beside the
//! node that crashes while its crash is recorded, then at the replica beside the other node,
//! which serves the download while the first replica is stopped: each core comes back byte for
//! byte (the bucket's object, decompressed; the dump's entry, as stored) through the replica
//! that never saw it arrive.
#![allow(clippy::unwrap_used)]

mod aggregated;
mod cluster;
mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use aggregated::{ApiServer, eventually};
use cluster::{
    Agent, SIGSEGV, apply_manifest_rbac, container_id, crash_in, create_pod, get_raw, pod_cgroup,
    service_account_kubeconfig, wait_coredump,
};
use coredump_store::{BlobPath, BlobStore};
use coredump_testkit::kernel_lock::KernelSettings;
use coredump_testplane::{TestCa, aggregation, shared};
use sha2::{Digest, Sha256};

/// Points the APIService (through its ExternalName Service) at `replica` and waits until
/// kube-apiserver reports it Available.
fn route_to(cp: &coredump_testplane::ControlPlane, system: &str, replica: &ApiServer, ca: &TestCa) {
    aggregated::register_apiservice(cp, system, replica.port, &ca.cert_pem());
    eventually(Duration::from_secs(60), "APIService re-pointed", || {
        let svc = cp
            .kubectl_ok(&[
                "get",
                "svc",
                aggregation::SERVICE,
                "-n",
                system,
                "-o",
                "json",
            ])
            .ok()?;
        let svc: serde_json::Value = serde_json::from_str(&svc).ok()?;
        (svc["spec"]["ports"][0]["port"] == replica.port
            && aggregated::available(cp).starts_with("True"))
        .then_some(())
    });
}

#[test]
fn simulated_two_nodes_each_core_downloads_through_the_replica_beside_the_other_node() {
    let settings = KernelSettings::acquire();
    let started = Instant::now();
    let cp = shared().unwrap();
    let dir = tempfile::Builder::new()
        .prefix("cdd-two-nodes-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let d = dir.path();
    let system = cp.create_namespace("coredump-system").unwrap();
    apply_manifest_rbac(cp, &system);
    let kubeconfig = |sa: &str| service_account_kubeconfig(cp, &system, sa, d);
    let etcd = coredump_testplane::start_etcd(&d.join("etcd")).unwrap();
    let weed = coredump_testplane::seaweedfs::start_seaweedfs().unwrap();
    weed.create_bucket("cores").unwrap();
    let flags = weed.blob_store_flags("cores", "two-nodes");

    let ca = TestCa::new("coredump-serving-ca").unwrap();
    let api_kubeconfig = kubeconfig("coredump-api");
    let replica = |name: &str| {
        let rd = d.join(name);
        std::fs::create_dir_all(&rd).unwrap();
        let serving = aggregation::write_serving_cert(&ca, &system, &rd).unwrap();
        let mut args = vec![
            "apiserver".to_string(),
            "--bind-address=127.0.0.1".into(),
            format!("--tls-cert-file={}", serving.cert.display()),
            format!("--tls-private-key-file={}", serving.key.display()),
            format!("--etcd-servers={}", etcd.url()),
            format!("--kubeconfig={}", api_kubeconfig.display()),
            "--delegated-auth=on".into(),
            format!("--local-path={}", rd.join("unused-cores").display()),
        ];
        args.extend(flags.iter().cloned());
        ApiServer::start_with(args, rd.join("apiserver.log"))
    };
    let beside_a = replica("replica-a");
    let beside_b = replica("replica-b");

    let agent_kubeconfig = kubeconfig("coredump-agent");
    let extra: Vec<&str> = flags.iter().map(String::as_str).collect();
    let pid = std::process::id();
    let agent = |node: &str| {
        let nd = d.join(node);
        std::fs::create_dir_all(&nd).unwrap();
        let blobs = nd.join("unused-cores");
        let agent =
            Agent::configure(&nd, &blobs, node, &agent_kubeconfig, "drop", &extra).started();
        // Each agent installs its own handler: the crash goes to this node's spool.
        assert_eq!(settings.current_pattern(), agent.pattern());
        agent
    };
    let app = cp.create_namespace("two-nodes").unwrap();
    let bucket = coredump_objstore::BlobStoreArgs::parse_flags(&flags)
        .unwrap()
        .open()
        .unwrap()
        .unwrap();
    let crash_on = |node: &str, pod: &str, n: u32, seed: u64| {
        let mut agent = agent(node);
        let cid = container_id(n);
        let uid = create_pod(cp, &app, pod, node, &cid, serde_json::json!({}));
        let crash_pid = crash_in(&pod_cgroup(&uid, &cid), 4, seed, "mixed");
        let c = wait_coredump(cp, &app, crash_pid, &agent.role);
        assert_eq!(c.spec.node_name, node);
        assert_eq!(c.spec.pod_uid.as_deref(), Some(uid.as_str()));
        assert_eq!(c.status.state, coredump_api::CoredumpState::Stored);
        // The record is created before the spool entry is freed: wait for the latter.
        eventually(Duration::from_secs(15), "the spool emptied", || {
            agent.spool_entries().is_empty().then_some(())
        });
        assert!(agent.role.stop(), "{node}'s agent did not stop on SIGTERM");
        (c, crash_pid)
    };
    let (node_a, node_b) = (format!("sim-node-a-{pid}"), format!("sim-node-b-{pid}"));
    let (seed_a, seed_b) = (0x2a0d, 0x2b0d);

    // Each node's crash is recorded through the replica beside it.
    route_to(cp, &system, &beside_a, &ca);
    let (crash_a, pid_a) = crash_on(&node_a, "web-a", 1, seed_a);
    route_to(cp, &system, &beside_b, &ca);
    let (crash_b, pid_b) = crash_on(&node_b, "web-b", 2, seed_b);
    println!(
        "two crashes on two nodes recorded after {:?}",
        started.elapsed()
    );

    // Each core downloads through the replica beside the other node, which never saw it arrive.
    let download = |c: &coredump_api::Coredump, pod: &str, crash_pid: u32, seed: u64| {
        let base = format!("{}/namespaces/{app}", aggregation::API_PATH);
        let core = get_raw(cp, &format!("{base}/coredumps/{}/core", c.metadata.name));
        assert_eq!(core.len() as u64, c.status.raw_size);
        assert_eq!(hex::encode(Sha256::digest(&core)), c.status.sha256);
        // The crasher's own memory image: every segment, its pid and signal, its seeded marker.
        let parsed = coredump_corefile::parse_core_bytes(&core).unwrap();
        assert!(parsed.is_complete(), "every PT_LOAD segment is present");
        assert_eq!(
            (parsed.prstatus[0].pid, parsed.prstatus[0].signal),
            (crash_pid, SIGSEGV)
        );
        assert!(common::in_memory(
            &core,
            &coredump_testkit::content::marker(seed)
        ));
        // And it is the bucket's object, decompressed: byte-identical.
        let blob = BlobPath::parse_relative(&c.status.blob_path).unwrap();
        let mut zst = Vec::new();
        bucket.open(&blob).unwrap().read_to_end(&mut zst).unwrap();
        assert!(
            zstd::decode_all(&zst[..]).unwrap() == core,
            "the download differs from the bucket's core"
        );
        // A pod's dump is asked for through a CoredumpEndpoint naming it (as a debugger does).
        aggregated::submit(
            cp,
            "create",
            &serde_json::json!({"apiVersion": "coredump.fujitsu.com/v1alpha1",
                "kind": "CoredumpEndpoint", "metadata": {"name": pod, "namespace": app},
                "spec": {"podUID": c.spec.pod_uid}}),
        );
        let dump = get_raw(cp, &format!("{base}/coredumpendpoints/{pod}/dump"));
        let entries = coredump_testkit::archive::untar_gz(&dump).unwrap();
        let in_dump = entries
            .iter()
            .find(|(path, _)| path == &c.status.blob_path)
            .map(|(_, bytes)| bytes)
            .unwrap_or_else(|| panic!("{} not in the dump", c.status.blob_path));
        assert!(*in_dump == zst, "the dump's core differs from the bucket's");
    };
    // Still routed to the replica beside node B: node A's core, with node A's replica stopped
    // so that it cannot be the one answering.
    let (mut beside_a, mut beside_b) = (beside_a, beside_b);
    beside_a.stop();
    download(&crash_a, "web-a", pid_a, seed_a);
    beside_a.spawn();
    route_to(cp, &system, &beside_a, &ca);
    beside_b.stop();
    download(&crash_b, "web-b", pid_b, seed_b);
    for (name, r) in [("a", &beside_a), ("b", &beside_b)] {
        let local = d.join(format!("replica-{name}/unused-cores"));
        assert!(
            !local.exists() || std::fs::read_dir(&local).unwrap().next().is_none(),
            "replica {name} stored cores locally with a bucket: {}",
            r.log_text()
        );
    }
    println!("simulated_two_nodes took {:?}", started.elapsed());
    drop((beside_a, beside_b, weed, etcd, settings));
}
