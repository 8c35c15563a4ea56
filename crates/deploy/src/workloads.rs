//! The four workloads: etcd (StatefulSet `etcd`), the API server (Deployment SERVICE), the GC
//! (Deployment `coredump-gc`) and the node agent (DaemonSet `kcdt-ds`). The last three run the
//! one `coredump-detector` image with a role subcommand; their flags, mounts and environment are
//! the contract listed in [`crate::names`].

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, EnvVar,
    EnvVarSource, HTTPGetAction, HostPathVolumeSource, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodAffinityTerm, PodAntiAffinity,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretEnvSource, SecretVolumeSource, SecurityContext, Toleration, Volume, VolumeMount,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::error::DeployError;
use crate::names::{
    AGENT_DAEMONSET, AGENT_SERVICE_ACCOUNT, API_SERVICE_ACCOUNT, BINARY, CORES_MOUNT, CORES_VOLUME,
    ENV_NODE_NAME, ENV_NS_DISK_QUOTA, ENV_POD_NAMESPACE, ETCD_CLIENT_MOUNT, ETCD_CLIENT_SECRET,
    ETCD_METRICS_PORT, ETCD_MOUNT, ETCD_PORT, ETCD_SERVER_SECRET, ETCD_SERVICE, ETCD_STATEFULSET,
    ETCD_TLS_MOUNT, ETCD_VOLUME, GC_DEPLOYMENT, GC_SERVICE_ACCOUNT, GC_STATE_MOUNT,
    GC_STATE_VOLUME, HOST_DIR_VOLUME, HOSTNAME_TOPOLOGY_KEY, NODE_RUN_VOLUME, POD_LOGS_DIR,
    POD_LOGS_VOLUME, SERVICE_UID, TLS_MOUNT, TLS_SECRET, etcd_url,
};
use crate::options::{CoreStorage, DeployOptions, MetadataStore, path_str};
use crate::render::{Object, labels, meta};

/// The workloads, etcd first (the API server waits for it); no etcd with `--etcd-servers`.
pub(crate) fn workloads(opts: &DeployOptions) -> Result<Vec<Object>, DeployError> {
    let mut all = Vec::new();
    if opts.bundles_etcd() {
        all.push(etcd(opts)?);
    }
    all.push(apiserver(opts)?);
    all.extend(api_disruption_budget(opts));
    all.extend([gc(opts)?, agent(opts)?]);
    Ok(all)
}

fn template(component: &str, spec: PodSpec) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(component)),
            ..Default::default()
        }),
        spec: Some(spec),
    }
}

fn selector(component: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels(component)),
        ..Default::default()
    }
}

fn host_path_volume(
    name: &str,
    option: &'static str,
    path: &std::path::Path,
) -> Result<Volume, DeployError> {
    Ok(Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource {
            path: path_str(option, path)?.to_string(),
            type_: Some("DirectoryOrCreate".into()),
        }),
        ..Default::default()
    })
}

/// The `coredump-backend` volume of a pod that reads or writes cores: the node's hostPath or
/// the shared claim; `None` for a bucket, which needs no volume.
fn cores_volume(opts: &DeployOptions) -> Result<Option<Volume>, DeployError> {
    match opts.core_storage() {
        CoreStorage::HostPath(path) => {
            host_path_volume(CORES_VOLUME, "--local-path", path).map(Some)
        }
        CoreStorage::Claim(claim) => Ok(Some(Volume {
            name: CORES_VOLUME.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.into(),
                read_only: None,
            }),
            ..Default::default()
        })),
        CoreStorage::Bucket => Ok(None),
    }
}

/// The filesystem store's flags for a role whose pod mounts [`cores_volume`]; none for a
/// bucket (`--blob-store`, added by [`detector`], says it all).
fn local_store_args(opts: &DeployOptions) -> Vec<String> {
    match opts.core_storage() {
        CoreStorage::Bucket => Vec::new(),
        CoreStorage::HostPath(_) | CoreStorage::Claim(_) => vec![
            format!("--local-path={CORES_MOUNT}"),
            "--backend-kind=local".into(),
        ],
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn field_env(name: &str, field: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field.into(),
                api_version: None,
            }),
            ..Default::default()
        }),
        value: None,
    }
}

fn resources(cpu: &str, memory: &str, memory_limit: &str) -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            Quantity(memory_limit.into()),
        )])),
        ..Default::default()
    }
}

