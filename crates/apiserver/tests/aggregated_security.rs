//! Our API server behind the real kube-apiserver, with delegated authentication and
//! authorization, and the attacks it must withstand. One control plane and one server per test
//! binary: the server runs in process (`cli::build` with `--kubeconfig` holding the token of its
//! own ServiceAccount `coredump-api`, bound as the deploy manifest binds it), registered by a
//! real APIService. Requests go through kube-apiserver with `kubectl --as=…` and tokens, and
//! straight to our port with chosen certificates and headers, which is how we prove that our
//! own checks (not only kube-apiserver's RBAC in front) refuse what they must.
#![allow(clippy::unwrap_used)]

mod cluster;
mod common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use cluster::{BASE, Creds, bind, direct_get, eventually, user};
use coredump_apiserver::cli::{ApiserverArgs, BackendKind, build};
use coredump_apiserver::delegation::{BackgroundTasks, DelegationArgs, DelegationMode};
use coredump_testkit::archive::untar_gz;
use coredump_testplane::{ControlPlane, TestCa, aggregation, shared};

/// The core the fixture crash holds (what `core` must return, decompressed).
fn core_bytes() -> Vec<u8> {
    (0..300_000u32)
        .flat_map(|i| (i.wrapping_mul(2_654_435_761)).to_le_bytes())
        .collect()
}

struct Fixture {
    cp: &'static ControlPlane,
    rt: tokio::runtime::Runtime,
    port: u16,
    serving_ca: String,
    /// Namespace A: pod `pod-a`, Coredump `crash-a`, endpoint `pod-a`.
    a: String,
    /// Namespace B: the same names.
    b: String,
    uid_a: String,
    uid_b: String,
    blobs: PathBuf,
    _background: BackgroundTasks,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(setup)
}

fn kubectl_json(cp: &ControlPlane, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&cp.kubectl_ok(args).unwrap()).unwrap()
}

