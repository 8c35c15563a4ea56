#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use. Idempotent: it only calls apt when
# something is missing, so a second run costs a few dpkg queries.
set -euo pipefail

# The analysis tests build native crashers (gcc, binutils: strip, objcopy). The real-node tests
# (crates/testnode, scripts/node.sh): containerd, runc and the CNI plugins run pods; iptables and
# conntrack are kube-proxy's; gcc and libc6-dev link the static pause and crasher images;
# util-linux has nsenter and unshare.
packages=(zstd gdb elfutils gcc binutils openssl etcd-server etcd-client protobuf-compiler libprotobuf-dev iproute2 procps curl
  containerd runc containernetworking-plugins iptables conntrack libc6-dev util-linux)
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
# Debian's etcd-server and containerd packages may start system services; tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl stop etcd || true
  systemctl disable etcd >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet containerd 2>/dev/null; then
  systemctl stop containerd || true
  systemctl disable containerd >/dev/null 2>&1 || true
fi
