//! `testnode up DIR [--detector BIN]`: starts the test node in DIR, installs coredump-detector
//! from its manifest (namespace `coredump`), writes `DIR/env` (`KUBECONFIG=…`,
//! `CONTAINER_RUNTIME_ENDPOINT=…`) and runs until killed; `scripts/node.sh` drives it, and its
//! death (SIGTERM, SIGKILL alike) tears the node down.

use std::path::PathBuf;
use std::time::Duration;

use coredump_testnode::{Node, NodeOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, detector) = match args.as_slice() {
        [up, dir] if up == "up" => (PathBuf::from(dir), None),
        [up, dir, flag, bin] if up == "up" && flag == "--detector" => {
            (PathBuf::from(dir), Some(PathBuf::from(bin)))
        }
        _ => {
            eprintln!("usage: testnode up DIR [--detector BIN]");
            std::process::exit(2);
        }
    };
    let node = match Node::start(NodeOptions {
        dir: Some(dir),
        detector_bin: detector,
    }) {
        Ok(node) => node,
        Err(e) => {
            eprintln!("testnode: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("testnode: node up in {:?}", node.started_in());
    let installed = node
        .install("coredump", &[])
        .and_then(|install| node.wait_installed(&install, Duration::from_secs(300)));
    match installed {
        Ok(took) => eprintln!("testnode: coredump-detector installed in {took:?}"),
        Err(e) => {
            eprintln!("testnode: install failed: {e}");
            std::process::exit(1);
        }
    }
    let env = node.layout().env_file();
    if let Err(e) = std::fs::write(&env, node.env_lines()) {
        eprintln!("testnode: write {}: {e}", env.display());
        std::process::exit(1);
    }
    // Until killed: scripts/node.sh down sends SIGTERM, and the teardown left behind at start
    // runs once this process is gone.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