/// A pod (never scheduled: there are no nodes) whose UID the server must find.
fn create_pod(cp: &ControlPlane, ns: &str, name: &str) -> String {
    cluster::apply(
        cp,
        &serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}}),
    );
    kubectl_json(cp, &["get", "pod", name, "-n", ns, "-o", "json"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn setup() -> Fixture {
    let cp = shared().unwrap();
    // The fixture lives in a static (never dropped): its directory goes when this binary exits.
    let dir =
        coredump_testkit::scratch::process_scratch_dir(&std::env::temp_dir(), "cdd-security-")
            .unwrap();
    let system = cp.create_namespace("coredump-system").unwrap();
    let kubeconfig = cluster::api_server_identity(cp, &system, &dir);

    let ca = TestCa::new("coredump-serving-ca").unwrap();
    let serving = aggregation::write_serving_cert(&ca, &system, &dir).unwrap();
    let blobs = dir.join("cores");
    let args = ApiserverArgs {
        secure_port: 0,
        bind_address: "127.0.0.1".parse().unwrap(),
        tls_cert_file: Some(serving.cert),
        tls_private_key_file: Some(serving.key),
        client_ca_file: None,
        backend_kind: BackendKind::Local,
        local_path: blobs.clone(),
        blob_store: Default::default(),
        etcd_servers: Vec::new(),
        data_dir: dir.join("metadata"),
        node_bound_users: Vec::new(),
        keep_per_signature: coredump_apiserver::registry::retention::KeepFlag(None),
        admin_groups: vec!["system:masters".into()],
        etcd_cafile: None,
        etcd_certfile: None,
        etcd_keyfile: None,
        etcd_compaction_interval: Duration::ZERO,
        delegation: DelegationArgs {
            delegated_auth: DelegationMode::On,
            kubeconfig: Some(kubeconfig),
            ..DelegationArgs::default()
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (port, background) = rt.block_on(async {
        std::fs::create_dir_all(&blobs).unwrap();
        let store =
            std::sync::Arc::new(coredump_store::fs_blob::FsBlobStore::new(blobs.clone()).unwrap());
        let mut config = build(&args, store).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let background = std::mem::take(&mut config.background);
        tokio::spawn(coredump_apiserver::serve_listener(
            listener,
            config.tls,
            config.state,
            std::future::pending(),
        ));
        (port, background)
    });
    let took = cluster::register_apiservice(cp, &system, port, &ca.cert_pem());
    println!("APIService Available after {took:?}");

    cluster::roles(cp);
    let a = cp.create_namespace("team-a").unwrap();
    let b = cp.create_namespace("team-b").unwrap();
    bind(cp, "viewer", "coredump-viewer", Some(&a), user("viewer-a"));
    bind(
        cp,
        "debugger",
        "coredump-debugger",
        Some(&a),
        user("debugger-a"),
    );
    bind(
        cp,
        "debugger",
        "coredump-debugger",
        Some(&b),
        user("debugger-b"),
    );
    let mut uids = Vec::new();
    for ns in [&a, &b] {
        let uid = create_pod(cp, ns, "pod-a");
        // The crash record and its blob, where the agent would have put them.
        let core = core_bytes();
        let compressed = zstd::encode_all(&core[..], 1).unwrap();
        let blob_dir = blobs.join(ns).join(&uid).join("app");
        std::fs::create_dir_all(&blob_dir).unwrap();
        std::fs::write(blob_dir.join("crash-a.core.zst"), &compressed).unwrap();
        let mut record = common::coredump("crash-a", ns, &uid, "app", core.len() as u64);
        record["metadata"]["namespace"] = ns.as_str().into();
        let out = cluster::kubectl_stdin(
            cp,
            &["create", "-f", "-", "--request-timeout=30s"],
            &record.to_string(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The endpoint without podUID: the server fills it from the live pod.
        let endpoint = serde_json::json!({"apiVersion": "coredump.fujitsu.com/v1alpha1",
            "kind": "CoredumpEndpoint", "metadata": {"name": "pod-a", "namespace": ns}});
        let out = cluster::kubectl_stdin(
            cp,
            &["create", "-f", "-", "-o", "json", "--request-timeout=30s"],
            &endpoint.to_string(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(created["spec"]["podUID"], uid.as_str());
        uids.push(uid);
    }
    // A secret outside any pod directory, for the traversal tests.
    std::fs::write(blobs.join("SECRET"), SECRET).unwrap();
    std::fs::write(dir.join("SECRET"), SECRET).unwrap();
    // RBAC reaches kube-apiserver's authorizer through an informer: wait until it applies.
    let dump_a = format!("{BASE}/namespaces/{a}/coredumpendpoints/pod-a/dump");
    eventually(Duration::from_secs(30), "debugger-a allowed", || {
        cp.kubectl(&[
            "get",
            "--raw",
            &dump_a,
            "--as=debugger-a",
            "--request-timeout=20s",
        ])
        .status
        .success()
        .then_some(())
    });
    Fixture {
        cp,
        rt,
        port,
        serving_ca: ca.cert_pem(),
        uid_a: uids[0].clone(),
        uid_b: uids[1].clone(),
        a,
        b,
        blobs,
        _background: background,
    }
}

const SECRET: &[u8] = b"TOP-SECRET-NOT-FOR-ANYONE";

impl Fixture {
    fn direct(&self, path: &str, creds: &Creds) -> cluster::Answer {
        self.rt
            .block_on(direct_get(self.port, &self.serving_ca, path, creds))
    }

    /// As the aggregator would relay `user` (the genuine front-proxy certificate).
    fn relayed(&self, user: &str, groups: &[&str]) -> Creds {
        Creds::relayed(self.cp.front_proxy_client_cert(), user, groups)
    }

    fn blob(&self, ns: &str, uid: &str) -> Vec<u8> {
        std::fs::read(self.blobs.join(ns).join(uid).join("app/crash-a.core.zst")).unwrap()
    }
}

/// kubectl through kube-apiserver; (success, stdout, stderr).
fn kubectl(f: &Fixture, args: &[&str]) -> (bool, Vec<u8>, String) {
    let mut all = args.to_vec();
    all.push("--request-timeout=30s");
    let out = f.cp.kubectl(&all);
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_forbidden_by_us(answer: &cluster::Answer, user: &str, resource: &str) {
    assert_eq!(
        answer.status,
        403,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let status = answer.json();
    assert_eq!(status["reason"], "Forbidden");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("User \"{user}\" cannot")) && message.contains(resource),
        "{message}"
    );
}

#[test]
fn available_and_served_through_the_aggregator() {
    let f = fixture();
    assert_eq!(
        cluster::available_condition(f.cp),
        "True Passed all checks passed"
    );
    // What kube-apiserver publishes for us (and we follow).
    let cm = kubectl_json(
        f.cp,
        &[
            "get",
            "configmap",
            "-n",
            "kube-system",
            "extension-apiserver-authentication",
            "-o",
            "json",
        ],
    );
    let data = cm["data"].as_object().unwrap();
    println!(
        "extension-apiserver-authentication keys: {:?}",
        data.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        data["requestheader-allowed-names"],
        "[\"front-proxy-client\"]"
    );
    assert_eq!(
        data["requestheader-username-headers"],
        "[\"X-Remote-User\"]"
    );
    assert_eq!(
        data["requestheader-client-ca-file"]
            .as_str()
            .unwrap()
            .trim(),
        f.cp.front_proxy_ca_pem().trim()
    );
    // The admin lists through kube-apiserver; the Table comes from us.
    let (ok, out, err) = kubectl(f, &["get", "coredumps", "-n", &f.a]);
    assert!(ok, "{err}");
    let out = String::from_utf8(out).unwrap();
    assert!(out.lines().nth(1).unwrap().starts_with("crash-a "), "{out}");
    // OpenAPI reaches kube-apiserver (fetched by it as system:aggregator, without groups).
    let explained = eventually(Duration::from_secs(90), "kubectl explain", || {
        let (ok, out, _) = kubectl(f, &["explain", "coredumpendpoints.spec"]);
        ok.then(|| String::from_utf8(out).unwrap())
    });
    assert!(explained.contains("podUID"), "{explained}");
}

#[test]
fn endpoint_create_fills_pod_uid_from_the_live_pod_and_refuses_a_missing_pod() {
    let f = fixture();
    let (ok, out, err) = kubectl(
        f,
        &["get", "coredumpendpoint", "pod-a", "-n", &f.a, "-o", "json"],
    );
    assert!(ok, "{err}");
    let ep: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(ep["spec"]["podUID"], f.uid_a.as_str());
    let missing = serde_json::json!({"apiVersion": "coredump.fujitsu.com/v1alpha1",
        "kind": "CoredumpEndpoint", "metadata": {"name": "no-such-pod", "namespace": f.a}});
    let out = cluster::kubectl_stdin(
        f.cp,
        &["create", "-f", "-", "--request-timeout=30s"],
        &missing.to_string(),
    );
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "The CoredumpEndpoint \"no-such-pod\" is invalid: spec.podUID: Required value: pod {}/no-such-pod \
             does not exist, so its UID cannot be filled in: give the UID of the pod whose cores to serve",
            f.a
        )
    );
}

#[test]
fn reading_an_object_does_not_grant_its_dump_or_core() {
    let f = fixture();
    let ep = format!("{BASE}/namespaces/{}/coredumpendpoints/pod-a", f.a);
    let cd = format!("{BASE}/namespaces/{}/coredumps/crash-a", f.a);
    // Through kube-apiserver: its RBAC stops the viewer before us.
    let (ok, _, err) = kubectl(
        f,
        &[
            "get",
            "coredumpendpoint",
            "pod-a",
            "-n",
            &f.a,
            "--as=viewer-a",
        ],
    );
    assert!(ok, "{err}");
    for sub in [format!("{ep}/dump"), format!("{cd}/core")] {
        let (ok, out, err) = kubectl(f, &["get", "--raw", &sub, "--as=viewer-a"]);
        assert!(!ok && out.is_empty(), "{sub}");
        assert!(err.contains("Forbidden"), "{err}");
    }
    // Straight to us with the genuine proxy certificate: our SubjectAccessReview refuses too.
    let viewer = f.relayed("viewer-a", &[]);
    let got = f.direct(&ep, &viewer);
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(got.json()["spec"]["podUID"], f.uid_a.as_str());
    assert_forbidden_by_us(
        &f.direct(&format!("{ep}/dump"), &viewer),
        "viewer-a",
        "\"coredumpendpoints/dump\"",
    );
    assert_forbidden_by_us(
        &f.direct(&format!("{cd}/core"), &viewer),
        "viewer-a",
        "\"coredumps/core\"",
    );
    // The debugger gets the bytes, through kube-apiserver.
    let (ok, tgz, err) = kubectl(
        f,
        &["get", "--raw", &format!("{ep}/dump"), "--as=debugger-a"],
    );
    assert!(ok, "{err}");
    let entries = untar_gz(&tgz).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].0,
        format!("{}/{}/app/crash-a.core.zst", f.a, f.uid_a)
    );
    assert_eq!(entries[0].1, f.blob(&f.a, &f.uid_a));
    let (ok, core, err) = kubectl(
        f,
        &["get", "--raw", &format!("{cd}/core"), "--as=debugger-a"],
    );
    assert!(ok, "{err}");
    assert!(core == core_bytes(), "core differs ({} bytes)", core.len());
}

#[test]
fn a_user_of_namespace_a_cannot_list_watch_or_download_in_b() {
    let f = fixture();
    let b = &f.b;
    let paths = [
        (format!("{BASE}/namespaces/{b}/coredumps"), "list"),
        (format!("{BASE}/namespaces/{b}/coredumps?watch=1"), "watch"),
        (
            format!("{BASE}/namespaces/{b}/coredumpendpoints/pod-a/dump"),
            "get",
        ),
        (
            format!("{BASE}/namespaces/{b}/coredumps/crash-a/core"),
            "get",
        ),
        (format!("{BASE}/coredumps"), "list"),
    ];
    for (path, verb) in &paths {
        let (ok, out, err) = kubectl(f, &["get", "--raw", path, "--as=debugger-a"]);
        assert!(!ok && out.is_empty(), "{path}");
        assert!(err.contains("Forbidden"), "{path}: {err}");
        let got = f.direct(path, &f.relayed("debugger-a", &[]));
        assert_eq!(
            got.status,
            403,
            "{path}: {}",
            String::from_utf8_lossy(&got.body)
        );
        let message = got.json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains(&format!("User \"debugger-a\" cannot {verb}")),
            "{message}"
        );
    }
    let (ok, _, err) = kubectl(f, &["get", "coredumps", "-n", b, "--as=debugger-a"]);
    assert!(!ok && err.contains("Forbidden"), "{err}");
    let (ok, _, err) = kubectl(
        f,
        &[
            "get",
            "coredumps",
            "-n",
            b,
            "--as=debugger-a",
            "--watch",
            "--request-timeout=5s",
        ],
    );
    assert!(!ok && err.contains("Forbidden"), "{err}");
    // In its own namespace the same user is served.
    let got = f.direct(
        &format!("{BASE}/namespaces/{}/coredumps", f.a),
        &f.relayed("debugger-a", &[]),
    );
    assert_eq!(got.status, 200);
    let list = got.json();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["crash-a"]);
    // And debugger-b downloads B's dump, not A's.
    let tgz = f.direct(
        &format!("{BASE}/namespaces/{b}/coredumpendpoints/pod-a/dump"),
        &f.relayed("debugger-b", &[]),
    );
    assert_eq!(tgz.status, 200);
    let entries = untar_gz(&tgz.body).unwrap();
    assert_eq!(
        entries[0].0,
        format!("{b}/{}/app/crash-a.core.zst", f.uid_b)
    );
}

#[test]
fn identity_headers_count_only_from_the_front_proxy_certificate() {
    let f = fixture();
    let path = format!("{BASE}/namespaces/{}/coredumps/crash-a", f.a);
    let admin = |c: Creds| {
        c.header("X-Remote-User", "system:admin")
            .header("X-Remote-Group", "system:masters")
    };
    let unauthorized = |creds: Creds, what: &str| {
        let got = f.direct(&path, &creds);
        assert_eq!(
            got.status,
            401,
            "{what}: {}",
            String::from_utf8_lossy(&got.body)
        );
        assert_eq!(got.json()["reason"], "Unauthorized", "{what}");
    };
    unauthorized(admin(Creds::default()), "no certificate");
    let forged_ca = TestCa::new("testplane-front-proxy-ca").unwrap();
    let forged = forged_ca.issue_client("front-proxy-client", None).unwrap();
    unauthorized(admin(Creds::cert(&forged)), "look-alike CA");
    let stranger = f.cp.front_proxy_ca().issue_client("mallory", None).unwrap();
    unauthorized(admin(Creds::cert(&stranger)), "proxy CA, name not allowed");
    let expired_proxy =
        f.cp.front_proxy_ca()
            .issue_expired_client("front-proxy-client", None)
            .unwrap();
    unauthorized(
        admin(Creds::cert(&expired_proxy)),
        "expired proxy certificate",
    );
    let expired_user =
        f.cp.client_ca()
            .issue_expired_client("root", Some("system:masters"))
            .unwrap();
    unauthorized(Creds::cert(&expired_user), "expired client certificate");
    let foreign_user = TestCa::new("testplane-client-ca")
        .unwrap()
        .issue_client("root", Some("system:masters"))
        .unwrap();
    unauthorized(
        Creds::cert(&foreign_user),
        "client certificate of a foreign CA",
    );
    unauthorized(
        Creds::default().header("Authorization", "Bearer not-a-token"),
        "invalid token",
    );

    // A valid user certificate with identity headers is that user, not the one in the headers.
    let bob = f.cp.client_ca().issue_client("bob", Some("devs")).unwrap();
    assert_forbidden_by_us(
        &f.direct(&path, &admin(Creds::cert(&bob))),
        "bob",
        "\"coredumps\"",
    );
    // The genuine proxy certificate relaying an admin: served.
    let got = f.direct(&path, &f.relayed("testplane-admin", &["system:masters"]));
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(got.json()["metadata"]["name"], "crash-a");
    // A client certificate of the cluster's client CA in system:masters: served (short-circuit).
    let root =
        f.cp.client_ca()
            .issue_client("root", Some("system:masters"))
            .unwrap();
    assert_eq!(f.direct(&path, &Creds::cert(&root)).status, 200);
}

#[test]
fn service_account_tokens_are_reviewed_and_authorized() {
    let f = fixture();
    let dump = format!("{BASE}/namespaces/{}/coredumpendpoints/pod-a/dump", f.a);
    let token = f.cp.service_account_token(&f.a, "ci-debugger").unwrap();
    let bearer = Creds::default().header("Authorization", &format!("Bearer {token}"));
    // Not bound yet: authenticated, not allowed.
    assert_forbidden_by_us(
        &f.direct(&dump, &bearer),
        &format!("system:serviceaccount:{}:ci-debugger", f.a),
        "\"coredumpendpoints/dump\"",
    );
    bind(
        f.cp,
        "ci-debugger",
        "coredump-debugger",
        Some(&f.a),
        cluster::service_account(&f.a, "ci-debugger"),
    );
    // Denials are cached for 10 s, and RBAC takes a moment: poll.
    let got = eventually(Duration::from_secs(40), "token allowed", || {
        let got = f.direct(&dump, &bearer);
        (got.status == 200).then_some(got)
    });
    let entries = untar_gz(&got.body).unwrap();
    assert_eq!(entries[0].1, f.blob(&f.a, &f.uid_a));
}

#[test]
fn path_traversal_is_refused_and_reads_nothing() {
    let f = fixture();
    let admin = f.relayed("testplane-admin", &["system:masters"]);
    let a = &f.a;
    let cases = [
        format!("{BASE}/namespaces/{a}/coredumpendpoints/pod-a/dump?container=..%2F..%2F.."),
        format!("{BASE}/namespaces/{a}/coredumpendpoints/pod-a/dump?container=.."),
        format!(
            "{BASE}/namespaces/{a}/coredumpendpoints/pod-a/dump?container=..%2F{}",
            f.uid_b
        ),
        format!("{BASE}/namespaces/{a}/coredumpendpoints/pod-a/dump?container=%2Fetc"),
        format!("{BASE}/namespaces/{a}/coredumpendpoints/%2E%2E/dump"),
        format!("{BASE}/namespaces/{a}/coredumpendpoints/..%2F..%2FSECRET/dump"),
        format!("{BASE}/namespaces/%2E%2E/coredumpendpoints/pod-a/dump"),
        format!(
            "{BASE}/namespaces/..%2F{}/coredumpendpoints/pod-a/dump",
            f.b
        ),
        format!("{BASE}/namespaces/{a}/coredumps/..%2F..%2FSECRET/core"),
        format!("{BASE}/namespaces/{a}/coredumps/%2E%2E/core"),
    ];
    for path in &cases {
        let got = f.direct(path, &admin);
        assert_eq!(
            got.status,
            400,
            "{path}: {}",
            String::from_utf8_lossy(&got.body)
        );
        assert_eq!(got.json()["reason"], "BadRequest", "{path}");
        assert!(
            !got.body.windows(SECRET.len()).any(|w| w == SECRET),
            "{path}"
        );
        // Through kube-apiserver: never served either.
        let (ok, out, err) = kubectl(f, &["get", "--raw", path]);
        assert!(!ok, "{path}: served through kube-apiserver");
        assert!(!out.windows(SECRET.len()).any(|w| w == SECRET), "{path}");
        assert!(
            err.contains("BadRequest")
                || err.contains("NotFound")
                || err.contains("the server rejected"),
            "{path}: {err}"
        );
    }
}

#[test]
fn authentication_configmap_changes_are_followed() {
    use coredump_apiserver::auth::{
        Authenticator, ConfigMapRef, DelegatedAuthenticator, PeerCertificates, RequestCredentials,
    };
    let f = fixture();
    let ns = f.cp.create_namespace("authcm").unwrap();
    let old_ca = TestCa::new("old-proxy-ca").unwrap();
    let new_ca = TestCa::new("new-proxy-ca").unwrap();
    let configmap = |ca: &TestCa| {
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "auth", "namespace": ns},
        "data": {"requestheader-client-ca-file": ca.cert_pem(),
                 "requestheader-allowed-names": "[\"front-proxy-client\"]",
                 "requestheader-username-headers": "[\"X-Remote-User\"]",
                 "requestheader-group-headers": "[\"X-Remote-Group\"]"}})
    };
    cluster::apply(f.cp, &configmap(&old_ca));
    let proxy = new_ca.issue_client("front-proxy-client", None).unwrap();
    let request = RequestCredentials {
        peer_certificates: PeerCertificates(std::sync::Arc::new(vec![
            proxy.cert_der.clone().into(),
        ]))
        .0,
        headers: [("x-remote-user", "carol")]
            .iter()
            .map(|(k, v)| {
                (
                    axum::http::HeaderName::from_static(k),
                    axum::http::HeaderValue::from_static(v),
                )
            })
            .collect(),
    };
    let reference = ConfigMapRef {
        namespace: ns.clone(),
        name: "auth".into(),
    };
    f.rt.block_on(async {
        let client = coredump_apiserver::delegation::client(Some(f.cp.kubeconfig()))
            .await
            .unwrap();
        let config = coredump_apiserver::auth::delegated::load_config(&client, &reference)
            .await
            .unwrap();
        let authn = std::sync::Arc::new(DelegatedAuthenticator::new(&config, None, None).unwrap());
        let follower = tokio::spawn(coredump_apiserver::auth::delegated::follow_config(
            client,
            reference,
            authn.clone(),
        ));
        assert!(
            authn.authenticate(&request).await.is_err(),
            "new CA trusted too early"
        );
        cluster::apply(f.cp, &configmap(&new_ca));
        let mut user = None;
        for _ in 0..100 {
            if let Ok(Some(u)) = authn.authenticate(&request).await {
                user = Some(u);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        follower.abort();
        let user = user.expect("rotation to the new CA not followed within 10 s");
        assert_eq!(user.name, "carol");
        assert_eq!(
            authn.config().request_header.unwrap().client_ca_pem,
            new_ca.cert_pem()
        );
    });
}

/// `kubectl apply --server-side -f -` of `object`, with extra flags; (success, stdout, stderr).
fn server_side_apply(
    f: &Fixture,
    object: &serde_json::Value,
    flags: &[&str],
) -> (bool, String, String) {
    let mut args = vec![
        "apply",
        "--server-side",
        "-f",
        "-",
        "-o",
        "json",
        "--request-timeout=30s",
    ];
    args.extend_from_slice(flags);
    let out = cluster::kubectl_stdin(f.cp, &args, &object.to_string());
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `(manager, operation, owned field paths)` of an object's managedFields.
fn owners(f: &Fixture, ns: &str, name: &str) -> Vec<(String, String, String)> {
    let obj = kubectl_json(
        f.cp,
        &[
            "get",
            "coredumpendpoint",
            name,
            "-n",
            ns,
            "-o",
            "json",
            "--show-managed-fields",
        ],
    );
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap_or_default().to_owned(),
                e["operation"].as_str().unwrap_or_default().to_owned(),
                e["fieldsV1"].to_string(),
            )
        })
        .collect()
}

