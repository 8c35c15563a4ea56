#!/usr/bin/env bash
# Builds the real control-plane binaries the integration tests run (kube-apiserver, and etcd when
# the Debian one is too old) from Go modules, into a cache outside the repository.
#
#   scripts/control-plane/build.sh [kube-apiserver|etcd|all]     (default: all)
#
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
set -euo pipefail

KUBE_APISERVER_VERSION="${KUBE_APISERVER_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
CACHE="${COREDUMP_CACHE:-/var/cache/coredump-detector}"
# Never let `go` fetch a different toolchain behind our back: the release must build with ours.
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -mod=mod"

log() { echo "control-plane/build: $*" >&2; }

# wrapper_gomod MODULE VERSION STAGING_VERSION: prints a go.mod for a wrapper module that requires
# MODULE@VERSION and turns every local-path replace of MODULE's own go.mod into a replace by the
# published module of STAGING_VERSION.
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
    }' "$gomod"
}

# build NAME VERSION MODULE PACKAGE STAGING_VERSION LDFLAGS
build() {
  local name=$1 version=$2 module=$3 package=$4 staging=$5 ldflags=$6
  local out="$CACHE/bin/$name-$version"
  if [[ -x "$out" ]]; then echo "$name=$out"; return 0; fi
  mkdir -p "$CACHE/bin" "$CACHE/lock" "$CACHE/src"
  exec {lockfd}>"$CACHE/lock/$name-$version.lock"
  flock "$lockfd"
  if [[ -x "$out" ]]; then exec {lockfd}>&-; echo "$name=$out"; return 0; fi
  local src="$CACHE/src/$name-$version" start=$SECONDS
  rm -rf "$src"
  mkdir -p "$src"
  log "building $name $version (module $module) in $src"
  wrapper_gomod "$module" "$version" "$staging" >"$src/go.mod"
  (cd "$src" && go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp.$$" "$package")
  mv -f "$out.tmp.$$" "$out"
  log "built $out in $((SECONDS - start)) s"
  exec {lockfd}>&-
  echo "$name=$out"
}

kube_apiserver() {
  local v=$KUBE_APISERVER_VERSION minor major
  major=${v#v}; major=${major%%.*}
  minor=${v#v*.}; minor=${minor%%.*}
  local x=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    x+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  # Staging modules are published as v0.<minor>.<patch> for kubernetes v1.<minor>.<patch>.
  build kube-apiserver "$v" k8s.io/kubernetes k8s.io/kubernetes/cmd/kube-apiserver "v0.${v#v1.}" "$x"
}

etcd() {
  if [[ -n "${ETCD_BINARY:-}" ]]; then echo "etcd=$ETCD_BINARY"; return 0; fi
  build etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 "$ETCD_VERSION" ""
}

case "${1:-all}" in
  kube-apiserver) kube_apiserver ;;
  etcd) etcd ;;
  all) kube_apiserver; etcd ;;
  *) echo "usage: $0 [kube-apiserver|etcd|all]" >&2; exit 2 ;;
esac
