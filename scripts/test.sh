#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit tests, and the end-to-end tests
# against the real kernel, real etcd, a real kube-apiserver and the real kubectl, and on a real
# node (kubelet + containerd running the image: crates/detector/tests/real_node.rs).
# Needs root (the capture tests set kernel.core_pattern, always restoring it).
# Installs what it needs first (idempotent, cached): a second run skips straight to the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Seconds since the start, on every stage line: where a CI run's time goes.
stage() { echo "== $* (at ${SECONDS} s)"; }

bash scripts/install-deps.sh
if [ -x scripts/control-plane/build.sh ]; then
  # The Go builds of the real components, in one background job beside the Rust build below,
  # so that the Rust build overlaps all of them (a cold run spends 20-30 min on them on 2 cores;
  # `node` used to run first, alone):
  # `node` (kube-apiserver, etcd and the node components the real-node tests run), SeaweedFS
  # (the S3 server of the object-store tests, the longest, 10-20 min cold), fake-gcs-server
  # (the GCS server of the same tests, ~2 min) and helm (the chart tests of crates/deploy).
  # The tests wait for the job (build.sh also holds a lock per binary); a failed build fails
  # this script.
  go_log=$(mktemp)
  # In a session of its own (its pid is its process group), so that stopping it stops `go build`.
  setsid bash -c 'bash scripts/control-plane/build.sh node >/dev/null &&
    bash scripts/control-plane/build.sh seaweedfs >/dev/null &&
    bash scripts/control-plane/build.sh fake-gcs-server >/dev/null &&
    bash scripts/control-plane/build.sh helm >/dev/null' >"$go_log" 2>&1 &
  go_build=$!
  # An early exit (fmt, clippy or build failed) stops the whole group and removes its log.
  trap 'kill -- -"$go_build" 2>/dev/null || true; rm -f "$go_log"' EXIT
fi

# A clean checkout gains nothing from incremental compilation, and its caches more than
# doubled the target directory (CI ran out of disk). Developers may export CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

stage "cargo fmt --check"
cargo fmt --all -- --check
stage "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
stage "cargo build"
# Some end-to-end tests rebuild the binary with `cargo build -p coredump-detector` (to never test
# a stale one); building that feature set first makes their rebuild a relink.
cargo build --quiet -p coredump-detector --bin coredump-detector
cargo build --quiet -p coredump-kubectl --bin kubectl-coredump
cargo build --quiet --workspace --all-targets
if [ -n "${go_build:-}" ]; then
  stage "waiting for the Go builds (kube-apiserver, etcd, node components, SeaweedFS, fake-gcs-server, helm)"
  if ! wait "$go_build"; then
    cat "$go_log" >&2
    echo "building the Go components failed" >&2
    exit 1
  fi
  grep -h "control-plane/build: built" "$go_log" || true
  rm -f "$go_log"
fi
stage "cargo test"
cargo test --workspace --no-fail-fast "$@"
stage "done"
