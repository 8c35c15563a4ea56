//! The GC rules stepped as a state machine: each test feeds cycles of observations through
//! [`plan`] with the state the previous cycle returned.

use super::*;

const UID_A: &str = "0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c11";
const UID_B: &str = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
const STATIC: &str = "6c1d1b7a8a0e4f2b9e3d5c7a9b1d3f5e";

fn set(items: &[&str]) -> HashSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn blobs(ns: &str, uid: &str, files: &[(&str, u64)]) -> PodBlobs {
    PodBlobs {
        namespace: ns.into(),
        pod_uid: uid.into(),
        files: files
            .iter()
            .map(|(f, s)| ("app".to_string(), f.to_string(), *s))
            .collect(),
    }
}

fn coredump(ns: &str, name: &str, uid: Option<&str>, crash: i64) -> CoredumpRef {
    CoredumpRef {
        namespace: ns.into(),
        name: name.into(),
        pod_uid: uid.map(String::from),
        crash_time: Some(crash),
        blob: Some(
            BlobPath::new(
                ns,
                uid.unwrap_or("host"),
                "app",
                &format!("{name}.core.zst"),
            )
            .unwrap(),
        ),
        build_ids: Vec::new(),
    }
}

fn endpoint(ns: &str, name: &str, uid: &str) -> EndpointRef {
    EndpointRef {
        namespace: ns.into(),
        name: name.into(),
        pod_uid: uid.into(),
    }
}

const MIN: i64 = 60;

fn rules(threshold_min: u64) -> Rules {
    Rules {
        threshold: Duration::from_secs(threshold_min * 60),
        max_age: None,
        max_namespace_bytes: None,
    }
}

struct World {
    pods: HashSet<String>,
    namespaces: HashSet<String>,
    blobs: Vec<PodBlobs>,
    coredumps: Vec<CoredumpRef>,
    endpoints: Vec<EndpointRef>,
    binaries: Vec<BinaryBlobs>,
}

impl World {
    fn seen(&self, now: i64) -> Observed<'_> {
        Observed {
            now,
            live_pods: &self.pods,
            live_namespaces: &self.namespaces,
            blobs: &self.blobs,
            coredumps: &self.coredumps,
            endpoints: &self.endpoints,
            binaries: &self.binaries,
        }
    }
}

fn world() -> World {
    World {
        pods: set(&[UID_A, UID_B]),
        namespaces: set(&["team-a", "team-b"]),
        blobs: vec![
            blobs("team-a", UID_A, &[("c1.core.zst", 1000), ("c1.json", 10)]),
            blobs("team-b", UID_B, &[("c2.core.zst", 500), ("c2.json", 10)]),
        ],
        coredumps: vec![
            coredump("team-a", "c1", Some(UID_A), 1000),
            coredump("team-b", "c2", Some(UID_B), 2000),
        ],
        endpoints: vec![endpoint("team-a", "web-0", UID_A)],
        binaries: Vec::new(),
    }
}

#[test]
fn nothing_happens_while_everything_lives() {
    let w = world();
    let p = plan(w.seen(10_000), &GoneState::default(), rules(30));
    assert_eq!(p, Plan::default());
}

#[test]
fn a_deleted_pod_is_collected_only_after_the_threshold() {
    let mut w = world();
    w.pods.remove(UID_A);
    // First seen gone at t0: remembered, nothing deleted.
    let t0 = 100_000;
    let p1 = plan(w.seen(t0), &GoneState::default(), rules(30));
    assert!(p1.endpoints.is_empty() && p1.coredumps.is_empty() && p1.pod_dirs.is_empty());
    assert_eq!(
        p1.state.pods,
        BTreeMap::from([(format!("team-a/{UID_A}"), t0)])
    );
    // Still gone a minute short of the threshold: the first sighting is kept, not refreshed.
    let p2 = plan(w.seen(t0 + 29 * MIN), &p1.state, rules(30));
    assert!(p2.pod_dirs.is_empty());
    assert_eq!(p2.state, p1.state);
    // At the threshold: endpoint, Coredump and blob directory of that pod, nothing else.
    let p3 = plan(w.seen(t0 + 30 * MIN), &p2.state, rules(30));
    assert_eq!(
        p3.endpoints,
        vec![(endpoint("team-a", "web-0", UID_A), Reason::PodGone)]
    );
    assert_eq!(
        p3.coredumps,
        vec![(coredump("team-a", "c1", Some(UID_A), 1000), Reason::PodGone)]
    );
    assert_eq!(
        p3.pod_dirs,
        vec![("team-a".into(), UID_A.into(), 1010, Reason::PodGone)]
    );
    assert!(p3.files.is_empty(), "the directory goes whole");
    // Once it is all gone, the entry is forgotten.
    w.blobs.remove(0);
    w.coredumps.remove(0);
    w.endpoints.clear();
    let p4 = plan(w.seen(t0 + 31 * MIN), &p3.state, rules(30));
    assert_eq!(p4.state, GoneState::default());
}

