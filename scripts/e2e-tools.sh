#!/usr/bin/env bash
# Builds the real control-plane binaries the end-to-end tests run on
# 127.0.0.1 (see tests/e2e/cluster.rs):
#
#   kube-apiserver, kube-controller-manager, kubectl   v1.34.4  (tests/e2e/tools/kube)
#   etcd                                               v3.6.16  (tests/e2e/tools/etcd)
#   keda-webhooks (KEDA's admission webhook),          v2.21.0  (tests/e2e/tools/keda)
#   keda-operator, keda-adapter (its metrics server)
#   prometheus (API only, no service discovery)        v3.16.0  (tests/e2e/tools/prometheus)
#   helm (lints and renders charts/)                   v3.22.0  (tests/e2e/tools/helm)
#
# into target/e2e-tools/bin/. Each binary has a stamp file next to it
# (.NAME.stamp) recording the pinned version and a hash of its Go module
# files; a binary whose stamp matches is not rebuilt, so a second run takes
# well under a second. Only Go is needed; modules come from the Go module
# proxy into the usual module cache.
#
# Usage: scripts/e2e-tools.sh [--force] [GROUP...]
#   --force   rebuild everything asked for, ignoring stamps
#   GROUP     build only these: kubernetes, etcd, keda, prometheus, helm
#             (default: all of them)
# Environment:
#   E2E_TOOLS_JOBS   parallel compile jobs handed to `go build -p` (default 2)
#
# Cold builds on a 2-core machine take about 4 minutes for the Kubernetes
# tools and 25 s for etcd. KEDA's three binaries (one build: its operator
# links every scaler's cloud SDK) take about 12 minutes (736 s measured with
# an empty GOCACHE, 26 min while another Go build and two Rust builds shared
# the cores); Prometheus about 2.5 minutes (158 s); Helm about 5 minutes (307 s
# with an empty GOCACHE and a load average near 10 from other builds; 216 s of CPU).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/tests/e2e/tools"
BIN="$ROOT/target/e2e-tools/bin"

KUBE_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
KEDA_VERSION=v2.21.0
# Prometheus 3.x publishes its Go module as v0.3xx.y (v0.316.0 is 3.16.0).
PROMETHEUS_VERSION=v0.316.0
HELM_VERSION=v3.22.0
# The Kubernetes version `helm template` and `helm lint` assume without a cluster: Helm's own
# Makefile derives it from the client-go it links (v0.37.0 -> 1.37) and sets it with -X.
HELM_KUBE_MINOR=37
GROUPS_ALL=(kubernetes etcd keda prometheus helm)

FORCE=0
WANTED=()
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h | --help)
      sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    kubernetes | etcd | keda | prometheus | helm) WANTED+=("$arg") ;;
    *)
      echo "e2e-tools: unknown argument: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done
