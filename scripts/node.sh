#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, with coredump-detector installed from its
# manifest (deploy/deploy.sh + kubectl create -f), for trying the project by hand. Needs root.
#
#   sudo scripts/node.sh up DIR     # builds what is missing, starts the node, prints:
#                                   #   KUBECONFIG=DIR/kubeconfig
#                                   #   CONTAINER_RUNTIME_ENDPOINT=unix://DIR/containerd/containerd.sock
#   eval "$(sudo scripts/node.sh up DIR)"     # or source those lines
#   sudo scripts/node.sh down DIR   # stops everything and removes DIR
#
# The node is the fixture of the real-node tests (crate coredump-testnode, binary `testnode`):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy and
# containerd in a network namespace of their own (pod addresses exist only there; kubectl
# reaches kube-apiserver through a loopback forwarder), images imported without a registry.
# It holds the machine-wide kernel-settings lock (/run/lock/coredump-detector-tests.lock) while
# up, because the agent owns kernel.core_pattern; core_pattern and core_pipe_limit are restored
# when it stops, however it stops.
#
# `teardown DIR` is what `down` and the fixture itself run (also after a killed test binary):
# kills every process of the node (its network namespace, its pods' cgroups, containerd's
# shims), unmounts everything under DIR, removes the kubepods cgroups, puts back the sysctls
# kubelet changed, removes CNI state and, with `down`, DIR.
set -euo pipefail

usage() { echo "usage: $0 up|down|teardown DIR  (teardown DIR --remove: and remove DIR)" >&2; exit 2; }
[[ $# -eq 2 || ( $# -eq 3 && $1 == teardown && $3 == --remove ) ]] || usage
cmd=$1
dir=$2
remove=${3:-}
root=$(cd "$(dirname "$0")/.." && pwd)

# Processes whose network namespace is the node's (recorded at creation as net:[inode]).
node_pids() {
  local ns pid
  ns=$(cat "$dir/netns.id" 2>/dev/null) || return 0
  for pid in /proc/[0-9]*; do
    [[ "$(readlink "$pid/ns/net" 2>/dev/null)" == "$ns" ]] && echo "${pid#/proc/}"
  done
  return 0
}

# Processes in the pods' cgroups, and containerd shims serving this node's containerd.
pod_pids() {
  local f pid
  for f in /sys/fs/cgroup/*/kubepods; do
    [[ -d $f ]] && find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null
  done
  for pid in /proc/[0-9]*; do
    if { tr '\0' ' ' <"$pid/cmdline"; } 2>/dev/null | grep -qF -- "-address $dir/containerd/containerd.sock"; then
      echo "${pid#/proc/}"
    fi
  done
  return 0
}

kill_all() {
  local round pids
  for round in $(seq 1 50); do
    pids=$( (node_pids; pod_pids) | sort -un)
    [[ -z "$pids" ]] && return 0
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    sleep 0.1
  done
  echo "node.sh: processes survived: $pids" >&2
}

unmount_all() {
  local m
  # Deepest first: mountinfo lists parents before children.
  for m in $(awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    # Another teardown of the same node (the exit watcher) may have unmounted it meanwhile.
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null ||
      ! grep -qF " $m " /proc/self/mountinfo || echo "node.sh: cannot unmount $m" >&2
  done
}

remove_cgroups() {
  local f
  for f in /sys/fs/cgroup/*/kubepods; do
    [[ -d $f ]] || continue
    find "$f" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    [[ -d $f ]] && echo "node.sh: cgroup $f not removed" >&2
  done
  return 0
}

restore_sysctls() {
  local name value
  [[ -f "$dir/sysctls.saved" ]] || return 0
  while read -r name value; do
    [[ -n "$name" ]] && echo "$value" >"/proc/sys/$name"
  done <"$dir/sysctls.saved"
  rm -f "$dir/sysctls.saved"
}

teardown() {
  [[ -d "$dir" ]] || return 0
  kill_all
  unmount_all
  remove_cgroups
  restore_sysctls
  rm -rf /var/lib/cni/results/coredump-node-* 2>/dev/null || true
}

case "$cmd" in
  up)
    [[ $EUID -eq 0 ]] || { echo "node.sh: needs root" >&2; exit 1; }
    if [[ -e "$dir" && -n "$(ls -A "$dir" 2>/dev/null)" ]]; then
      echo "node.sh: $dir is not empty (node.sh down $dir first?)" >&2
      exit 1
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    bash "$root/scripts/install-deps.sh" >&2
    bash "$root/scripts/control-plane/build.sh" node >/dev/null
    cargo build --quiet --manifest-path "$root/Cargo.toml" -p coredump-testnode --bin testnode \
      -p coredump-detector --bin coredump-detector >&2
    target=${CARGO_TARGET_DIR:-$root/target}
    setsid "$target/debug/testnode" up "$dir" --detector "${COREDUMP_DETECTOR_BIN:-$target/debug/coredump-detector}" \
      </dev/null >"$dir/testnode.log" 2>&1 &
    echo $! >"$dir/testnode.pid"
    # Bounded: a cold start builds nothing here any more; the node and the install take ~1-2 min.
    for _ in $(seq 1 1800); do
      if [[ -f "$dir/env" ]]; then cat "$dir/env"; exit 0; fi
      if ! kill -0 "$(cat "$dir/testnode.pid")" 2>/dev/null; then
        echo "node.sh: the node failed to start; its log:" >&2
        tail -n 40 "$dir/testnode.log" >&2
        exit 1
      fi
      sleep 0.2
    done
    echo "node.sh: not up after 6 minutes; see $dir/testnode.log" >&2
    exit 1
    ;;
  down)
    dir=$(cd "$dir" 2>/dev/null && pwd) || exit 0
    if [[ -f "$dir/testnode.pid" ]]; then
      pid=$(cat "$dir/testnode.pid")
      # Its own exit (or the watcher it left, if it is killed) tears the node down.
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    teardown
    rm -rf "$dir"
    ;;
  teardown)
    teardown
    # A scratch node's directory goes only after its mounts: removing it first fails on them.
    if [[ $remove == --remove ]]; then rm -rf "$dir"; fi
    ;;
  *) usage ;;
esac
