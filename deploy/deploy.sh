#!/bin/sh
# Writes DIR/coredump.yaml: every Kubernetes object of a coredump-detector install in NAMESPACE,
# with the API server's Service named SERVICE and freshly generated certificates.
#
#   sh deploy.sh NAMESPACE SERVICE DIR [flags of `coredump-detector deploy`]
#   kubectl create -f DIR/coredump.yaml
#
# A thin wrapper kept for the seed's users: the work is done by `coredump-detector deploy`,
# taken from PATH, else from this checkout's target/release (built with cargo if missing).
set -eu

if [ "$#" -lt 3 ]; then
    echo "usage: sh deploy.sh NAMESPACE SERVICE DIR [flags]" >&2
    echo "       (flags: coredump-detector deploy --help)" >&2
    exit 2
fi

if command -v coredump-detector >/dev/null 2>&1; then
    bin=coredump-detector
else
    root=$(cd "$(dirname "$0")/.." && pwd)
    bin="${CARGO_TARGET_DIR:-$root/target}/release/coredump-detector"
    if [ ! -x "$bin" ]; then
        echo "deploy.sh: building coredump-detector (cargo build --release)" >&2
        cargo build --release --quiet --manifest-path "$root/Cargo.toml" \
            -p coredump-detector --bin coredump-detector
    fi
fi

exec "$bin" deploy "$@"