[[ ${#WANTED[@]} -gt 0 ]] || WANTED=("${GROUPS_ALL[@]}")

# wanted GROUP: whether this run builds that group.
wanted() {
  local g
  for g in "${WANTED[@]}"; do [[ "$g" == "$1" ]] && return 0; done
  return 1
}

log() { echo "e2e-tools: $*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  log "Go is required to build the end-to-end control plane (https://go.dev/dl/), but 'go' is not on PATH"
  exit 1
fi

mkdir -p "$BIN"

# Two test processes (or a test and a developer) may run this at once:
# serialise them so they neither build twice nor see half-written binaries.
exec 9>"$BIN/.lock"
if command -v flock >/dev/null 2>&1; then
  if ! flock -n 9; then
    log "waiting for another e2e-tools.sh run to finish"
    flock 9
  fi
fi

# Scratch output directory of the build under way, removed if it fails.
out=""
trap '[[ -n "$out" ]] && rm -rf "$out"' EXIT

export GOFLAGS="${GOFLAGS:-} -mod=readonly"
JOBS="${E2E_TOOLS_JOBS:-2}"

# stamp_for MODULE_DIR VERSION LDFLAGS [TAGS]: what a binary built from that
# module with those flags is identified by.
stamp_for() {
  local dir="$1" version="$2" ldflags="$3" tags="${4:-}"
  printf '%s\n%s\n' "$version" "$ldflags"
  [[ -z "$tags" ]] || printf 'tags %s\n' "$tags"
  (cd "$dir" && cat go.mod go.sum) | sha256sum | cut -d' ' -f1
}

is_current() {
  local name="$1" stamp="$2"
  [[ $FORCE -eq 0 && -x "$BIN/$name" && -f "$BIN/.$name.stamp" ]] &&
    [[ "$(cat "$BIN/.$name.stamp")" == "$stamp" ]]
}

# build GROUP MODULE_DIR VERSION LDFLAGS NAME=PACKAGE...
# Builds the stale binaries of one module with a single `go build`, so its
# packages compile once and in parallel. Build tags, if any, come from
# $BUILD_TAGS.
build() {
  local group="$1" dir="$2" version="$3" ldflags="$4" tags="${BUILD_TAGS:-}"
  shift 4
  wanted "$group" || return 0
  local stamp pkgs=() names=() spec name pkg
  stamp="$(stamp_for "$dir" "$version" "$ldflags" "$tags")"
  for spec in "$@"; do
    name="${spec%%=*}"
    pkg="${spec#*=}"
    if is_current "$name" "$stamp"; then
      log "$name $version: up to date"
    else
      names+=("$name")
      pkgs+=("$pkg")
    fi
  done
  [[ ${#pkgs[@]} -eq 0 ]] && return 0

  log "building ${names[*]} ($group $version) ..."
  local start i
  out="$(mktemp -d "$BIN/.build.XXXXXX")"
  start=$SECONDS
  (cd "$dir" && go build -p "$JOBS" -tags "$tags" -ldflags "$ldflags" -o "$out/" "${pkgs[@]}")
  for i in "${!names[@]}"; do
    pkg="${pkgs[$i]}"
    # go build names an executable after the last path element of its
    # package, minus a major-version suffix (".../server/v3" -> "server").
    local base="${pkg##*/}"
    if [[ "$base" =~ ^v[0-9]+$ ]]; then
      base="${pkg%/*}"
      base="${base##*/}"
    fi
    mv -f "$out/$base" "$BIN/${names[$i]}"
    printf '%s\n' "$stamp" >"$BIN/.${names[$i]}.stamp"
  done
  rm -rf "$out"
  out=""
  log "built ${names[*]} in $((SECONDS - start)) s"
}

kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=34"
  kube_ldflags+=" -X $pkg.gitTreeState=clean"
done

build kubernetes "$TOOLS/kube" "$KUBE_VERSION" "$kube_ldflags" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
  kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
  kubectl=k8s.io/kubernetes/cmd/kubectl

build etcd "$TOOLS/etcd" "$ETCD_VERSION" "-s -w" \
  etcd=go.etcd.io/etcd/server/v3

# All three from one `go build`: they share most of their packages.
build keda "$TOOLS/keda" "$KEDA_VERSION" "-s -w" \
  keda-webhooks=github.com/kedacore/keda/v2/cmd/webhooks \
  keda-operator=github.com/kedacore/keda/v2/cmd/operator \
  keda-adapter=github.com/kedacore/keda/v2/cmd/adapter

# remove_all_sd drops every service-discovery plugin but file and http
# (prometheus/plugins/*.go); without builtinassets the web UI is not embedded
# (web/ui/ui.go), which the tests do not need: they use the HTTP API.
BUILD_TAGS=remove_all_sd build prometheus "$TOOLS/prometheus" "$PROMETHEUS_VERSION" "-s -w" \
  prometheus=github.com/prometheus/prometheus/cmd/prometheus

# Helm's release build (its Makefile's LDFLAGS): the version `helm version` prints, and the
# Kubernetes version chartutil.DefaultCapabilities and the lint deprecation rules assume.
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
helm_ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$HELM_KUBE_MINOR"
done
build helm "$TOOLS/helm" "$HELM_VERSION" "$helm_ldflags" \
  helm=helm.sh/helm/v3/cmd/helm

log "tools ready in $BIN"
