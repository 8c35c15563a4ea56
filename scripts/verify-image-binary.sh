#!/usr/bin/env bash
# Builds the image's binary exactly as the Dockerfile does (scripts/build-image-binary.sh) and
# runs the end-to-end tests that execute coredump-detector against that static binary: the real
# kernel core pipe and socket, standalone with kubectl, and agent + API server + GC on a real
# kube-apiserver. Needs root, like scripts/test.sh. Not part of scripts/test.sh because the
# release musl build adds about 6 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
if ! command -v musl-gcc >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends musl-tools >/dev/null
fi
rustup target add "$(uname -m)-unknown-linux-musl" >/dev/null 2>&1 || {
  echo "verify-image-binary: rustup cannot install the $(uname -m)-unknown-linux-musl standard library" >&2
  exit 1
}
bash scripts/control-plane/build.sh
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

bin="$PWD/target/image/coredump-detector"
bash scripts/build-image-binary.sh "$bin"
echo "== testing $(ls -l "$bin" | awk '{print $5}') bytes: $(file -b "$bin" | cut -d, -f1-2)"
COREDUMP_DETECTOR_BIN="$bin" cargo test -p coredump-detector \
  --test kernel_capture --test kernel_socket --test standalone_kubectl \
  --test cluster_agent_gc --test aggregated_e2e
