//! The ingest's [`CoredumpSink`] on a cluster: creates the `Coredump` through the Kubernetes API
//! (kube-apiserver proxies `coredump.fujitsu.com/v1alpha1` to our aggregated API server), then
//! counts it in the pod's `CoreDumped` Event series. "Already exists" is success for the
//! `Coredump`, and the series remembers the last crash it counted, so the retry of an ingest
//! killed between the two completes what is missing without counting anything twice.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use coredump_api::Coredump;
use coredump_api::client::KubeCoredump;
use coredump_ingest::{CoredumpSink, SinkError};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

use crate::event::{count_in, crash_event};
use crate::metrics::Metrics;

/// Records crashes through the Kubernetes API.
pub struct KubeSink {
    client: Client,
    node_name: String,
    metrics: Arc<Metrics>,
}

impl KubeSink {
    /// A sink using `client`, reporting as the agent of `node_name`.
    pub fn new(client: Client, node_name: String, metrics: Arc<Metrics>) -> KubeSink {
        KubeSink {
            client,
            node_name,
            metrics,
        }
    }

    /// Creates the Event series for `c`'s pod, or counts `c` into it; failures are logged (an
    /// Event is a courtesy, the `Coredump` is the record).
    async fn emit_event(&self, c: &Coredump) {
        let now = || MicroTime(k8s_openapi::jiff::Timestamp::now());
        let Some(event) = crash_event(c, &self.node_name, now()) else {
            return;
        };
        let name = event.metadata.name.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &c.metadata.namespace);
        let mut outcome = api.create(&PostParams::default(), &event).await.map(|_| ());
        // Exists: count this crash in the series, retrying when another write came between.
        for _ in 0..5 {
            match &outcome {
                Err(kube::Error::Api(status))
                    if status.is_already_exists() || status.code == 409 => {}
                _ => break,
            }
            outcome = match api.get(&name).await {
                Ok(existing) => match count_in(&existing, c, now()) {
                    None => Ok(()),
                    Some(patch) => api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| ()),
                },
                Err(e) => Err(e),
            };
        }
        match outcome {
            Ok(()) => self.metrics.event(true),
            Err(e) => {
                self.metrics.event(false);
                tracing::warn!(coredump = %c.metadata.name, event = %name, error = %e, "recording the CoreDumped event failed");
            }
        }
    }
}

/// Time from the crash (the object's `spec.crashTime`) to now.
fn latency(c: &Coredump) -> Duration {
    let crashed = time::OffsetDateTime::parse(
        &c.spec.crash_time,
        &time::format_description::well_known::Rfc3339,
    );
    match crashed {
        Ok(t) => {
            let d = time::OffsetDateTime::now_utc() - t;
            Duration::try_from(d).unwrap_or_default()
        }
        Err(_) => Duration::ZERO,
    }
}

#[async_trait]
impl CoredumpSink for KubeSink {
    async fn record(&self, coredump: Coredump) -> Result<(), SinkError> {
        let name = coredump.metadata.name.clone();
        let failed = |message: String| SinkError::Failed {
            name: name.clone(),
            message,
        };
        let object =
            KubeCoredump::try_from(&coredump).map_err(|e| failed(format!("encoding: {e}")))?;
        let api: Api<KubeCoredump> =
            Api::namespaced(self.client.clone(), &coredump.metadata.namespace);
        let created = match api.create(&PostParams::default(), &object).await {
            Ok(_) => true,
            Err(kube::Error::Api(status)) if status.is_already_exists() => false,
            Err(e) => {
                self.metrics.record_error();
                return Err(failed(e.to_string()));
            }
        };
        if created {
            self.metrics.recorded(&coredump, latency(&coredump));
            tracing::info!(
                coredump = %name,
                namespace = %coredump.metadata.namespace,
                pod = ?coredump.spec.pod_name,
                container = ?coredump.spec.container_name,
                state = coredump.status.state.as_str(),
                "recorded crash"
            );
        }
        self.emit_event(&coredump).await;
        if created {
            Ok(())
        } else {
            Err(SinkError::AlreadyExists(name))
        }
    }
}
