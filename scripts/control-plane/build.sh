#!/usr/bin/env bash
# Builds the real control-plane binaries the integration tests run (kube-apiserver, and etcd when
# the Debian one is too old) from Go modules, into a cache outside the repository; with `node`,
# also the node components of the same Kubernetes release (kubelet, kube-controller-manager,
# kube-scheduler, kube-proxy), in one `go build` through the same wrapper module; with
# `seaweedfs`, SeaweedFS's `weed` (the S3 server the object-store tests run); with
# `fake-gcs-server`, fsouza's fake-gcs-server (the GCS server of the same tests); with `helm`,
# Helm's CLI (the chart tests of crates/deploy); with `caddy`, Caddy (a net/http TLS file
# server: the baseline of the download benchmark).
#
#   scripts/control-plane/build.sh
#       [kube-apiserver|etcd|seaweedfs|fake-gcs-server|helm|caddy|all|node]   (default: all)
#
# `all` prints kube-apiserver and etcd; `node` prints those two and the four node components;
# `seaweedfs` prints `weed`; `fake-gcs-server` prints `fake-gcs-server`; `helm` prints `helm`;
# `caddy` prints `caddy`.
# Prints one `name=/absolute/path` line per binary on stdout; progress goes to stderr.
# Idempotent: an existing binary is reported at once. A per-binary flock serialises parallel
# callers (several test binaries start at the same time), and the normal Go module and build
# caches (GOMODCACHE, GOCACHE) make a rebuild after a cache wipe cheap.
#
# Environment:
#   COREDUMP_CACHE           cache root (default /var/cache/coredump-detector)
#   KUBE_APISERVER_VERSION   k8s.io/kubernetes release (default below)
#   ETCD_VERSION             go.etcd.io/etcd release (default below)
#   ETCD_BINARY              use this etcd instead of building one (e.g. Debian's /usr/bin/etcd;
#                            3.4 works with kube-apiserver 1.37 only with degraded features)
#   SEAWEEDFS_VERSION        github.com/seaweedfs/seaweedfs version (default below: a pseudo-version,
#                            the module publishes no semver tags Go accepts)
#   FAKE_GCS_SERVER_VERSION  github.com/fsouza/fake-gcs-server release (default below)
#   HELM_VERSION             helm.sh/helm/v4 release (default below)
#   CADDY_VERSION            github.com/caddyserver/caddy/v2 release (default below)
set -euo pipefail

KUBE_APISERVER_VERSION="${KUBE_APISERVER_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
SEAWEEDFS_VERSION="${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
FAKE_GCS_SERVER_VERSION="${FAKE_GCS_SERVER_VERSION:-v1.56.1}"
HELM_VERSION="${HELM_VERSION:-v4.3.2}"
CADDY_VERSION="${CADDY_VERSION:-v2.11.9}"
CACHE="${COREDUMP_CACHE:-/var/cache/coredump-detector}"
# Never let `go` fetch a different toolchain behind our back: the release must build with ours.
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -mod=mod"

log() { echo "control-plane/build: $*" >&2; }

