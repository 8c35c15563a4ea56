//! The install's etcd, as the manifest of `coredump-detector deploy` starts it (its arguments
//! and the certificates of its Secrets, container paths mapped into a scratch directory, ports
//! onto free loopback ports), attacked with the real `etcdctl` as any pod on the cluster network
//! could: without TLS, without a client certificate, with a certificate of the wrong CA, and on
//! its probe port. Only the API server's client certificate (Secret `etcd-client-tls`) opens it,
//! and the API server, configured with the manifest's own flags, stores its records there.
//!
//! Before TLS (the manifest up to this change started etcd with
//! `--listen-client-urls=http://0.0.0.0:2379`), the first attack read every record.
//!
//! The NetworkPolicies that also keep other pods away from etcd need a network plugin that
//! enforces them; there is none on the test machine, so only their content and their
//! acceptance by kube-apiserver are tested (`cargo test -p coredump-deploy`).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine;
use coredump_api::ObjectMeta;
use coredump_apiserver::cli::ApiserverArgs;
use serde_json::Value;

/// The objects of a rendered manifest.
fn manifest() -> (Vec<Value>, coredump_deploy::Certs) {
    let opts = coredump_deploy::DeployOptions::new("default", "coredump");
    let certs = coredump_deploy::generate_certs("default", "coredump").unwrap();
    let yaml = coredump_deploy::render(&opts, &certs).unwrap();
    (serde_saphyr::from_multiple::<Value>(&yaml).unwrap(), certs)
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the manifest"))
}

/// Writes a Secret's keys as files in `dir` (as kubelet mounts them).
fn mount_secret(secret: &Value, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (key, value) in secret["data"].as_object().unwrap() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap())
            .unwrap();
        std::fs::write(dir.join(key), bytes).unwrap();
    }
}

fn args_of(workload: &Value) -> Vec<String> {
    serde_json::from_value(workload["spec"]["template"]["spec"]["containers"][0]["args"].clone())
        .unwrap()
}

/// Rewrites an argument's container paths and addresses for a host process.
fn map_arg(arg: &str, map: &BTreeMap<String, String>) -> String {
    map.iter()
        .fold(arg.to_string(), |a, (from, to)| a.replace(from, to))
}

struct Etcd {
    child: std::process::Child,
    client: u16,
    metrics: u16,
    tls: PathBuf,
    log: PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// etcd with the StatefulSet's arguments. Only the member's name and peer URL are added (the
/// pod's defaults would collide with other etcds on this machine).
fn start_etcd(docs: &[Value], dir: &Path) -> Etcd {
    let tls = dir.join("etcd-tls");
    mount_secret(find(docs, "Secret", "etcd-server-tls"), &tls);
    let free = || coredump_testplane::free_port().unwrap();
    let (client, metrics, peer) = (free(), free(), free());
    let map = BTreeMap::from([
        ("/etc/etcd/tls".to_string(), tls.display().to_string()),
        (
            "/var/lib/etcd".to_string(),
            dir.join("data").display().to_string(),
        ),
        ("0.0.0.0:2379".to_string(), format!("127.0.0.1:{client}")),
        ("0.0.0.0:2381".to_string(), format!("127.0.0.1:{metrics}")),
        (
            "etcd-svc.default.svc:2379".to_string(),
            format!("127.0.0.1:{client}"),
        ),
    ]);
    let statefulset = find(docs, "StatefulSet", "etcd");
    let container = &statefulset["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"][0], "/usr/local/bin/etcd");
    let mut command = Command::new(coredump_testplane::binaries().unwrap().etcd);
    command.args(args_of(statefulset).iter().map(|a| map_arg(a, &map)));
    let peer_url = format!("http://127.0.0.1:{peer}");
    command.args([
        "--name=etcd-0".to_string(),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=etcd-0={peer_url}"),
    ]);
    let log = dir.join("etcd.log");
    let child = coredump_testplane::spawn_logged(command, &log).unwrap();
    let etcd = Etcd {
        child,
        client,
        metrics,
        tls,
        log,
    };
    // Ready through the probe the manifest gives kubelet: plain HTTP /readyz on the metrics port.
    let probe = &container["readinessProbe"]["httpGet"];
    assert_eq!(
        (probe["port"].as_str(), probe["scheme"].as_str()),
        (Some("metrics"), Some("HTTP"))
    );
    let start = Instant::now();
    while http_get(metrics, "/readyz").map(|(s, _)| s) != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "etcd not ready through its probe:\n{}",
            std::fs::read_to_string(&etcd.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http_get(metrics, "/livez").map(|(s, _)| s), Some(200));
    etcd
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_string()))
}

/// `etcdctl <args>` (API v3), bounded in time.
fn etcdctl(args: &[String]) -> Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--command-timeout=3s", "--dial-timeout=3s"])
        .args(args)
        .output()
        .expect("etcdctl (Debian package etcd-client, installed by scripts/install-deps.sh)")
}