fn http_probe(path: &str, port: &str, scheme: &str, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port.into()),
            scheme: Some(scheme.into()),
            ..Default::default()
        }),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

fn port(name: &str, number: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number.into(),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

/// Unprivileged container: no capabilities (but binding a port below 1024, if an operator
/// chose one), no privilege escalation, a read-only root filesystem.
fn restricted(bind_low_port: bool) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: bind_low_port.then(|| vec!["NET_BIND_SERVICE".into()]),
        }),
        ..Default::default()
    }
}

/// Pod of an unprivileged component: runs as [`SERVICE_UID`] (the owner of the stored cores and
/// the group of its mounted Secrets), never as root, under the runtime's default seccomp filter.
fn non_root_pod() -> PodSecurityContext {
    let id = i64::from(SERVICE_UID);
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(id),
        run_as_group: Some(id),
        fs_group: Some(id),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..Default::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}

/// A Secret volume readable by the pod's group (`fsGroup`) only.
fn secret_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A `coredump-detector <role> <flags>` container.
/// A container of our binary running `args`; the roles that store cores (every one here) get
/// the blob store of the install: `--blob-store` and the Secret of its credentials.
fn detector(opts: &DeployOptions, name: &str, mut args: Vec<String>) -> Container {
    if opts.blob_store != "local" {
        args.push(format!("--blob-store={}", opts.blob_store));
    }
    Container {
        name: name.into(),
        image: Some(opts.image.clone()),
        image_pull_policy: Some(opts.image_pull_policy.clone()),
        command: Some(vec![BINARY.into()]),
        args: Some(args),
        env: Some(vec![field_env(ENV_POD_NAMESPACE, "metadata.namespace")]),
        env_from: opts.blob_store_secret.as_ref().map(|secret| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: secret.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }]
        }),
        ..Default::default()
    }
}

/// etcd's data: the node's hostPath in the pod, or a claim per replica from the template.
fn etcd_data(
    opts: &DeployOptions,
) -> Result<(Option<Volume>, Option<PersistentVolumeClaim>), DeployError> {
    match opts.metadata_store() {
        MetadataStore::BundledClaim(class) => {
            let bytes = coredump_common::parse_bytes(&opts.etcd_storage_size).map_err(|e| {
                DeployError::invalid("--etcd-storage-size", &opts.etcd_storage_size, e.why)
            })?;
            let claim = PersistentVolumeClaim {
                metadata: meta(ETCD_VOLUME, None, "etcd"),
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: Some(class.into()),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            Quantity(quantity(bytes)),
                        )])),
                        limits: None,
                    }),
                    ..Default::default()
                }),
                status: None,
            };
            Ok((None, Some(claim)))
        }
        _ => Ok((
            Some(host_path_volume(
                ETCD_VOLUME,
                "--etcd-data-path",
                &opts.etcd_data_path,
            )?),
            None,
        )),
    }
}

