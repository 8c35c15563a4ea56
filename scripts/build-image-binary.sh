#!/usr/bin/env bash
# Builds the coredump-detector that the image ships: release, statically linked against musl (the
# agent copies it onto every node as the kernel's core_pattern handler, where it must run whatever
# C library the host has), debug info stripped (156 MB -> 34 MB on x86_64; symbols stay, so a
# panic still names its functions). Installs it at OUTPUT.
# The Dockerfile runs this; so does scripts/verify-image-binary.sh before testing the result.
set -euo pipefail
out=${1:?usage: build-image-binary.sh OUTPUT}
cd "$(dirname "$0")/.."
target="$(uname -m)-unknown-linux-musl"
cargo build --release --locked --target "$target" -p coredump-detector --bin coredump-detector
install -D -m 0755 "${CARGO_TARGET_DIR:-target}/$target/release/coredump-detector" "$out"
strip --strip-debug "$out"
