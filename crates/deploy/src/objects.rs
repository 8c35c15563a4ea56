//! The plumbing objects of an install: the Namespace, the TLS Secrets, the two Services, the
//! APIService that makes kube-apiserver proxy `coredump.fujitsu.com/v1alpha1` to our server, and
//! the NetworkPolicies that keep every other pod away from etcd.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::{
    APIService, APIServiceSpec, ServiceReference,
};

use coredump_pki::Issued;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::certs::Certs;
use crate::names::{
    API_GROUP, API_NETWORK_POLICY, API_VERSION, APISERVICE, ETCD_CLIENT_SECRET,
    ETCD_NETWORK_POLICY, ETCD_PORT, ETCD_SERVER_SECRET, ETCD_SERVICE, SERVICE_PORT, TLS_SECRET,
};
use crate::options::DeployOptions;
use crate::render::{Object, labels, meta};

/// The install's Namespace.
pub(crate) fn namespace(opts: &DeployOptions) -> Object {
    let mut metadata = meta(&opts.namespace, None, "namespace");
    // The agent is privileged, uses the host's PID namespace and hostPath volumes: only the
    // `privileged` Pod Security level admits it, whatever the cluster's default level is.
    if let Some(labels) = metadata.labels.as_mut() {
        labels.insert(
            "pod-security.kubernetes.io/enforce".into(),
            "privileged".into(),
        );
    }
    Object::Namespace(Namespace {
        metadata,
        ..Default::default()
    })
}

/// A `kubernetes.io/tls` Secret holding `issued`, and `ca.crt` when given.
fn tls_secret_of(
    opts: &DeployOptions,
    name: &str,
    component: &str,
    issued: &Issued,
    ca: Option<&Issued>,
) -> Object {
    let mut data = BTreeMap::from([
        (
            "tls.crt".to_string(),
            ByteString(issued.cert_pem.clone().into_bytes()),
        ),
        (
            "tls.key".to_string(),
            ByteString(issued.key_pem.clone().into_bytes()),
        ),
    ]);
    if let Some(ca) = ca {
        data.insert(
            "ca.crt".to_string(),
            ByteString(ca.cert_pem.clone().into_bytes()),
        );
    }
    Object::Secret(Secret {
        metadata: meta(name, Some(&opts.namespace), component),
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    })
}

/// The Secrets: `servercrt` (the API server's serving certificate and key), `etcd-server-tls`
/// (etcd's) and `etcd-client-tls` (the API server's etcd client certificate), the last two
/// with the etcd CA as `ca.crt`.
/// With `--etcd-servers`, only the first: there is no bundled etcd.
pub(crate) fn tls_secrets(opts: &DeployOptions, certs: &Certs) -> Vec<Object> {
    let server = tls_secret_of(opts, TLS_SECRET, "apiserver", &certs.server, None);
    if !opts.bundles_etcd() {
        return vec![server];
    }
    vec![
        server,
        tls_secret_of(
            opts,
            ETCD_SERVER_SECRET,
            "etcd",
            &certs.etcd_server,
            Some(&certs.etcd_ca),
        ),
        tls_secret_of(
            opts,
            ETCD_CLIENT_SECRET,
            "apiserver",
            &certs.etcd_client,
            Some(&certs.etcd_ca),
        ),
    ]
}

/// An Ingress-only NetworkPolicy for `component`'s pods: nothing reaches them but `rule`.
fn ingress_policy(
    opts: &DeployOptions,
    name: &str,
    component: &str,
    rule: NetworkPolicyIngressRule,
) -> Object {
    Object::NetworkPolicy(NetworkPolicy {
        metadata: meta(name, Some(&opts.namespace), component),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(labels(component)),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![rule]),
            egress: None,
        }),
    })
}

fn tcp_port(port: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port.into())),
        protocol: Some("TCP".into()),
        end_port: None,
    }
}

/// The NetworkPolicies (enforced where the cluster's network plugin supports them):
/// * `etcd`: only the API server's pods reach etcd's client port (which also demands the API
///   server's client certificate); its probe port is left to kubelet;
/// * `apiserver`: only the API server's HTTPS port is reachable (from anywhere: kube-apiserver's
///   aggregator may dial from outside the pod network).
///
/// The first only with the bundled etcd.
pub(crate) fn network_policies(opts: &DeployOptions) -> Vec<Object> {
    let mut all = vec![
        ingress_policy(
            opts,
            ETCD_NETWORK_POLICY,
            "etcd",
            NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(labels("apiserver")),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ports: Some(vec![tcp_port(ETCD_PORT)]),
            },
        ),
        ingress_policy(
            opts,
            API_NETWORK_POLICY,
            "apiserver",
            NetworkPolicyIngressRule {
                from: None,
                ports: Some(vec![tcp_port(opts.api_port)]),
            },
        ),
    ];
    if !opts.bundles_etcd() {
        all.remove(0);
    }
    all
}

fn service(opts: &DeployOptions, name: &str, component: &str, port: ServicePort) -> Object {
    Object::Service(Service {
        metadata: meta(name, Some(&opts.namespace), component),
        spec: Some(ServiceSpec {
            selector: Some(labels(component)),
            ports: Some(vec![port]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Service SERVICE (443 → the API server's port) and, with the bundled etcd, `etcd-svc` (2379).
pub(crate) fn services(opts: &DeployOptions) -> Vec<Object> {
    let mut all = vec![
        service(
            opts,
            &opts.service,
            "apiserver",
            ServicePort {
                name: Some("https".into()),
                port: SERVICE_PORT.into(),
                target_port: Some(IntOrString::Int(opts.api_port.into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ),
        service(
            opts,
            ETCD_SERVICE,
            "etcd",
            ServicePort {
                name: Some("etcd".into()),
                port: ETCD_PORT.into(),
                target_port: Some(IntOrString::Int(ETCD_PORT.into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            },
        ),
    ];
    all.truncate(if opts.bundles_etcd() { 2 } else { 1 });
    all
}

/// APIService `v1alpha1.coredump.fujitsu.com` (the seed's priorities), trusting the install's CA.
pub(crate) fn api_service(opts: &DeployOptions, certs: &Certs) -> Object {
    Object::APIService(APIService {
        metadata: meta(APISERVICE, None, "apiserver"),
        spec: Some(APIServiceSpec {
            group: Some(API_GROUP.into()),
            version: Some(API_VERSION.into()),
            group_priority_minimum: 2000,
            version_priority: 10,
            service: Some(ServiceReference {
                namespace: Some(opts.namespace.clone()),
                name: Some(opts.service.clone()),
                port: Some(SERVICE_PORT.into()),
            }),
            ca_bundle: Some(ByteString(certs.ca.cert_pem.clone().into_bytes())),
            insecure_skip_tls_verify: None,
        }),
        status: None,
    })
}