#[test]
fn a_pod_that_comes_back_is_forgotten() {
    let mut w = world();
    w.pods.remove(UID_A);
    let p1 = plan(w.seen(0), &GoneState::default(), rules(30));
    assert_eq!(p1.state.pods.len(), 1);
    w.pods.insert(UID_A.into());
    let p2 = plan(w.seen(10 * MIN), &p1.state, rules(30));
    assert_eq!(p2.state, GoneState::default());
    w.pods.remove(UID_A);
    let p3 = plan(w.seen(35 * MIN), &p2.state, rules(30));
    assert!(p3.pod_dirs.is_empty(), "the clock restarted at 35 min");
    assert_eq!(p3.state.pods[&format!("team-a/{UID_A}")], 35 * MIN);
}

#[test]
fn a_deleted_namespace_takes_everything_in_it() {
    let mut w = world();
    w.namespaces.remove("team-a");
    // Its pods are gone too; host crashes in it have no pod UID.
    w.pods.remove(UID_A);
    w.blobs.push(blobs("team-a", "host", &[("h.core.zst", 7)]));
    w.coredumps.push(coredump("team-a", "h", None, 3000));
    let p1 = plan(w.seen(0), &GoneState::default(), rules(1));
    assert_eq!(
        p1.state.namespaces,
        BTreeMap::from([("team-a".to_string(), 0)])
    );
    let p2 = plan(w.seen(MIN), &p1.state, rules(1));
    let dirs: Vec<(&str, &str, Reason)> = p2
        .pod_dirs
        .iter()
        .map(|(n, u, _, r)| (n.as_str(), u.as_str(), *r))
        .collect();
    assert_eq!(
        dirs,
        vec![
            ("team-a", UID_A, Reason::NamespaceGone),
            ("team-a", "host", Reason::NamespaceGone)
        ]
    );
    let names: Vec<&str> = p2.coredumps.iter().map(|(c, _)| c.name.as_str()).collect();
    assert_eq!(names, vec!["c1", "h"]);
    assert!(
        p2.coredumps
            .iter()
            .all(|(_, r)| *r == Reason::NamespaceGone)
    );
    assert_eq!(p2.endpoints.len(), 1);
    assert!(
        !p2.pod_dirs.iter().any(|(n, ..)| n == "team-b"),
        "other namespaces untouched"
    );
}

#[test]
fn placeholders_are_not_pods_and_static_pods_live_by_hash() {
    let mut w = world();
    w.blobs.push(blobs("team-a", "host", &[("h.core.zst", 7)]));
    w.blobs
        .push(blobs("kube-system", STATIC, &[("e.core.zst", 7)]));
    w.namespaces.insert("kube-system".into());
    w.pods.insert(STATIC.into());
    let p = plan(w.seen(1_000_000), &GoneState::default(), rules(0));
    assert_eq!(
        p,
        Plan::default(),
        "host is no pod; the static pod is alive"
    );
    assert!(is_pod_uid(UID_A) && is_pod_uid(STATIC));
    assert!(!is_pod_uid("host") && !is_pod_uid("0b7c4e8e-0f2c-4f3e-9a55-7a1f0d2b9c1g"));
    assert!(!is_pod_uid("0b7c4e8e0f2c-4f3e-9a55-7a1f0d2b9c11-"));
}

#[test]
fn max_age_deletes_old_crashes_with_their_files() {
    let w = world();
    let r = Rules {
        max_age: Some(Duration::from_secs(1500)),
        ..rules(30)
    };
    let p = plan(w.seen(3000), &GoneState::default(), r);
    assert_eq!(
        p.coredumps,
        vec![(coredump("team-a", "c1", Some(UID_A), 1000), Reason::Age)]
    );
    let files: Vec<(String, u64)> = p
        .files
        .iter()
        .map(|(path, size, _)| (path.file.clone(), *size))
        .collect();
    assert_eq!(
        files,
        vec![("c1.core.zst".into(), 1000), ("c1.json".into(), 10)]
    );
    assert!(p.pod_dirs.is_empty());
}

#[test]
fn namespace_size_drops_the_oldest_until_it_fits() {
    let mut w = world();
    w.blobs[0].files = vec![
        ("app".into(), "old.core.zst".into(), 400),
        ("app".into(), "old.json".into(), 10),
        ("app".into(), "mid.core.zst".into(), 400),
        ("app".into(), "mid.json".into(), 10),
        ("app".into(), "new.core.zst".into(), 400),
        ("app".into(), "new.json".into(), 10),
    ];
    w.coredumps = vec![
        coredump("team-a", "new", Some(UID_A), 300),
        coredump("team-a", "old", Some(UID_A), 100),
        coredump("team-a", "mid", Some(UID_A), 200),
        coredump("team-b", "c2", Some(UID_B), 50),
    ];
    let r = Rules {
        max_namespace_bytes: Some(820),
        ..rules(30)
    };
    let p = plan(w.seen(1000), &GoneState::default(), r);
    let names: Vec<&str> = p.coredumps.iter().map(|(c, _)| c.name.as_str()).collect();
    assert_eq!(names, vec!["old"], "1230 - 410 = 820 fits");
    assert_eq!(p.files.len(), 2);
    let r = Rules {
        max_namespace_bytes: Some(819),
        ..rules(30)
    };
    let p = plan(w.seen(1000), &GoneState::default(), r);
    let names: Vec<&str> = p.coredumps.iter().map(|(c, _)| c.name.as_str()).collect();
    assert_eq!(names, vec!["old", "mid"]);
    assert!(
        p.coredumps.iter().all(|(c, _)| c.namespace == "team-a"),
        "team-b is under the limit"
    );
}