/// `bytes` as a Kubernetes quantity: the largest binary suffix that divides it exactly, so
/// `1Gi` stays `1Gi` and `1GB` (parsed as 10^9 bytes) becomes a plain byte count.
fn quantity(bytes: u64) -> String {
    for (shift, suffix) in [(40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

fn etcd(opts: &DeployOptions) -> Result<Object, DeployError> {
    let container = Container {
        name: "etcd".into(),
        image: Some(opts.etcd_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["/usr/local/bin/etcd".into()]),
        // Clients must present a certificate of the install's etcd CA: only the API server has
        // one. The plain-HTTP metrics listener answers probes and serves no keys.
        args: Some(vec![
            format!("--data-dir={ETCD_MOUNT}"),
            format!("--listen-client-urls=https://0.0.0.0:{ETCD_PORT}"),
            format!("--advertise-client-urls={}", etcd_url(&opts.namespace)),
            format!("--cert-file={ETCD_TLS_MOUNT}/tls.crt"),
            format!("--key-file={ETCD_TLS_MOUNT}/tls.key"),
            "--client-cert-auth=true".into(),
            format!("--trusted-ca-file={ETCD_TLS_MOUNT}/ca.crt"),
            format!("--listen-metrics-urls=http://0.0.0.0:{ETCD_METRICS_PORT}"),
        ]),
        ports: Some(vec![
            port("etcd", ETCD_PORT),
            port("metrics", ETCD_METRICS_PORT),
        ]),
        readiness_probe: Some(http_probe("/readyz", "metrics", "HTTP", 1)),
        liveness_probe: Some(http_probe("/livez", "metrics", "HTTP", 3)),
        resources: Some(resources("100m", "128Mi", "512Mi")),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount(ETCD_VOLUME, ETCD_MOUNT, false),
            mount("tls", ETCD_TLS_MOUNT, true),
        ]),
        ..Default::default()
    };
    let (data_volume, data_claim) = etcd_data(opts)?;
    Ok(Object::StatefulSet(StatefulSet {
        metadata: meta(ETCD_STATEFULSET, Some(&opts.namespace), "etcd"),
        spec: StatefulSetSpec {
            service_name: Some(ETCD_SERVICE.into()),
            replicas: Some(1),
            selector: selector("etcd"),
            template: template(
                "etcd",
                PodSpec {
                    termination_grace_period_seconds: Some(10),
                    // etcd's hostPath data stays root's; the filter still applies.
                    security_context: Some(PodSecurityContext {
                        seccomp_profile: Some(runtime_default_seccomp()),
                        ..Default::default()
                    }),
                    automount_service_account_token: Some(false),
                    containers: vec![container],
                    volumes: Some(
                        data_volume
                            .into_iter()
                            .chain([secret_volume("tls", ETCD_SERVER_SECRET)])
                            .collect(),
                    ),
                    ..Default::default()
                },
            ),
            volume_claim_templates: data_claim.map(|claim| vec![claim]),
            ..Default::default()
        },
        status: None,
    }))
}

/// The Secret of the API server's etcd client certificate: the generated one for the bundled
/// etcd, `--etcd-client-secret` for an existing cluster (none for plain `http://`).
fn etcd_client_secret(opts: &DeployOptions) -> Option<&str> {
    match opts.metadata_store() {
        MetadataStore::External { client_secret, .. } => client_secret,
        _ => Some(ETCD_CLIENT_SECRET),
    }
}

/// `--etcd-servers` and, with a client Secret, the files of its mount.
fn etcd_args(opts: &DeployOptions) -> Vec<String> {
    let servers = match opts.metadata_store() {
        MetadataStore::External { servers, .. } => servers.join(","),
        _ => etcd_url(&opts.namespace),
    };
    let mut args = vec![format!("--etcd-servers={servers}")];
    if etcd_client_secret(opts).is_some() {
        args.extend([
            format!("--etcd-cafile={ETCD_CLIENT_MOUNT}/ca.crt"),
            format!("--etcd-certfile={ETCD_CLIENT_MOUNT}/tls.crt"),
            format!("--etcd-keyfile={ETCD_CLIENT_MOUNT}/tls.key"),
        ]);
    }
    args
}

fn apiserver(opts: &DeployOptions) -> Result<Object, DeployError> {
    let mut container = detector(
        opts,
        "apiserver",
        vec![
            "apiserver".into(),
            format!("--secure-port={}", opts.api_port),
        ]
        .into_iter()
        .chain(etcd_args(opts))
        .chain([
            format!("--tls-cert-file={TLS_MOUNT}/tls.crt"),
            format!("--tls-private-key-file={TLS_MOUNT}/tls.key"),
        ])
        .chain(local_store_args(opts))
        .chain([format!(
            "--node-bound-users=system:serviceaccount:{}:{AGENT_SERVICE_ACCOUNT}",
            opts.namespace
        )])
        .collect(),
    );
    container.ports = Some(vec![port("https", opts.api_port)]);
    container.readiness_probe = Some(http_probe("/readyz", "https", "HTTPS", 3));
    container.liveness_probe = Some(http_probe("/livez", "https", "HTTPS", 3));
    container.resources = Some(resources("100m", "128Mi", "1Gi"));
    container.security_context = Some(restricted(opts.api_port < 1024));
    let cores = cores_volume(opts)?;
    let etcd_client = etcd_client_secret(opts);
    let mut mounts = vec![mount("tls", TLS_MOUNT, true)];
    mounts.extend(
        etcd_client
            .is_some()
            .then(|| mount("etcd-client", ETCD_CLIENT_MOUNT, true)),
    );
    mounts.extend(
        cores
            .is_some()
            .then(|| mount(CORES_VOLUME, CORES_MOUNT, false)),
    );
    container.volume_mounts = Some(mounts);
    let replicas = i32::try_from(opts.api_replicas).unwrap_or(i32::MAX);
    Ok(Object::Deployment(Deployment {
        metadata: meta(&opts.service, Some(&opts.namespace), "apiserver"),
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: selector("apiserver"),
            template: template(
                "apiserver",
                PodSpec {
                    service_account_name: Some(API_SERVICE_ACCOUNT.into()),
                    security_context: Some(non_root_pod()),
                    affinity: (opts.api_replicas > 1).then(spread_over_nodes),
                    containers: vec![container],
                    volumes: Some(
                        [secret_volume("tls", TLS_SECRET)]
                            .into_iter()
                            .chain(etcd_client.map(|s| secret_volume("etcd-client", s)))
                            .chain(cores)
                            .collect(),
                    ),
                    ..Default::default()
                },
            ),
            ..Default::default()
        },
        status: None,
    }))
}