# wrapper_gomod MODULE VERSION STAGING_VERSION: prints a go.mod for a wrapper module that requires
# MODULE@VERSION and turns every local-path replace of MODULE's own go.mod into a replace by the
# published module of STAGING_VERSION. Replaces by another published module (`a => b vX`, e.g.
# SeaweedFS's go-bip39 fork) are kept as they are: Go ignores a dependency's replaces, so the
# wrapper must repeat them.
wrapper_gomod() {
  local module=$1 version=$2 staging=$3 gomod
  gomod=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
  [[ -f "$gomod" ]] || { log "no go.mod for $module@$version"; return 1; }
  echo "module coredump-detector/control-plane-wrapper"
  echo
  echo "go $(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
  echo
  echo "require $module $version"
  echo
  # Both the block form `replace ( a => ./x )` and single `replace a => ../x` lines.
  awk -v staging="$staging" '
    /^replace \($/ { inblock = 1; next }
    inblock && /^\)$/ { inblock = 0; next }
    {
      line = $0
      if (!inblock) { if (line !~ /^replace /) next; sub(/^replace /, "", line) }
      n = split(line, f, /[ \t]+/)
      # f[1]... : "<mod> => <path>" (a leading tab yields an empty f[1])
      j = 1; while (j <= n && f[j] == "") j++
      # Skip guards such as etcd'"'"'s `go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY`.
      if (f[j+1] == "=>" && f[j+2] ~ /^\.\.?\// && f[j+2] !~ /FORBIDDEN/) print "replace " f[j] " => " f[j] " " staging
      else if (f[j+1] == "=>" && f[j+2] !~ /^\.\.?\// && f[j+3] ~ /^v[0-9]/) print "replace " f[j] " => " f[j+2] " " f[j+3]
    }' "$gomod"
}

# build NAME VERSION MODULE PACKAGE STAGING_VERSION LDFLAGS
build() {
  build_many "$1" "$2" "$3" "$5" "$6" "$1=$4"
}

# build_many GROUP VERSION MODULE STAGING_VERSION LDFLAGS NAME=PACKAGE...: one wrapper module and
# one `go build` for several commands of MODULE (they share most packages, so one build of four
# costs little more than one), cached as $CACHE/bin/NAME-VERSION. The lock and the wrapper
# source are per GROUP.
build_many() {
  local group=$1 version=$2 module=$3 staging=$4 ldflags=$5
  shift 5
  local name package binary missing=() packages=()
  for spec in "$@"; do
    name=${spec%%=*}
    [[ -x "$CACHE/bin/$name-$version" ]] || missing+=("$spec")
  done
  if ((${#missing[@]} == 0)); then
    for spec in "$@"; do echo "${spec%%=*}=$CACHE/bin/${spec%%=*}-$version"; done
    return 0
  fi
  mkdir -p "$CACHE/bin" "$CACHE/lock" "$CACHE/src"
  exec {lockfd}>"$CACHE/lock/$group-$version.lock"
  flock "$lockfd"
  missing=()
  for spec in "$@"; do
    [[ -x "$CACHE/bin/${spec%%=*}-$version" ]] || missing+=("$spec")
  done
  if ((${#missing[@]})); then
    local src="$CACHE/src/$group-$version" out="$CACHE/bin/.$group-$version.tmp.$$" start=$SECONDS
    rm -rf "$src" "$out"
    mkdir -p "$src" "$out"
    for spec in "${missing[@]}"; do packages+=("${spec#*=}"); done
    log "building ${missing[*]%%=*} $version (module $module) in $src"
    wrapper_gomod "$module" "$version" "$staging" >"$src/go.mod"
    (cd "$src" && go build -trimpath -ldflags "-s -w $ldflags" -o "$out/" "${packages[@]}")
    for spec in "${missing[@]}"; do
      name=${spec%%=*}
      package=${spec#*=}
      # `go build` names a command after its last path element, skipping a major-version suffix
      # (go.etcd.io/etcd/server/v3 is `server`).
      binary=${package##*/}
      if [[ $binary =~ ^v[0-9]+$ ]]; then binary=${package%/*}; binary=${binary##*/}; fi
      mv -f "$out/$binary" "$CACHE/bin/$name-$version"
    done
    rmdir "$out"
    log "built ${missing[*]%%=*} in $((SECONDS - start)) s"
  fi
  exec {lockfd}>&-
  for spec in "$@"; do echo "${spec%%=*}=$CACHE/bin/${spec%%=*}-$version"; done
}

# The version stamp of a Kubernetes build (what `--version` and /version report).
kube_ldflags() {
  local v=$1 minor major x=""
  major=${v#v}; major=${major%%.*}
  minor=${v#v*.}; minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    x+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$x"
}

kube_apiserver() {
  local v=$KUBE_APISERVER_VERSION
  # Staging modules are published as v0.<minor>.<patch> for kubernetes v1.<minor>.<patch>.
  build kube-apiserver "$v" k8s.io/kubernetes k8s.io/kubernetes/cmd/kube-apiserver "v0.${v#v1.}" \
    "$(kube_ldflags "$v")"
}

# The node components of the same release, one build (the real-node tests, scripts/node.sh).
kube_node() {
  local v=$KUBE_APISERVER_VERSION c=k8s.io/kubernetes/cmd
  build_many kube-node "$v" k8s.io/kubernetes "v0.${v#v1.}" "$(kube_ldflags "$v")" \
    "kubelet=$c/kubelet" "kube-controller-manager=$c/kube-controller-manager" \
    "kube-scheduler=$c/kube-scheduler" "kube-proxy=$c/kube-proxy"
}

etcd() {
  if [[ -n "${ETCD_BINARY:-}" ]]; then echo "etcd=$ETCD_BINARY"; return 0; fi
  build etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 "$ETCD_VERSION" ""
}

# SeaweedFS (`weed server -s3`): the real S3 server of the object-store tests (crates/objstore).
seaweedfs() {
  build weed "$SEAWEEDFS_VERSION" github.com/seaweedfs/seaweedfs github.com/seaweedfs/seaweedfs/weed \
    "$SEAWEEDFS_VERSION" ""
}

# fake-gcs-server: the GCS JSON API (uploads, ranged reads, listings) on loopback, for the
# object-store tests' `gs://` store. Its module is its main package.
fake_gcs_server() {
  build fake-gcs-server "$FAKE_GCS_SERVER_VERSION" github.com/fsouza/fake-gcs-server \
    github.com/fsouza/fake-gcs-server "$FAKE_GCS_SERVER_VERSION" ""
}

# Helm's CLI: `helm install|upgrade|uninstall` of the chart `deploy --helm-chart` writes, against
# the real kube-apiserver. The version stamp is what `helm version` prints.
helm() {
  build helm "$HELM_VERSION" helm.sh/helm/v4 helm.sh/helm/v4/cmd/helm "$HELM_VERSION" \
    "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
}

# Caddy: its `file_server` handler is Go's net/http (http.ServeContent over crypto/tls, HTTP/2
# from net/http), the baseline the `core` download is measured against (crates/apiserver's
# download benchmark).
caddy() {
  build caddy "$CADDY_VERSION" github.com/caddyserver/caddy/v2 \
    github.com/caddyserver/caddy/v2/cmd/caddy "$CADDY_VERSION" ""
}

case "${1:-all}" in
  kube-apiserver) kube_apiserver ;;
  etcd) etcd ;;
  seaweedfs) seaweedfs ;;
  fake-gcs-server) fake_gcs_server ;;
  helm) helm ;;
  caddy) caddy ;;
  all) kube_apiserver; etcd ;;
  node) kube_apiserver; etcd; kube_node ;;
  *) echo "usage: $0 [kube-apiserver|etcd|seaweedfs|fake-gcs-server|helm|caddy|all|node]" >&2; exit 2 ;;
esac