#[test]
fn a_huge_threshold_never_overflows() {
    let mut w = world();
    w.pods.clear();
    let r = Rules {
        threshold: Duration::from_secs(u64::MAX),
        max_age: Some(Duration::from_secs(u64::MAX)),
        max_namespace_bytes: None,
    };
    let p = plan(w.seen(i64::MAX), &GoneState::default(), r);
    assert!(p.pod_dirs.is_empty() && p.coredumps.is_empty());
}

fn binary(ns: &str, id: &str, bytes: u64) -> BinaryBlobs {
    BinaryBlobs {
        namespace: ns.into(),
        build_id: id.into(),
        files: vec![("executable".into(), bytes)],
    }
}

/// `(namespace, build ID, reason)` of the binaries a plan deletes.
fn deleted_binaries(p: &Plan) -> Vec<(String, String, Reason)> {
    p.binaries
        .iter()
        .map(|(paths, _, r)| (paths[0].namespace.clone(), paths[0].container.clone(), *r))
        .collect()
}

#[test]
fn binaries_go_once_no_crash_needs_them_for_the_threshold() {
    let mut w = world();
    w.coredumps[0].build_ids = vec!["aa01".into()];
    w.binaries = vec![
        binary("team-a", "aa01", 700),
        binary("team-a", "bb02", 300),
        // The same build ID in another namespace is another tenant's copy.
        binary("team-b", "aa01", 700),
    ];
    let first = plan(w.seen(1000), &GoneState::default(), rules(30));
    assert!(first.binaries.is_empty(), "unreferenced only since now");
    assert_eq!(
        first.state.binaries.keys().collect::<Vec<_>>(),
        vec!["team-a/bb02", "team-b/aa01"]
    );
    let later = plan(w.seen(1000 + 30 * MIN), &first.state, rules(30));
    assert_eq!(
        deleted_binaries(&later),
        vec![
            ("team-a".into(), "bb02".into(), Reason::Unreferenced),
            ("team-b".into(), "aa01".into(), Reason::Unreferenced),
        ]
    );
    assert_eq!(
        later.binaries[0].0[0].relative(),
        std::path::Path::new("team-a/.buildid/bb02/executable")
    );
    assert!(later.binaries.iter().all(|(paths, _, _)| paths.len() == 1));

    // A crash referencing it again before the threshold: kept, and the clock forgotten.
    w.coredumps[1].build_ids = vec!["aa01".into()];
    let referenced = plan(w.seen(1000 + 30 * MIN), &first.state, rules(30));
    assert_eq!(
        deleted_binaries(&referenced),
        vec![("team-a".into(), "bb02".into(), Reason::Unreferenced)]
    );
    assert!(!referenced.state.binaries.contains_key("team-b/aa01"));
}

#[test]
fn binaries_of_crashes_collected_in_this_cycle_are_unreferenced() {
    let mut w = world();
    w.coredumps[0].build_ids = vec!["aa01".into()];
    w.binaries = vec![binary("team-a", "aa01", 700)];
    let r = Rules {
        max_age: Some(Duration::from_secs(60)),
        ..rules(30)
    };
    // c1 crashed at 1000 and goes by age; its binary starts its clock in the same cycle.
    let p = plan(w.seen(5000), &GoneState::default(), r);
    assert!(p.coredumps.iter().any(|(c, _)| c.name == "c1"));
    assert!(p.binaries.is_empty());
    assert!(p.state.binaries.contains_key("team-a/aa01"));
}

#[test]
fn a_deleted_namespace_takes_its_binaries() {
    let mut w = world();
    w.namespaces.remove("team-b");
    w.coredumps[1].build_ids = vec!["cc03".into()];
    w.binaries = vec![binary("team-b", "cc03", 900)];
    let first = plan(w.seen(1000), &GoneState::default(), rules(30));
    assert!(first.binaries.is_empty());
    let later = plan(w.seen(1000 + 30 * MIN), &first.state, rules(30));
    assert_eq!(
        deleted_binaries(&later),
        vec![("team-b".into(), "cc03".into(), Reason::NamespaceGone)]
    );
    assert_eq!(later.binaries[0].1, 900);
}
