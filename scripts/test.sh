#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit tests, and the end-to-end tests
# against the real kernel, real etcd, a real kube-apiserver and the real kubectl, and on a real
# node (kubelet + containerd running the image: crates/detector/tests/real_node.rs).
# Needs root (the capture tests set kernel.core_pattern, always restoring it).
# Installs what it needs first (idempotent, cached): a second run skips straight to the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
if [ -x scripts/control-plane/build.sh ]; then
  # `node`: kube-apiserver and etcd, and the node components the real-node tests run.
  bash scripts/control-plane/build.sh node
  # SeaweedFS: the S3 server of the object-store tests (crates/objstore). Its cold build is the
  # longest Go build (10-20 min on 2 cores), so it runs beside the Rust build below; the tests
  # wait for it (build.sh holds a lock per binary), and a failed build fails this script.
  # fake-gcs-server (the GCS server of the same tests, ~2 min cold) and helm (the chart tests of
  # crates/deploy, a few minutes cold) follow it in that job.
  weed_log=$(mktemp)
  # In a session of its own (its pid is its process group), so that stopping it stops `go build`.
  setsid bash -c 'bash scripts/control-plane/build.sh seaweedfs &&
    bash scripts/control-plane/build.sh fake-gcs-server &&
    bash scripts/control-plane/build.sh helm' >"$weed_log" 2>&1 &
  weed_build=$!
  # An early exit (fmt, clippy or build failed) stops the whole group and removes its log.
  trap 'kill -- -"$weed_build" 2>/dev/null || true; rm -f "$weed_log"' EXIT
fi

# A clean checkout gains nothing from incremental compilation, and its caches more than
# doubled the target directory (CI ran out of disk). Developers may export CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo build"
# Some end-to-end tests rebuild the binary with `cargo build -p coredump-detector` (to never test
# a stale one); building that feature set first makes their rebuild a relink.
cargo build --quiet -p coredump-detector --bin coredump-detector
cargo build --quiet -p coredump-kubectl --bin kubectl-coredump
cargo build --quiet --workspace --all-targets
if [ -n "${weed_build:-}" ]; then
  echo "== waiting for the SeaweedFS, fake-gcs-server and helm builds"
  if ! wait "$weed_build"; then
    cat "$weed_log" >&2
    echo "building SeaweedFS, fake-gcs-server or helm failed" >&2
    exit 1
  fi
  rm -f "$weed_log"
fi
echo "== cargo test"
cargo test --workspace --no-fail-fast "$@"
