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

# Azurite (Microsoft's Azure Storage emulator, npm): the Azure Blob server of the object-store
# tests (crates/objstore, `az://`). Pinned; 3.35.0 is the newest that runs on Debian's Node 20
# (3.36 needs Node 22). Installed once into a cache outside the repository, under a lock (test
# binaries may call this at the same time), into a temporary prefix renamed into place, so an
# interrupted install is never taken for a finished one. Prints nothing when already there;
# crates/testplane finds it at $COREDUMP_CACHE/azurite-$AZURITE_VERSION/node_modules/.bin.
AZURITE_VERSION="${AZURITE_VERSION:-3.35.0}"
azurite_cache="${COREDUMP_CACHE:-/var/cache/coredump-detector}"
azurite_dir="$azurite_cache/azurite-$AZURITE_VERSION"
if [ ! -x "$azurite_dir/node_modules/.bin/azurite-blob" ]; then
  command -v npm >/dev/null 2>&1 || { echo "install-deps: npm is needed for Azurite" >&2; exit 1; }
  mkdir -p "$azurite_cache/lock"
  (
    flock 9
    if [ ! -x "$azurite_dir/node_modules/.bin/azurite-blob" ]; then
      echo "install-deps: installing azurite@$AZURITE_VERSION into $azurite_dir" >&2
      tmp="$azurite_dir.tmp.$$"
      rm -rf "$tmp"
      mkdir -p "$tmp"
      npm install --prefix "$tmp" --no-audit --no-fund --no-save --loglevel=error \
        "azurite@$AZURITE_VERSION" >&2
      rm -rf "$azurite_dir"
      mv "$tmp" "$azurite_dir"
    fi
  ) 9>"$azurite_cache/lock/azurite-$AZURITE_VERSION.lock"
fi