/// Server-side apply through kube-apiserver with the real kubectl: create (the pod's UID filled
/// in as on create), re-apply, a conflict between two managers naming the manager and the
/// field, `--force-conflicts`, an update's manager, and a field dropped from the configuration.
#[test]
fn server_side_apply_creates_updates_and_reports_conflicts() {
    let f = fixture();
    let uid = create_pod(f.cp, &f.a, "ssa-pod");
    let config = |labels: serde_json::Value| {
        serde_json::json!({"apiVersion": "coredump.fujitsu.com/v1alpha1", "kind": "CoredumpEndpoint",
            "metadata": {"name": "ssa-pod", "namespace": f.a, "labels": labels}})
    };
    let (ok, out, err) = server_side_apply(
        f,
        &config(serde_json::json!({"app": "web", "tier": "1"})),
        &[],
    );
    assert!(ok, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        created["spec"]["podUID"],
        uid.as_str(),
        "filled as on create"
    );
    assert_eq!(created["metadata"]["labels"]["app"], "web");
    let o = owners(f, &f.a, "ssa-pod");
    assert_eq!(o.len(), 1, "{o:?}");
    assert_eq!((o[0].0.as_str(), o[0].1.as_str()), ("kubectl", "Apply"));
    // What the configuration said; the filled-in podUID is a default, owned by nobody.
    assert!(
        o[0].2.contains("\"f:app\"") && !o[0].2.contains("podUID"),
        "{o:?}"
    );

    // Re-applied without `tier`: kubectl owned it alone, so it goes.
    let (ok, out, err) = server_side_apply(f, &config(serde_json::json!({"app": "web"})), &[]);
    assert!(ok, "{err}");
    let applied: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        applied["metadata"]["labels"],
        serde_json::json!({"app": "web"})
    );
    assert_eq!(
        applied["spec"]["podUID"],
        uid.as_str(),
        "still owned and kept"
    );

    // Another manager with another value: 409 naming the manager and the field.
    let theirs = config(serde_json::json!({"app": "api"}));
    let (ok, _, err) = server_side_apply(f, &theirs, &["--field-manager=deployer"]);
    assert!(!ok, "a conflict must fail");
    assert!(
        err.contains("conflict with \"kubectl\"") && err.contains(".metadata.labels.app"),
        "{err}"
    );
    // Forced: deployer takes the field over.
    let (ok, out, err) = server_side_apply(
        f,
        &theirs,
        &["--field-manager=deployer", "--force-conflicts"],
    );
    assert!(ok, "{err}");
    let forced: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(forced["metadata"]["labels"]["app"], "api");
    let o = owners(f, &f.a, "ssa-pod");
    let deployer = o
        .iter()
        .find(|e| e.0 == "deployer")
        .expect("deployer's entry");
    assert!(deployer.2.contains("\"f:app\""), "{o:?}");
    // kubectl owned nothing else: its entry is gone.
    assert!(
        !o.iter()
            .any(|e| e.0 == "kubectl" && e.2.contains("\"f:app\"")),
        "taken over: {o:?}"
    );

    // An update (kubectl label) owns what it changed, as Update.
    let (ok, _, err) = kubectl(
        f,
        &[
            "label",
            "coredumpendpoint",
            "ssa-pod",
            "-n",
            &f.a,
            "owner=team-a",
        ],
    );
    assert!(ok, "{err}");
    let o = owners(f, &f.a, "ssa-pod");
    let labeler = o
        .iter()
        .find(|e| e.1 == "Update")
        .unwrap_or_else(|| panic!("an Update entry: {o:?}"));
    assert!(labeler.2.contains("\"f:owner\""), "{o:?}");
    // Apply without force now conflicts with that updater on the label it set.
    let (ok, _, err) = server_side_apply(
        f,
        &config(serde_json::json!({"app": "api", "owner": "me"})),
        &["--field-manager=deployer"],
    );
    assert!(!ok);
    assert!(
        err.contains(&format!("conflict with \"{}\"", labeler.0)),
        "{err}"
    );
    let (ok, _, err) = kubectl(f, &["delete", "coredumpendpoint", "ssa-pod", "-n", &f.a]);
    assert!(ok, "{err}");
}

