#!/usr/bin/env bash
# Load benchmark of the built-in scaler (not part of `cargo test`).
#
# Starts REPLICAS release binaries of `llm-autoscale-webhook scaler` on loopback (each with
# the others as --peers, so every GetMetrics fans out to them) and drives them with the load
# of benches/scaler_load.rs: WORKLOADS workloads × PODS pods × SERIES series exported every
# INTERVAL seconds (gauges, a delta counter, a delta latency histogram, as the builtin sidecar
# sends them), each pod to one replica, and KEDA's calls for two triggers per workload
# (GetMetrics every 15 s, IsActive every 30 s) at any replica. After a warm-up it measures for
# SECONDS and prints the export (ingest) and GetMetrics latencies (p50, p99, max, client side),
# the rates, each replica's resident memory (now and peak), the series it holds, and the load
# average.
#
# The driver runs on the same machine and competes with the scaler for its cores: read the
# load average next to the figures, and compare runs made under the same load.
#
# Usage: scripts/bench-scaler.sh [REPLICAS, default 1] [SECONDS, default 60]
# Environment: BENCH_WORKLOADS (1000), BENCH_PODS (4), BENCH_SERIES (10), BENCH_INTERVAL (5),
# BENCH_WARMUP (30), BENCH_CONNECTIONS (64 per replica), BENCH_PORT (24310),
# BENCH_BIN=path: run that scaler binary instead of building this tree's.
set -euo pipefail

cd "$(dirname "$0")/.."
REPLICAS="${1:-1}"
DURATION="${2:-60}"
WORKLOADS="${BENCH_WORKLOADS:-1000}"
PODS="${BENCH_PODS:-4}"
SERIES="${BENCH_SERIES:-10}"
INTERVAL="${BENCH_INTERVAL:-5}"
WARMUP="${BENCH_WARMUP:-30}"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
PORT="${BENCH_PORT:-24310}"

BIN="${BENCH_BIN:-}"
if [ -z "$BIN" ]; then
    echo "building (release)..." >&2
    cargo build -q --release --bin llm-autoscale-webhook
    BIN=target/release/llm-autoscale-webhook
fi
echo "building the load driver (bench profile)..." >&2
cargo bench -q --bench scaler_load --no-run 2>/dev/null

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

port() { echo $((PORT + 10 * $1 + $2)); }   # replica, 0 otlp / 1 scaler / 2 metrics

OTLP=()
SCALER=()
for i in $(seq 0 $((REPLICAS - 1))); do
    OTLP+=("127.0.0.1:$(port "$i" 0)")
    SCALER+=("127.0.0.1:$(port "$i" 1)")
done
for i in $(seq 0 $((REPLICAS - 1))); do
    peers=()
    for j in $(seq 0 $((REPLICAS - 1))); do
        [ "$j" = "$i" ] || peers+=("127.0.0.1:$(port "$j" 1)")
    done
    peer_flag=()
    [ ${#peers[@]} -eq 0 ] || peer_flag=("--peers=$(IFS=,; echo "${peers[*]}")")
    "$BIN" scaler --log-format json \
        --otlp-addr "127.0.0.1:$(port "$i" 0)" \
        --scaler-addr "127.0.0.1:$(port "$i" 1)" \
        --metrics-addr "127.0.0.1:$(port "$i" 2)" \
        "${peer_flag[@]}" >"$WORK/scaler-$i.log" 2>&1 &
    PIDS+=("$!")
done
for i in $(seq 0 $((REPLICAS - 1))); do
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$(port "$i" 2)") 2>/dev/null && break
        sleep 0.1
    done
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CPU_BEFORE=()
for pid in "${PIDS[@]}"; do CPU_BEFORE+=("$(cpu_ticks "$pid")"); done
STARTED=$(date +%s%N)

echo "load: $REPLICAS replica(s), $WORKLOADS workloads × $PODS pods × $SERIES series every ${INTERVAL}s, warm-up ${WARMUP}s, measured ${DURATION}s" >&2
cargo bench -q --bench scaler_load -- \
    --otlp "$(IFS=,; echo "${OTLP[*]}")" --scaler "$(IFS=,; echo "${SCALER[*]}")" \
    --workloads "$WORKLOADS" --pods "$PODS" --series "$SERIES" --interval "$INTERVAL" \
    --warmup "$WARMUP" --duration "$DURATION" --connections "$CONNECTIONS" | tee "$WORK/driver.txt"

scrape() { # replica
    (exec 3<>"/dev/tcp/127.0.0.1/$(port "$1" 2)"
     printf 'GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n' >&3
     cat <&3)
}
metric() { # replica, sample
    scrape "$1" | awk -v s="$2" '$1 == s { print $2 }'
}
# The server's own view: the bucket bound under which 99 % of a histogram's observations fall
# (since the replica started, warm-up included).
server_p99_ms() { # replica, histogram series name without _bucket, label filter
    scrape "$1" | awk -v name="$2_bucket" -v filter="$3" '
        index($1, name "{") == 1 && index($1, filter) > 0 {
            match($1, /le="[^"]*"/); le = substr($1, RSTART + 4, RLENGTH - 5)
            n++; bound[n] = le; count[n] = $2 }
        END { total = count[n]; for (i = 1; i <= n; i++) if (count[i] >= 0.99 * total) {
                  if (bound[i] == "+Inf") print "+Inf"; else printf "%.3f\n", bound[i] * 1000; exit } }'
}
ELAPSED_NS=$(( $(date +%s%N) - STARTED ))
TICKS=$(getconf CLK_TCK)
for i in $(seq 0 $((REPLICAS - 1))); do
    pid="${PIDS[$i]}"
    used=$(( $(cpu_ticks "$pid") - ${CPU_BEFORE[$i]} ))
    echo "replica_${i}_cpu_percent $(awk -v u="$used" -v t="$TICKS" -v e="$ELAPSED_NS" 'BEGIN { printf "%.1f", 100 * u / t / (e / 1e9) }')"
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
    echo "replica_${i}_rss_kib $rss"
    echo "replica_${i}_peak_rss_kib $hwm"
    echo "replica_${i}_series $(metric "$i" llm_autoscale_scaler_series)"
    echo "replica_${i}_points_accepted $(metric "$i" 'llm_autoscale_scaler_points_total{result="accepted"}')"
    echo "replica_${i}_peer_errors $(metric "$i" 'llm_autoscale_scaler_peer_requests_total{result="error"}')"
    echo "replica_${i}_server_get_metrics_p99_ms_at_most $(server_p99_ms "$i" llm_autoscale_scaler_query_duration_seconds 'rpc="GetMetrics"')"
    echo "replica_${i}_server_ingest_p99_ms_at_most $(server_p99_ms "$i" llm_autoscale_scaler_ingest_duration_seconds '')"
done
echo "load_average $(cut -d' ' -f1-3 /proc/loadavg)"
