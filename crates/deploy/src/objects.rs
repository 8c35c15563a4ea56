//! The plumbing objects of an install: the Namespace, the TLS Secret, the two Services and the
//! APIService that makes kube-apiserver proxy `coredump.fujitsu.com/v1alpha1` to our server.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::{
    APIService, APIServiceSpec, ServiceReference,
};

use crate::certs::Certs;
use crate::names::{
    API_GROUP, API_VERSION, APISERVICE, ETCD_PORT, ETCD_SERVICE, SERVICE_PORT, TLS_SECRET,
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

/// Secret `servercrt` (`kubernetes.io/tls`) with the serving certificate and key.
pub(crate) fn tls_secret(opts: &DeployOptions, certs: &Certs) -> Object {
    let data = BTreeMap::from([
        (
            "tls.crt".to_string(),
            ByteString(certs.server.cert_pem.clone().into_bytes()),
        ),
        (
            "tls.key".to_string(),
            ByteString(certs.server.key_pem.clone().into_bytes()),
        ),
    ]);
    Object::Secret(Secret {
        metadata: meta(TLS_SECRET, Some(&opts.namespace), "apiserver"),
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    })
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

/// Service SERVICE (443 → the API server's port) and `etcd-svc` (2379).
pub(crate) fn services(opts: &DeployOptions) -> Vec<Object> {
    vec![
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
    ]
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
