#!/usr/bin/env bash
# Load benchmark of the admission webhook over keep-alive TLS (not part of `cargo test`).
#
# Starts the release binary (`serve`, development certificate, no reconciler, JSON logs to
# /dev/null: formatted as in a cluster, then thrown away) and drives it with wrk:
#   /healthz                              the no-op route: what TLS + HTTP cost alone
#   /mutate, typical vLLM Deployment      examples/vllm-deployment.yaml
#   /mutate, 1,000 environment variables  the same Deployment, ~70 KB of review
#   /mutate, first sight                  the typical Deployment under a new name per request:
#                                         every review renders its sidecar (no memo hit)
#   /mutate, current                      the typical Deployment as stored after admission:
#                                         sidecar current, answered without a patch
# at 64 and at 4 keep-alive connections. For each run it prints requests/s, the ratio to a
# /healthz run made just before it at the same connection count, latency percentiles, the
# webhook's resident memory (now and peak) and the load average.
#
# The figures share the machine with everything else running on it, wrk included, and the
# machine's speed drifts from one run to the next: the pairs share it, and the healthz row
# (a /healthz run over the one before it) shows how far two runs in a row differ.
#
# Usage: scripts/bench-admission.sh [SECONDS per run, default 10] [CONNECTIONS..., default 64 4]
# BENCH_ROUNDS=n: runs each route n times (default 3), each after its own /healthz run.
# BENCH_ONLY="typical current": only those runs (names as printed, without "mutate ").
# BENCH_BIN=path: run that webhook binary instead of building this tree's (to compare builds).
# Needs wrk (Debian: apt-get install wrk; installed here when missing and running as root).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION="${1:-10}"
shift || true
CONNECTIONS=("$@")
[ ${#CONNECTIONS[@]} -gt 0 ] || CONNECTIONS=(64 4)
THREADS="${BENCH_THREADS:-2}"
ROUNDS="${BENCH_ROUNDS:-3}"
PORT="${BENCH_PORT:-18443}"

if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y -q wrk >/dev/null
    else
        echo "wrk is needed (Debian: apt-get install wrk)" >&2
        exit 1
    fi
fi

BIN="${BENCH_BIN:-}"
if [ -z "$BIN" ]; then
    echo "building (release)..." >&2
    cargo build -q --release --bin llm-autoscale-webhook
    BIN=target/release/llm-autoscale-webhook
fi

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The review bodies, made by the same code as the criterion benchmark's.
for c in typical current env-1000; do
    cargo bench -q --bench admission_cases -- review "$c" >"$WORK/$c.json" 2>/dev/null
done

cat >"$WORK/bench.lua" <<'LUA'
local body_file = os.getenv("BENCH_BODY")
if body_file and body_file ~= "" then
    local f = assert(io.open(body_file, "rb"))
    wrk.method = "POST"
    wrk.body = f:read("*a")
    wrk.headers["Content-Type"] = "application/json"
    f:close()
end

-- BENCH_UNIQUE=1: every request admits the Deployment under a name never seen before.
local unique = os.getenv("BENCH_UNIQUE") == "1"
local threads = 0
setup = function(thread)
    threads = threads + 1
    thread:set("tid", threads)
end
local sent = 0
if unique then
    request = function()
        sent = sent + 1
        local name = string.format("qwen2-7b-vllm-%d-%d", tid or 0, sent)
        return wrk.format(nil, nil, nil, (wrk.body:gsub("qwen2%-7b%-vllm", name)))
    end
end

done = function(summary, latency, requests)
    local e = summary.errors
    local errors = e.connect + e.read + e.write + e.status + e.timeout
    io.write(string.format(
        "RESULT %d %d %.1f %.3f %.3f %.3f %.3f %.3f\n",
        summary.requests, errors, summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(90) / 1000,
        latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
        latency.max / 1000))
end
LUA

RUST_LOG="${BENCH_RUST_LOG:-info}" "$BIN" serve --addr "127.0.0.1:$PORT" --reconcile false --log-format json \
    2>/dev/null &
SERVER_PID=$!
URL="https://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
    curl -ksf "$URL/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -ksf "$URL/readyz" >/dev/null || { echo "the webhook did not start" >&2; exit 1; }

# Each body must get a patch, or the benchmark measures something else.
for c in typical env-1000; do
    curl -ksf -H 'Content-Type: application/json' --data-binary "@$WORK/$c.json" "$URL/mutate" \
        | grep -q '"patch":"' || { echo "/mutate gave no patch for $c" >&2; exit 1; }
done
curl -ksf -H 'Content-Type: application/json' --data-binary "@$WORK/current.json" "$URL/mutate" \
    | grep -v -q '"patch":"' || { echo "/mutate patched the current Deployment" >&2; exit 1; }

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# run NAME PATH BODY CONNECTIONS UNIQUE -> "rps p50 p90 p99 p999 max errors"
run() {
    local out
    out="$(BENCH_BODY="$3" BENCH_UNIQUE="$5" wrk -t"$THREADS" -c"$4" -d"${DURATION}s" -s "$WORK/bench.lua" "$URL$2" \
        | awk '/^RESULT/ {print $4, $5, $6, $7, $8, $9, $3}')"
    echo "$out"
}

echo "webhook ${BENCH_BIN:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')}, $(nproc) cores, wrk -t$THREADS, ${DURATION}s per run, $ROUNDS round(s)"
echo "resident memory after start: $(rss_kib) KiB"
echo "ratio: the route's req/s over those of the /healthz run just before it (the machine's speed"
echo "drifts between runs; each pair shares it). With several rounds, the median ratio follows."
printf '%-5s %-17s %10s %10s %7s %8s %8s %8s %9s %9s %6s %9s %9s  %s\n' \
    conns route req/s healthz ratio p50_ms p90_ms p99_ms p99.9_ms max_ms errors rss_KiB peak_KiB "load(1,5,15)"
# Warm-up: connections, allocator, caches.
BENCH_BODY="$WORK/typical.json" wrk -t"$THREADS" -c4 -d2s -s "$WORK/bench.lua" "$URL/mutate" >/dev/null
for conns in "${CONNECTIONS[@]}"; do
    for spec in "healthz|/healthz||" "mutate typical|/mutate|$WORK/typical.json|" \
        "mutate first-sight|/mutate|$WORK/typical.json|1" \
        "mutate current|/mutate|$WORK/current.json|" \
        "mutate env-1000|/mutate|$WORK/env-1000.json|"; do
        IFS='|' read -r name path body unique <<<"$spec"
        if [ -n "${BENCH_ONLY:-}" ] && ! grep -qw -- "${name#mutate }" <<<"$BENCH_ONLY"; then
            continue
        fi
        ratios=()
        for _ in $(seq 1 "$ROUNDS"); do
            read -r base _ <<<"$(run healthz /healthz "" "$conns" "")"
            la="$(load)"
            read -r rps p50 p90 p99 p999 max errors \
                <<<"$(run "$name" "$path" "$body" "$conns" "$unique")"
            ratio="$(awk -v a="$rps" -v b="$base" 'BEGIN {printf "%.2f", a / b}')"
            ratios+=("$ratio")
            printf '%-5s %-17s %10.0f %10.0f %7s %8s %8s %8s %9s %9s %6s %9s %9s  %s\n' \
                "$conns" "$name" "$rps" "$base" "$ratio" "$p50" "$p90" "$p99" "$p999" "$max" \
                "$errors" "$(rss_kib)" "$(hwm_kib)" "$la"
        done
        if [ "$ROUNDS" -gt 1 ]; then
            median="$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')"
            printf '%-5s %-17s median ratio %s\n' "$conns" "$name" "$median"
        fi
    done
done
