//! `kubectl coredump info`, `list --group`, resumable `download` and `debug` through the real
//! kubectl against real crashes of a native crasher captured by standalone on the real kernel;
//! `debug` runs the real gdb with nothing but what it fetched through the API.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Standalone, plugin, plugin_dir};
use coredump_api::Coredump;

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .unwrap()
}

/// Runs `bin mode` until it dies of a signal; returns the record.
fn crash(sa: &Standalone, bin: &Path, mode: &str) -> Coredump {
    let pid = common::crash_native(bin, &[mode], &[]);
    sa.wait_record(pid, Duration::from_secs(60))
}

fn store_value_line() -> usize {
    coredump_testkit::native::C_SOURCE
        .lines()
        .position(|l| l.contains("void store_value"))
        .unwrap()
        + 1
}

#[test]
fn info_group_resumable_download_and_debug_through_kubectl() {
    let path_dir = plugin_dir();
    let sa = Standalone::start(&["--listen", "127.0.0.1:0"]);
    let kubeconfig = sa.kubeconfig();
    let cwd_dir = tempdir("cdd-debug-cwd-");
    let cwd = cwd_dir.path();
    let run = |args: &[&str]| {
        let (ok, out, err) = plugin(path_dir.path(), &kubeconfig, cwd, args);
        assert!(ok, "kubectl coredump {args:?}: {err}\nlog:\n{}", sa.log());
        (out, err)
    };

    // The program runs from a directory that is gone before anyone debugs it.
    let app_dir = tempdir("cdd-debug-app-");
    let app = app_dir.path().join("app");
    std::fs::copy(&coredump_testkit::native::c().debug, &app).unwrap();
    let first = crash(&sa, &app, "segv");
    let second = crash(&sa, &app, "segv");
    let other = crash(&sa, &app, "other");
    drop(app_dir);
    let name = first.metadata.name.clone();

    // info: the backtrace with file:line, the signature.
    let (info, _) = run(&["info", &name, "-n", "host"]);
    assert!(
        info.contains(&format!("Signature:  {}", first.status.signature)),
        "{info}"
    );
    let top = info
        .lines()
        .find(|l| l.trim_start().starts_with("#0"))
        .unwrap_or_else(|| panic!("{info}"));
    assert!(
        top.contains("store_value (")
            && top.ends_with(&format!("/crash.c:{})", store_value_line())),
        "{info}"
    );
    assert!(info.contains("parse_record"), "{info}");

    // list --group: one row per bug, counted.
    let (groups, _) = run(&["list", "--group", "-n", "host"]);
    let row = |sig: &str| {
        groups
            .lines()
            .find(|l| l.starts_with(sig))
            .unwrap_or_else(|| panic!("{sig} missing:\n{groups}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(second.status.signature, first.status.signature);
    assert_eq!(row(&first.status.signature)[1], "2", "{groups}");
    assert_eq!(row(&other.status.signature)[1], "1", "{groups}");
    assert!(groups.contains("average"), "{groups}");

    // download in small Range pieces, resuming a part file an interrupted run left.
    let exported = sa.export(&name);
    let dest = cwd.join("c.core");
    let keep = exported.len() / 3;
    std::fs::write(cwd.join(".c.core.part"), &exported[..keep]).unwrap();
    let (_, err) = run(&[
        "download", &name, "-n", "host", "-o", "c.core", "--piece", "65536",
    ]);
    assert!(
        err.contains(&format!("resumed an interrupted download at byte {keep}")),
        "{err}"
    );
    assert!(err.contains("SHA-256 verified"), "{err}");
    assert!(std::fs::read(&dest).unwrap() == exported);
    assert!(!cwd.join(".c.core.part").exists());
    // A part file with wrong bytes fails the checksum and is dropped; the next run succeeds.
    std::fs::remove_file(&dest).unwrap();
    let mut bad = exported[..keep].to_vec();
    bad[100] ^= 0xff;
    std::fs::write(cwd.join(".c.core.part"), &bad).unwrap();
    let (ok, _, err) = plugin(
        path_dir.path(),
        &kubeconfig,
        cwd,
        &["download", &name, "-n", "host", "-o", "c.core"],
    );
    assert!(!ok && err.contains("SHA-256"), "{err}");
    assert!(!dest.exists() && !cwd.join(".c.core.part").exists());
    run(&["download", &name, "-n", "host", "-o", "c.core"]);
    assert!(std::fs::read(&dest).unwrap() == exported);

    // debug: core and binaries fetched by build ID, gdb shows the crashing frame.
    let (out, err) = run(&[
        "debug", &name, "-n", "host", "--dir", "dbg", "--", "-batch", "-ex", "bt",
    ]);
    assert!(err.contains("fetched /") && err.contains("/app"), "{err}");
    assert!(out.contains("store_value"), "{out}\n{err}");
    assert!(
        out.contains(&format!("crash.c:{}", store_value_line())),
        "{out}\n{err}"
    );
    assert!(out.contains("parse_record"), "{out}");
}