/// Replicas preferably on different nodes (preferred, not required: a cluster with fewer nodes
/// than replicas still runs them all).
fn spread_over_nodes() -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(selector("apiserver")),
                        topology_key: HOSTNAME_TOPOLOGY_KEY.into(),
                        ..Default::default()
                    },
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// With more than one replica, a drain or an upgrade takes at most one away at a time, so the
/// Service always has one to answer.
fn api_disruption_budget(opts: &DeployOptions) -> Option<Object> {
    (opts.api_replicas > 1).then(|| {
        Object::PodDisruptionBudget(PodDisruptionBudget {
            metadata: meta(&opts.service, Some(&opts.namespace), "apiserver"),
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(selector("apiserver")),
                ..Default::default()
            }),
            status: None,
        })
    })
}

fn gc(opts: &DeployOptions) -> Result<Object, DeployError> {
    let mut container = detector(
        opts,
        "gc",
        ["gc".into(), format!("--gc-threshold={}", opts.gc_threshold)]
            .into_iter()
            .chain(local_store_args(opts))
            .chain([format!(
                "--metrics-bind-address=0.0.0.0:{}",
                opts.gc_metrics_port
            )])
            .collect(),
    );
    if opts.max_age != "0"
        && let Some(args) = container.args.as_mut()
    {
        args.insert(2, format!("--max-age={}", opts.max_age));
    }
    container.resources = Some(resources("50m", "64Mi", "256Mi"));
    container.ports = Some(vec![port("metrics", opts.gc_metrics_port)]);
    // Ready once a whole collection went through (pods, namespaces, objects and blobs read).
    container.readiness_probe = Some(http_probe("/readyz", "metrics", "HTTP", 3));
    container.liveness_probe = Some(http_probe("/healthz", "metrics", "HTTP", 3));
    container.security_context = Some(restricted(false));
    // The "gone since" state lives beside the cores on a filesystem store (the claim outlives
    // every pod). With a bucket there is no such volume: the state goes to the pod's own
    // emptyDir, which survives the container's restarts (the GC's crashes and OOM kills) but
    // not a rescheduling; losing it restarts the clocks, which delays collection by one
    // --gc-threshold and never deletes early.
    let cores = cores_volume(opts)?;
    let volumes = match &cores {
        Some(volume) => {
            container.volume_mounts = Some(vec![mount(CORES_VOLUME, CORES_MOUNT, false)]);
            vec![volume.clone()]
        }
        None => {
            container.volume_mounts = Some(vec![mount(GC_STATE_VOLUME, GC_STATE_MOUNT, false)]);
            if let Some(args) = container.args.as_mut() {
                args.push(format!("--state-file={GC_STATE_MOUNT}/state.json"));
            }
            vec![Volume {
                name: GC_STATE_VOLUME.into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            }]
        }
    };
    Ok(Object::Deployment(Deployment {
        metadata: meta(GC_DEPLOYMENT, Some(&opts.namespace), "gc"),
        spec: DeploymentSpec {
            replicas: Some(1),
            selector: selector("gc"),
            template: template(
                "gc",
                PodSpec {
                    service_account_name: Some(GC_SERVICE_ACCOUNT.into()),
                    security_context: Some(non_root_pod()),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                },
            ),
            ..Default::default()
        },
        status: None,
    }))
}

