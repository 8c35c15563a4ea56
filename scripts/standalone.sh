#!/usr/bin/env bash
# Sets up and runs coredump-detector in its embedded all-in-one mode on this machine:
# builds the release binary, then captures every crash into DATA_DIR (default
# /var/lib/coredump-detector) and serves it to kubectl. Needs root. Ctrl-C stops it and
# restores the previous kernel.core_pattern. Extra arguments go to `coredump-detector standalone`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "standalone.sh: needs root (it sets kernel.core_pattern); run: sudo $0 $*" >&2
  exit 1
fi
bash scripts/install-deps.sh
cargo build --release --quiet -p coredump-detector
exec target/release/coredump-detector standalone "$@"