/// The attack: a user allowed to `patch` endpoints but not to `create` them must not create
/// one with a server-side apply (kube-apiserver authorizes such an apply as `create` too). Its
/// apply of an existing endpoint is a patch and goes through.
#[test]
fn server_side_apply_creates_only_with_the_create_permission() {
    let f = fixture();
    cluster::apply(
        f.cp,
        &serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "coredump-endpoint-patcher"},
            "rules": [{"apiGroups": ["coredump.fujitsu.com"], "resources": ["coredumpendpoints"],
                       "verbs": ["get", "patch"]}]}),
    );
    bind(
        f.cp,
        "endpoint-patcher",
        "coredump-endpoint-patcher",
        Some(&f.a),
        user("patcher-a"),
    );
    let as_patcher = "--as=patcher-a";
    eventually(
        Duration::from_secs(30),
        "patcher-a may get endpoints",
        || {
            kubectl(
                f,
                &["get", "coredumpendpoint", "pod-a", "-n", &f.a, as_patcher],
            )
            .0
            .then_some(())
        },
    );
    let new = serde_json::json!({"apiVersion": "coredump.fujitsu.com/v1alpha1",
        "kind": "CoredumpEndpoint", "metadata": {"name": "smuggled", "namespace": f.a},
        "spec": {"podUID": f.uid_b}});
    let (ok, _, err) = server_side_apply(f, &new, &[as_patcher, "--field-manager=patcher"]);
    assert!(!ok, "created without the create permission");
    assert!(
        err.contains("forbidden") && err.contains("cannot create"),
        "{err}"
    );
    let (exists, _, _) = kubectl(f, &["get", "coredumpendpoint", "smuggled", "-n", &f.a]);
    assert!(!exists, "nothing was created");
    // Applying to an existing endpoint is a patch: allowed.
    let label = serde_json::json!({"apiVersion": "coredump.fujitsu.com/v1alpha1",
        "kind": "CoredumpEndpoint",
        "metadata": {"name": "pod-a", "namespace": f.a, "labels": {"patched": "yes"}}});
    let (ok, out, err) = server_side_apply(f, &label, &[as_patcher, "--field-manager=patcher"]);
    assert!(ok, "{err}");
    let patched: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(patched["metadata"]["labels"]["patched"], "yes");
    assert_eq!(patched["spec"]["podUID"], f.uid_a.as_str(), "untouched");
}
