#!/usr/bin/env bash
# Builds the OpenTelemetry collector used by the `collector` integration test
# (tests/collector) with the OpenTelemetry Collector Builder (ocb), from the
# manifest tests/collector/builder-config.yaml.
#
#   scripts/collector-build.sh            # build unless already built for this manifest
#   FORCE=1 scripts/collector-build.sh    # rebuild
#
# Output: target/e2e-tools/bin/otelcol-llm-autoscale (path printed on stdout).
# Needs only Go and the Go module proxy; ~5 minutes from an empty module cache,
# seconds when the binary is already there for the current manifest.
set -euo pipefail

BUILDER_VERSION="v0.161.0"

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd -- "${script_dir}/.." && pwd)"
manifest="${root}/tests/collector/builder-config.yaml"
tools="${root}/target/e2e-tools"
gobin="${tools}/gobin"
bindir="${tools}/bin"
binary="${bindir}/otelcol-llm-autoscale"
stamp="${binary}.stamp"
# Must match dist.output_path in the manifest (relative to the repository root).
build_dir="${tools}/otelcol-build"

log() { printf 'collector-build: %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || { log "go is not installed (needed to build the collector)"; exit 1; }
[[ -f "${manifest}" ]] || { log "manifest not found: ${manifest}"; exit 1; }

mkdir -p "${gobin}" "${bindir}"

hash_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}
want_stamp="builder=${BUILDER_VERSION} manifest=$(hash_of "${manifest}")"

is_current() {
  [[ -z "${FORCE:-}" && -x "${binary}" && -f "${stamp}" && "$(cat "${stamp}")" == "${want_stamp}" ]]
}

if is_current; then
  echo "${binary}"
  exit 0
fi

# Serialise concurrent builds (several test processes may ask at once).
if command -v flock >/dev/null 2>&1; then
  exec 9>"${tools}/collector-build.lock"
  flock 9
  if is_current; then
    echo "${binary}"
    exit 0
  fi
fi

start=$(date +%s)

# The builder itself, pinned, installed into a local GOBIN.
builder="${gobin}/builder"
if [[ ! -x "${builder}" ]] || ! "${builder}" version 2>/dev/null | grep -q "${BUILDER_VERSION}"; then
  log "installing go.opentelemetry.io/collector/cmd/builder@${BUILDER_VERSION} into ${gobin}"
  GOBIN="${gobin}" go install "go.opentelemetry.io/collector/cmd/builder@${BUILDER_VERSION}"
fi

# The sources live under the repository's git work tree; VCS stamping is not wanted.
export GOFLAGS="${GOFLAGS:+${GOFLAGS} }-buildvcs=false"
export CGO_ENABLED=0

log "building the collector from ${manifest} (several minutes from an empty Go module cache)"
rm -rf "${build_dir}"
(cd "${root}" && "${builder}" --config="${manifest}") >&2

built="${build_dir}/otelcol-llm-autoscale"
[[ -x "${built}" ]] || { log "the builder did not produce ${built}"; exit 1; }
tmp="${binary}.tmp.$$"
cp "${built}" "${tmp}"
mv -f "${tmp}" "${binary}"
printf '%s' "${want_stamp}" >"${stamp}"

log "built ${binary} in $(($(date +%s) - start))s"
echo "${binary}"