fn reads_keys(out: &Output) -> bool {
    out.status.success() && !out.stdout.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_answers_only_the_api_servers_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, certs) = manifest();
    let etcd = start_etcd(&docs, dir.path());
    let https = format!("--endpoints=https://127.0.0.1:{}", etcd.client);
    let ca = format!("--cacert={}", etcd.tls.join("ca.crt").display());

    // The API server, with the Deployment's own etcd flags and the Secret it mounts.
    let client_tls = dir.path().join("etcd-client");
    mount_secret(find(&docs, "Secret", "etcd-client-tls"), &client_tls);
    let map = BTreeMap::from([
        (
            "/var/run/coredump-etcd".to_string(),
            client_tls.display().to_string(),
        ),
        (
            "etcd-svc.default.svc:2379".to_string(),
            format!("127.0.0.1:{}", etcd.client),
        ),
    ]);
    let flags: Vec<String> = args_of(find(&docs, "Deployment", "coredump"))
        .iter()
        .filter(|a| a.starts_with("--etcd-"))
        .map(|a| map_arg(a, &map))
        .collect();
    assert_eq!(flags.len(), 4, "{flags:?}");
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: ApiserverArgs,
    }
    let mut cli_args = vec!["apiserver".to_string()];
    cli_args.extend(flags.iter().cloned());
    let args = <Cli as clap::Parser>::try_parse_from(&cli_args)
        .unwrap()
        .args;
    let meta = coredump_store::etcd_store::EtcdStore::connect_with(
        &args.etcd_servers,
        coredump_apiserver::cli::ETCD_PREFIX,
        coredump_store::etcd_store::EtcdOptions {
            tls: Some(coredump_store::etcd_store::EtcdTls {
                ca_pem: std::fs::read(args.etcd_cafile.as_ref().unwrap()).unwrap(),
                identity: Some((
                    std::fs::read(args.etcd_certfile.as_ref().unwrap()).unwrap(),
                    std::fs::read(args.etcd_keyfile.as_ref().unwrap()).unwrap(),
                )),
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let blobs = std::sync::Arc::new(
        coredump_store::fs_blob::FsBlobStore::new(dir.path().join("cores")).unwrap(),
    );
    let registry = coredump_apiserver::Registry::new(std::sync::Arc::new(meta), blobs);
    let endpoint = coredump_api::CoredumpEndpoint {
        metadata: ObjectMeta {
            name: "web-0".into(),
            namespace: "team-a".into(),
            ..ObjectMeta::default()
        },
        spec: coredump_api::CoredumpEndpointSpec {
            pod_uid: "0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11".into(),
        },
        ..Default::default()
    };
    registry.create_endpoint(endpoint).await.unwrap();

    // The holder of etcd-client-tls reads the record...
    let client = [
        https.clone(),
        ca.clone(),
        format!("--cert={}", client_tls.join("tls.crt").display()),
        format!("--key={}", client_tls.join("tls.key").display()),
    ];
    let mut get = client.to_vec();
    get.extend(["get".into(), "--prefix".into(), "/".into()]);
    let out = etcdctl(&get);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("coredumpendpoints/team-a/web-0"),
        "the API server's certificate must work: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&etcd.log).unwrap_or_default()
    );

    // ...and nobody else does.
    let prefix = ["get".to_string(), "--prefix".into(), "/".into()];
    let with = |extra: &[String]| {
        let mut a = extra.to_vec();
        a.extend(prefix.iter().cloned());
        a
    };
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let foreign_ca = coredump_pki::Ca::generate("attacker-ca").unwrap();
    let foreign = foreign_ca
        .issue_client(&coredump_deploy::etcd_client_name("coredump"), &[])
        .unwrap();
    coredump_pki::write_pair(&other, "foreign", &foreign).unwrap();
    coredump_pki::write_pair(&other, "apiserver-serving", &certs.server).unwrap();
    let attacks: Vec<(&str, Vec<String>)> = vec![
        (
            "plain HTTP",
            with(&[format!("--endpoints=http://127.0.0.1:{}", etcd.client)]),
        ),
        (
            "TLS without a client certificate",
            with(&[https.clone(), ca.clone()]),
        ),
        (
            "TLS, server unverified, no client certificate",
            with(&[https.clone(), "--insecure-skip-tls-verify".into()]),
        ),
        (
            "a client certificate of another CA, with the expected name",
            with(&[
                https.clone(),
                ca.clone(),
                format!("--cert={}", other.join("foreign.crt").display()),
                format!("--key={}", other.join("foreign.key").display()),
            ]),
        ),
        (
            "the API server's serving certificate (trusted by kube-apiserver, not by etcd)",
            with(&[
                https.clone(),
                ca.clone(),
                format!("--cert={}", other.join("apiserver-serving.crt").display()),
                format!("--key={}", other.join("apiserver-serving.key").display()),
            ]),
        ),
        (
            "the probe port",
            with(&[format!("--endpoints=http://127.0.0.1:{}", etcd.metrics)]),
        ),
    ];
    for (what, args) in &attacks {
        let out = etcdctl(args);
        assert!(
            !reads_keys(&out) && !String::from_utf8_lossy(&out.stdout).contains("team-a"),
            "{what}: etcd answered: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let mut put = args[..args.len() - 3].to_vec();
        put.extend([
            "put".into(),
            "/coredump.fujitsu.com/coredumps/team-a/planted".into(),
            "{}".into(),
        ]);
        assert!(!etcdctl(&put).status.success(), "{what}: etcd took a write");
    }
    // The probe port serves health and metrics, no keys.
    let (status, _) = http_get(etcd.metrics, "/v3/kv/range").unwrap();
    assert_ne!(status, 200);
    let out = etcdctl(&get);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("planted"), "a planted key got in: {text}");
}
