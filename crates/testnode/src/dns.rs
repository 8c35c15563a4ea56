//! The node's cluster DNS: `A` records of Services (`<service>.<namespace>.svc.cluster.local`
//! → its ClusterIP), answered on the node's address inside the node's network namespace,
//! where kubelet points every pod's resolv.conf. The deploy manifest's API server reaches its
//! etcd as `etcd-svc.<namespace>.svc`; nothing else of the install needs names.
//!
//! Why not CoreDNS: no image can be pulled here, and building one from its Go module (every
//! plugin is compiled in) costs minutes of CI time for a feature we do not test. This is a
//! thread of the fixture process: UDP only, Services with a ClusterIP only (no headless
//! Services, no pod records, no forwarding: other names get NXDOMAIN).
//!
//! Services come from `kubectl get services -A`, re-read at a query when the last read is older
//! than [`REFRESH`], so a Service created (or recreated with a new ClusterIP) a moment ago
//! resolves right.

use std::collections::HashMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

/// Queries re-read the Services at most this often.
pub const REFRESH: Duration = Duration::from_millis(300);
/// TTL of answers (seconds): short, Services come and go in tests.
const TTL: u32 = 5;

/// Reads every Service: the JSON of `kubectl get services -A -o json`.
pub type ServiceSource = Box<dyn FnMut() -> Result<String, String> + Send>;

/// `(namespace, name)` → ClusterIP.
type Table = HashMap<(String, String), Ipv4Addr>;

/// The part of a Service list we read.
#[derive(serde::Deserialize)]
struct ServiceList {
    items: Vec<Service>,
}

#[derive(serde::Deserialize)]
struct Service {
    metadata: Meta,
    spec: Spec,
}

#[derive(serde::Deserialize)]
struct Meta {
    name: String,
    namespace: String,
}

#[derive(serde::Deserialize)]
struct Spec {
    #[serde(rename = "clusterIP", default)]
    cluster_ip: Option<String>,
}

/// Services with an IPv4 ClusterIP, from a Service list's JSON.
fn parse_services(json: &str) -> Result<Table, String> {
    let list: ServiceList = serde_json::from_str(json).map_err(|e| e.to_string())?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|s| {
            let ip = s.spec.cluster_ip?.parse().ok()?;
            Some(((s.metadata.namespace, s.metadata.name), ip))
        })
        .collect())
}

/// `(namespace, service)` of `<service>.<namespace>.svc.<domain>.` (any case), else `None`.
fn service_of(name: &str, domain: &str) -> Option<(String, String)> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let rest = name.strip_suffix(&format!(".svc.{domain}"))?;
    let (service, namespace) = rest.split_once('.')?;
    (!namespace.contains('.') && !service.is_empty())
        .then(|| (namespace.to_string(), service.to_string()))
}

/// Answers queries on `socket` until this process exits.
pub fn serve(socket: UdpSocket, domain: String, mut source: ServiceSource) {
    let mut table = Table::new();
    let mut read_at: Option<Instant> = None;
    let mut buf = [0u8; 1500];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        let mut lookup = |key: &(String, String)| {
            // Re-read on every query once the table is older than REFRESH, hit or miss: a
            // Service deleted and created again gets a new ClusterIP under the same name.
            if read_at.is_none_or(|t| t.elapsed() >= REFRESH) {
                if let Ok(fresh) = source().and_then(|json| parse_services(&json)) {
                    table = fresh;
                }
                read_at = Some(Instant::now());
            }
            table.get(key).copied()
        };
        let reply = answer(&query, &domain, &mut lookup);
        if let Ok(bytes) = reply.to_vec() {
            let _ = socket.send_to(&bytes, peer);
        }
    }
}

/// The response to `query`: `A` of a known Service, no records (NOERROR) for its other types,
/// NXDOMAIN for every other name.
fn answer(
    query: &Message,
    domain: &str,
    lookup: &mut dyn FnMut(&(String, String)) -> Option<Ipv4Addr>,
) -> Message {
    let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.authoritative = true;
    let Some(q) = query.queries.first() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        return reply;
    };
    reply.add_query(q.clone());
    let found = service_of(&q.name().to_ascii(), domain).and_then(|key| lookup(&key));
    match (found, q.query_type()) {
        (Some(ip), RecordType::A) => {
            reply.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))));
        }
        (Some(_), _) => {}
        (None, _) => reply.metadata.response_code = ResponseCode::NXDomain,
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn ask(name: &str, kind: RecordType) -> Message {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        m
    }

    #[test]
    fn service_names_map_to_namespace_and_service() {
        assert_eq!(
            service_of("etcd-svc.ns-1.svc.cluster.local.", "cluster.local"),
            Some(("ns-1".into(), "etcd-svc".into()))
        );
        assert_eq!(
            service_of("Etcd-Svc.NS.svc.cluster.local", "cluster.local"),
            Some(("ns".into(), "etcd-svc".into()))
        );
        assert_eq!(
            service_of("etcd-svc.ns.svc.ns.svc.cluster.local.", "cluster.local"),
            None
        );
        assert_eq!(service_of("ns.svc.cluster.local.", "cluster.local"), None);
        assert_eq!(service_of("example.org.", "cluster.local"), None);
    }

    #[test]
    fn answers_a_for_services_and_nxdomain_otherwise() {
        let json = r#"{"items":[
            {"metadata":{"name":"etcd-svc","namespace":"cd"},"spec":{"clusterIP":"10.0.0.12"}},
            {"metadata":{"name":"headless","namespace":"cd"},"spec":{"clusterIP":"None"}}]}"#;
        let table = parse_services(json).unwrap();
        assert_eq!(table.len(), 1);
        let mut lookup = |k: &(String, String)| table.get(k).copied();
        let reply = answer(
            &ask("etcd-svc.cd.svc.cluster.local.", RecordType::A),
            "cluster.local",
            &mut lookup,
        );
        let bytes = reply.to_vec().unwrap();
        let back = Message::from_vec(&bytes).unwrap();
        assert_eq!(back.metadata.id, 7);
        assert_eq!(back.metadata.response_code, ResponseCode::NoError);
        assert_eq!(back.answers.len(), 1);
        assert_eq!(
            back.answers[0].data,
            RData::A(A(Ipv4Addr::new(10, 0, 0, 12)))
        );

        let aaaa = answer(
            &ask("etcd-svc.cd.svc.cluster.local.", RecordType::AAAA),
            "cluster.local",
            &mut lookup,
        );
        assert_eq!(
            (aaaa.metadata.response_code, aaaa.answers.len()),
            (ResponseCode::NoError, 0)
        );
        for missing in [
            "etcd-svc.cd.svc.cd.svc.cluster.local.",
            "headless.cd.svc.cluster.local.",
            "example.org.",
        ] {
            let r = answer(&ask(missing, RecordType::A), "cluster.local", &mut lookup);
            assert_eq!(
                r.metadata.response_code,
                ResponseCode::NXDomain,
                "{missing}"
            );
        }
    }
}
