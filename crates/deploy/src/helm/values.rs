//! The chart's values: the few settings a user changes between installs and upgrades without
//! regenerating the chart. Each is a field of [`DeployOptions`]: the chart is rendered from
//! options whose field holds the value's placeholder, and every string the render code builds
//! from it becomes a template expression (see [`super::template`]).
//!
//! The namespace is no value: it is the release's (`helm install -n NS`), placeholder
//! [`NAMESPACE_TOKEN`]. Everything that changes the set or the shape of the objects (a bucket, a
//! claim, etcd elsewhere, replicas, ports) stays a `deploy` flag, fixed when the chart is
//! written.

use serde_json::{Value as Json, json};

use crate::options::DeployOptions;

/// Stands for `.Release.Namespace` in the options the chart is rendered from.
pub(crate) const NAMESPACE_TOKEN: &str = "@@namespace@@";

/// One value of the chart.
pub(crate) struct HelmValue {
    /// Key in `values.yaml`.
    pub(crate) key: &'static str,
    /// Comment above it in `values.yaml`.
    pub(crate) help: &'static str,
    /// What the value may be, for `values.schema.json` (besides being a string).
    pub(crate) schema: fn() -> Json,
}

fn any_string() -> Json {
    json!({"type": "string", "minLength": 1})
}

fn absolute_path() -> Json {
    json!({"type": "string", "pattern": "^/"})
}

/// Every value, in the order of `values.yaml`.
pub(crate) const VALUES: &[HelmValue] = &[
    HelmValue {
        key: "service",
        help: "Name of the API server's Service and Deployment; the serving certificate is \
               issued for SERVICE.NAMESPACE.svc.",
        schema: || json!({"type": "string", "maxLength": 63, "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$"}),
    },
    HelmValue {
        key: "image",
        help: "Image of the API server, GC and agent (built by the repository's Dockerfile).",
        schema: any_string,
    },
    HelmValue {
        key: "imagePullPolicy",
        help: "imagePullPolicy of that image.",
        schema: || json!({"type": "string", "enum": ["Always", "IfNotPresent", "Never"]}),
    },
    HelmValue {
        key: "etcdImage",
        help: "Image of the bundled etcd.",
        schema: any_string,
    },
    HelmValue {
        key: "nsDiskQuota",
        help: "Disk quota per namespace (the agent's NS_DISK_QUOTA), e.g. 1GB, 512Mi.",
        schema: any_string,
    },
    HelmValue {
        key: "gcThreshold",
        help: "Collect the cores of pods and namespaces gone longer than this (e.g. 30m, 2h).",
        schema: any_string,
    },
    HelmValue {
        key: "maxAge",
        help: "Collect crashes older than this whatever their pod (e.g. 720h; 0 = never).",
        schema: any_string,
    },
    HelmValue {
        key: "capture",
        help: "How crashes reach the agent: pipe, socket (Linux >= 6.17) or auto.",
        schema: || json!({"type": "string", "enum": ["pipe", "socket", "auto"]}),
    },
    HelmValue {
        key: "hostDir",
        help: "Node directory of the agent: the handler binary the kernel runs, and the spool.",
        schema: absolute_path,
    },
    HelmValue {
        key: "localPath",
        help: "Host directory of the core files (volume coredump-backend).",
        schema: absolute_path,
    },
    HelmValue {
        key: "etcdDataPath",
        help: "Host directory of the bundled etcd's data (volume etcd-data-dir).",
        schema: absolute_path,
    },
];

/// The placeholder of value `key` in the options the chart is rendered from.
pub(crate) fn token(key: &str) -> String {
    format!("@@{key}@@")
}

/// The value `key` of `opts` (the chart's default), as text.
pub(crate) fn get(opts: &DeployOptions, key: &str) -> String {
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    match key {
        "service" => opts.service.clone(),
        "image" => opts.image.clone(),
        "imagePullPolicy" => opts.image_pull_policy.clone(),
        "etcdImage" => opts.etcd_image.clone(),
        "nsDiskQuota" => opts.ns_disk_quota.clone(),
        "gcThreshold" => opts.gc_threshold.clone(),
        "maxAge" => opts.max_age.clone(),
        "capture" => opts.capture.to_string(),
        "hostDir" => path(&opts.host_dir),
        "localPath" => path(&opts.local_path),
        "etcdDataPath" => path(&opts.etcd_data_path),
        _ => String::new(),
    }
}

/// `opts` with every value, and the namespace, replaced by its placeholder. The capture mode
/// is a type, not text: it keeps its value and [`super::template`] recognises its one flag.
pub(crate) fn with_tokens(opts: &DeployOptions) -> DeployOptions {
    DeployOptions {
        namespace: NAMESPACE_TOKEN.into(),
        service: token("service"),
        image: token("image"),
        image_pull_policy: token("imagePullPolicy"),
        etcd_image: token("etcdImage"),
        ns_disk_quota: token("nsDiskQuota"),
        gc_threshold: token("gcThreshold"),
        max_age: token("maxAge"),
        host_dir: token("hostDir").into(),
        local_path: token("localPath").into(),
        etcd_data_path: token("etcdDataPath").into(),
        // The release's namespace exists before Helm installs into it.
        create_namespace: false,
        ..opts.clone()
    }
}

/// The Go template operand of placeholder `token`, if it is one.
pub(crate) fn operand(token: &str) -> Option<String> {
    if token == NAMESPACE_TOKEN {
        return Some(".Release.Namespace".into());
    }
    VALUES
        .iter()
        .find(|v| self::token(v.key) == token)
        .map(|v| format!(".Values.{}", v.key))
}