/// The agent's core volume: the claim when there is one, else the node's hostPath (with a
/// bucket too, see [`agent`]).
fn agent_cores_volume(opts: &DeployOptions) -> Result<Volume, DeployError> {
    match cores_volume(opts)? {
        Some(volume) => Ok(volume),
        None => host_path_volume(CORES_VOLUME, "--local-path", &opts.local_path),
    }
}

/// The node agent: privileged (it writes `/proc/sys/kernel/core_pattern`, which is global),
/// in the host's PID namespace (it reads `/proc/<pid>` of crashed processes), with the node
/// directory mounted at its host path because `core_pattern` and the coredump socket name host
/// paths. SIGTERM makes it restore the previous `core_pattern`; the grace period gives it time.
/// The host's `/run/coredump-detector` is mounted too, whatever `--host-dir`: the lock there
/// makes a second agent on the node (another install) exit instead of taking `core_pattern`.
fn agent(opts: &DeployOptions) -> Result<Object, DeployError> {
    use coredump_capture::kernel::OWNER_LOCK_DIR as NODE_RUN_DIR;
    let host_dir = path_str("--host-dir", &opts.host_dir)?;
    let mut container = detector(
        opts,
        "agent",
        // With a bucket the agent keeps the hostPath too: its free-space floor is measured
        // on `--local-path` (the disk the spool shares on most nodes).
        vec![
            "agent".into(),
            format!("--host-dir={host_dir}"),
            format!("--local-path={CORES_MOUNT}"),
            "--backend-kind=local".into(),
            format!("--blob-owner={SERVICE_UID}:{SERVICE_UID}"),
            format!("--metrics-bind-address=0.0.0.0:{}", opts.agent_metrics_port),
            format!("--capture={}", opts.capture),
        ],
    );
    let mut env = container.env.take().unwrap_or_default();
    env.push(field_env(ENV_NODE_NAME, "spec.nodeName"));
    env.push(EnvVar {
        name: ENV_NS_DISK_QUOTA.into(),
        value: Some(opts.ns_disk_quota.clone()),
        value_from: None,
    });
    container.env = Some(env);
    container.ports = Some(vec![port("metrics", opts.agent_metrics_port)]);
    container.readiness_probe = Some(http_probe("/readyz", "metrics", "HTTP", 3));
    container.liveness_probe = Some(http_probe("/healthz", "metrics", "HTTP", 3));
    container.resources = Some(resources("50m", "64Mi", "1Gi"));
    container.security_context = Some(SecurityContext {
        privileged: Some(true),
        ..Default::default()
    });
    container.volume_mounts = Some(vec![
        mount(HOST_DIR_VOLUME, host_dir, false),
        mount(CORES_VOLUME, CORES_MOUNT, false),
        // The tail of a crashed container's log is kept beside its core.
        mount(POD_LOGS_VOLUME, POD_LOGS_DIR, true),
        mount(NODE_RUN_VOLUME, NODE_RUN_DIR, false),
    ]);
    Ok(Object::DaemonSet(DaemonSet {
        metadata: meta(AGENT_DAEMONSET, Some(&opts.namespace), "agent"),
        spec: DaemonSetSpec {
            selector: selector("agent"),
            template: template(
                "agent",
                PodSpec {
                    service_account_name: Some(AGENT_SERVICE_ACCOUNT.into()),
                    host_pid: Some(true),
                    termination_grace_period_seconds: Some(30),
                    // Every node, tainted ones included: crashes happen everywhere.
                    tolerations: Some(vec![Toleration {
                        operator: Some("Exists".into()),
                        ..Default::default()
                    }]),
                    containers: vec![container],
                    volumes: Some(vec![
                        host_path_volume(HOST_DIR_VOLUME, "--host-dir", &opts.host_dir)?,
                        agent_cores_volume(opts)?,
                        host_path_volume(
                            POD_LOGS_VOLUME,
                            "pod log directory",
                            std::path::Path::new(POD_LOGS_DIR),
                        )?,
                        host_path_volume(
                            NODE_RUN_VOLUME,
                            "owner lock directory",
                            std::path::Path::new(NODE_RUN_DIR),
                        )?,
                    ]),
                    ..Default::default()
                },
            ),
            ..Default::default()
        },
        status: None,
    }))
}
