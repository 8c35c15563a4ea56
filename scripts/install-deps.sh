#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use. Idempotent: it only calls apt when
# something is missing, so a second run costs a few dpkg queries.
set -euo pipefail

packages=(zstd gdb elfutils gcc binutils openssl etcd-server etcd-client protobuf-compiler libprotobuf-dev iproute2 procps curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's etcd-server package starts a system etcd on 2379; tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl stop etcd || true
  systemctl disable etcd >/dev/null 2>&1 || true
fi
