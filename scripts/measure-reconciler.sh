#!/usr/bin/env bash
# Measures the reconciler at scale on the real control plane of the end-to-end tests
# (etcd and kube-apiserver from target/e2e-tools/bin, started on 127.0.0.1 as in
# tests/e2e/cluster.rs; no controller manager: nothing here needs one, and without the
# Deployment controller no ReplicaSet or pod ever exists).
#
# The cluster gets TOTAL Deployments in 10 namespaces, OPTED of them opted in (rendered by
# `llm-autoscale-webhook mutate`, as the webhook would admit them: labelled, with the sidecar),
# the others plain, created with kubectl --save-config (so they carry kubectl's
# last-applied-configuration annotation, as applied objects do). Of the opted-in ones, KSERVE
# are KServe predictors (each with its InferenceService, autoscalerClass external, as the
# webhook stores it; no KServe controller runs) and WAKE use HTTP wake (an InterceptorRoute
# each). The reconciler runs as
# deploy/'s ServiceAccount (a static token for system:serviceaccount:llm-autoscale-system:
# llm-autoscale-webhook), so deploy/base/rbac.yaml must cover what it reads. Requests are
# counted from the apiserver's audit log, filtered to that user.
#
# Phases, each printing its figures:
#   1. only the OPTED Deployments: cold start until all ScaledObjects exist, then resident
#      memory (VmRSS from /proc) after an idle period;
#   2. plus TOTAL-OPTED plain Deployments: restart, resident memory and requests per idle
#      minute (by verb and resource);
#   3. restart after every ScaledObject was edited while it was down: time until all are
#      repaired; then a cold start with no ScaledObject: time until all exist.
#
# Usage: scripts/measure-reconciler.sh [RECONCILER_BINARY]
#   default binary: target/debug/llm-autoscale-webhook (built by `cargo build`)
# Environment: TOTAL (10000), OPTED (100), KSERVE (10), WAKE (10), IDLE_SECONDS (60; over 300 it includes the
# reconciler's periodic resync of every opted-in Deployment), PHASE1_IDLE_SECONDS
# (IDLE_SECONDS), MUTATE (the binary whose
# `mutate` renders the opted-in Deployments; default target/debug/llm-autoscale-webhook),
# KEEP=1 keeps the work directory, HOLD=1 keeps the cluster running at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/target/e2e-tools/bin"
RECONCILER="${1:-$ROOT/target/debug/llm-autoscale-webhook}"
# This branch's webhook renders the opted-in Deployments, whichever reconciler is measured.
MUTATE="${MUTATE:-$ROOT/target/debug/llm-autoscale-webhook}"
TOTAL="${TOTAL:-10000}"
OPTED="${OPTED:-100}"
KSERVE="${KSERVE:-10}"
WAKE="${WAKE:-10}"
IDLE_SECONDS="${IDLE_SECONDS:-60}"
PHASE1_IDLE_SECONDS="${PHASE1_IDLE_SECONDS:-$IDLE_SECONDS}"
NAMESPACES=10
SA_USER="system:serviceaccount:llm-autoscale-system:llm-autoscale-webhook"

for tool in etcd kube-apiserver kubectl; do
  [[ -x "$BIN/$tool" ]] || { echo "missing $BIN/$tool: run scripts/e2e-tools.sh" >&2; exit 1; }
done
[[ -x "$RECONCILER" && -x "$MUTATE" ]] || { echo "missing $RECONCILER or $MUTATE: run cargo build" >&2; exit 1; }
command -v jq >/dev/null || { echo "needs jq" >&2; exit 1; }
command -v openssl >/dev/null || { echo "needs openssl" >&2; exit 1; }

WORK="$(mktemp -d /tmp/measure-reconciler.XXXXXX)"
PIDS=()
RECONCILER_PID=""
cleanup() {
  [[ -n "$RECONCILER_PID" ]] && kill "$RECONCILER_PID" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ "${KEEP:-0}" == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_utc() { date -u +%Y-%m-%dT%H:%M:%S.%6NZ; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# --- control plane -------------------------------------------------------------------------
ETCD_PORT="$(free_port)"; ETCD_PEER="$(free_port)"; API_PORT="$(free_port)"
mkdir -p "$WORK/etcd" "$WORK/pki" "$WORK/logs"
openssl genrsa -out "$WORK/pki/sa.key" 2048 2>/dev/null
ADMIN_TOKEN="admin-$(openssl rand -hex 16)"
SA_TOKEN="reconciler-$(openssl rand -hex 16)"
cat >"$WORK/pki/tokens.csv" <<EOF
$ADMIN_TOKEN,measure-admin,measure-admin,system:masters
$SA_TOKEN,$SA_USER,reconciler-uid,"system:serviceaccounts,system:serviceaccounts:llm-autoscale-system"
EOF
cat >"$WORK/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: ["$SA_USER"]
- level: None
EOF

"$BIN/etcd" --name=measure --data-dir="$WORK/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster="measure=http://127.0.0.1:$ETCD_PEER" --unsafe-no-fsync=true \
  >"$WORK/logs/etcd.log" 2>&1 &
PIDS+=($!)
# Without --tls-cert-file the apiserver makes a self-signed serving certificate in --cert-dir.
"$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
  --cert-dir="$WORK/pki" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$WORK/pki/sa.key" --service-account-signing-key-file="$WORK/pki/sa.key" \
  --token-auth-file="$WORK/pki/tokens.csv" --authorization-mode=RBAC \
  --service-cluster-ip-range=10.0.0.0/24 --endpoint-reconciler-type=none \
  --audit-policy-file="$WORK/audit-policy.yaml" --audit-log-path="$WORK/audit.log" \
  --audit-log-maxsize=0 \
  >"$WORK/logs/kube-apiserver.log" 2>&1 &
PIDS+=($!)

kubeconfig() { # token file
  cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: measure
  cluster: {server: "https://127.0.0.1:$API_PORT", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: "$1"}
contexts:
- name: measure
  context: {cluster: measure, user: u, namespace: default}
current-context: measure
EOF
}
kubeconfig "$ADMIN_TOKEN" >"$WORK/admin.kubeconfig"
kubeconfig "$SA_TOKEN" >"$WORK/reconciler.kubeconfig"
k() { KUBERC=off "$BIN/kubectl" --kubeconfig="$WORK/admin.kubeconfig" "$@"; }

log "starting etcd and kube-apiserver"
for _ in $(seq 1 300); do
  k get --raw=/readyz >/dev/null 2>&1 && break
  sleep 0.2
done
k get --raw=/readyz >/dev/null
k apply --server-side --field-manager=measure -f "$ROOT/tests/fixtures/crds" >/dev/null
# (kubectl wait fails outright on a CRD that has no status yet, so poll.)
for _ in $(seq 1 300); do
  pending=$(k get crd -o json | jq '[.items[] | select(([.status.conditions[]? | select(.type == "Established" and .status == "True")] | length) == 0)] | length')
  [[ "$pending" == 0 ]] && break
  sleep 0.2
done
k create namespace llm-autoscale-system >/dev/null
k apply -f "$ROOT/deploy/base/rbac.yaml" >/dev/null
for n in $(seq 0 $((NAMESPACES - 1))); do k create namespace "ns-$n" >/dev/null; done

# --- workloads -----------------------------------------------------------------------------
vllm_deployment() { # name namespace annotation... ("key: value"): a vLLM model server
  local name=$1 ns=$2
  shift 2
  cat <<EOF
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $name
  namespace: $ns
  annotations:
EOF
  printf '    %s\n' "$@"
  cat <<EOF
spec:
  replicas: 1
  selector: {matchLabels: {app: $name}}
  template:
    metadata: {labels: {app: $name}}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.11.0
        args: [--model, Qwen/Qwen2-7B-Instruct]
        ports: [{name: http, containerPort: 8000}]
EOF
}
opted_in_deployment() { # name namespace
  vllm_deployment "$1" "$2" 'llm-autoscale.io/enabled: "true"' 'llm-autoscale.io/max-replicas: "4"'
}
inference_service() { # name namespace: as the webhook stores it (autoscalerClass external)
  cat <<EOF
---
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: $1
  namespace: $2
  annotations:
    serving.kserve.io/deploymentMode: Standard
    serving.kserve.io/autoscalerClass: external
    llm-autoscale.io/enabled: "true"
    llm-autoscale.io/max-replicas: "4"
spec:
  predictor:
    model:
      modelFormat: {name: huggingface}
      args: [--model_name=m, --model_id=facebook/opt-125m]
EOF
}
predictor_deployment() { # InferenceService namespace: its predictor, as KServe (Standard mode) makes it
  cat <<EOF
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $1-predictor
  namespace: $2
  labels: {app: isvc.$1-predictor, component: predictor, serving.kserve.io/inferenceservice: $1}
  annotations:
    serving.kserve.io/deploymentMode: Standard
    serving.kserve.io/autoscalerClass: external
    llm-autoscale.io/enabled: "true"
    llm-autoscale.io/max-replicas: "4"
spec:
  replicas: 1
  selector: {matchLabels: {app: isvc.$1-predictor}}
  template:
    metadata:
      labels: {app: isvc.$1-predictor, component: predictor, serving.kserve.io/inferenceservice: $1}
      annotations:
        serving.kserve.io/autoscalerClass: external
        llm-autoscale.io/enabled: "true"
        llm-autoscale.io/max-replicas: "4"
        prometheus.kserve.io/port: "8080"
    spec:
      containers:
      - name: kserve-container
        image: kserve/huggingfaceserver:v0.15.2
        args: [--model_name=m, --model_id=facebook/opt-125m, --http_port=8080]
        ports: [{name: h2c, containerPort: 8080, protocol: TCP}]
EOF
}
http_wake_deployment() { # name namespace: scales to zero, woken through the KEDA HTTP add-on
  vllm_deployment "$1" "$2" 'llm-autoscale.io/enabled: "true"' 'llm-autoscale.io/min-replicas: "0"' \
    'llm-autoscale.io/max-replicas: "4"' "llm-autoscale.io/http-wake-service: $1" \
    'llm-autoscale.io/http-wake-port: "8000"' "llm-autoscale.io/http-wake-hosts: $1.example.com"
}
plain_deployments() { # namespace first count
  local ns=$1 first=$2 count=$3 i
  echo '{"apiVersion":"v1","kind":"List","items":['
  for ((i = first; i < first + count; i++)); do
    if [[ $i -gt $first ]]; then echo ','; fi
    printf '{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web-%d","namespace":"%s","labels":{"app":"web-%d","team":"t%d"}},"spec":{"replicas":1,"selector":{"matchLabels":{"app":"web-%d"}},"template":{"metadata":{"labels":{"app":"web-%d"}},"spec":{"containers":[{"name":"web","image":"nginx:1.27","ports":[{"containerPort":8080}],"resources":{"requests":{"cpu":"100m","memory":"64Mi"}}}]}}}}' \
      "$i" "$ns" "$i" $((i % 7)) "$i" "$i"
  done
  echo ']}'
}

log "creating $OPTED opted-in Deployments (rendered by the webhook's mutate): $KSERVE KServe predictors, $WAKE with HTTP wake"
for i in $(seq 0 $((OPTED - 1))); do
  ns="ns-$((i % NAMESPACES))"
  if [[ $i -lt $KSERVE ]]; then
    inference_service "model-$i" "$ns" >>"$WORK/inference-services.yaml"
    predictor_deployment "model-$i" "$ns"
  elif [[ $i -lt $((KSERVE + WAKE)) ]]; then
    http_wake_deployment "model-$i" "$ns"
  else
    opted_in_deployment "model-$i" "$ns"
  fi
done >"$WORK/opted-in.yaml"
if [[ $KSERVE -gt 0 ]]; then k create -f "$WORK/inference-services.yaml" >/dev/null; fi
"$MUTATE" mutate -f "$WORK/opted-in.yaml" >"$WORK/opted-in-mutated.yaml" 2>/dev/null
k create -f "$WORK/opted-in-mutated.yaml" >/dev/null
# The ScaledObjects and InterceptorRoutes are the reconciler's to make.
k delete scaledobjects,interceptorroutes --all --all-namespaces --wait=false >/dev/null
labelled=$(k get deployments -A -l llm-autoscale.io/managed=true --no-headers | wc -l)
log "$labelled of them carry the llm-autoscale.io/managed label"

# --- the reconciler ------------------------------------------------------------------------
start_reconciler() { # log name
  KUBECONFIG="$WORK/reconciler.kubeconfig" POD_NAMESPACE=llm-autoscale-system POD_NAME=measure \
    RUST_LOG=info "$RECONCILER" reconcile --log-format text >"$WORK/logs/$1.log" 2>&1 &
  RECONCILER_PID=$!
}
stop_reconciler() {
  local t0=$SECONDS
  kill -TERM "$RECONCILER_PID"
  wait "$RECONCILER_PID" 2>/dev/null || true
  RECONCILER_PID=""
  log "reconciler stopped $((SECONDS - t0)) s after SIGTERM"
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$RECONCILER_PID/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$RECONCILER_PID/status"; }
count_so() { k get scaledobjects -A --no-headers 2>/dev/null | wc -l; }
count_repaired() { # ScaledObjects with the rendered maxReplicaCount
  k get scaledobjects -A -o json | jq '[.items[] | select(.spec.maxReplicaCount == 4)] | length'
}
wait_until() { # description command expected → prints seconds
  local what=$1 cmd=$2 want=$3 start end
  start=$(date +%s.%N)
  for _ in $(seq 1 1200); do
    [[ "$($cmd)" -ge "$want" ]] && break
    sleep 0.25
  done
  [[ "$($cmd)" -ge "$want" ]] || { echo "timed out waiting for $what" >&2; exit 1; }
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}'
}
requests_between() { # from to → "total" and a breakdown
  jq -r --arg from "$1" --arg to "$2" --arg user "$SA_USER" '
    select(.user.username == $user and .requestReceivedTimestamp >= $from and .requestReceivedTimestamp < $to)
    | [.auditID, .verb, (.objectRef.resource // .requestURI)] | @tsv' "$WORK/audit.log" |
    sort -u -k1,1 | cut -f2,3 | sort | uniq -c | sort -rn
}
idle_period() { # label seconds → requests, and VmRSS every 30 s of it
  local from to waited=0 step samples=""
  from=$(now_utc)
  while [[ $waited -lt $2 ]]; do
    step=$(( $2 - waited < 30 ? $2 - waited : 30 ))
    sleep "$step"
    waited=$((waited + step))
    samples+=" ${waited}s:$(rss_kib)"
  done
  to=$(now_utc)
  echo "$1: VmRSS (KiB) during the idle period:$samples"
  local breakdown total
  breakdown=$(requests_between "$from" "$to")
  total=$(awk '{s += $1} END {print s + 0}' <<<"$breakdown")
  echo "$1: requests in $2 s idle: $total ($(awk -v t="$total" -v s="$2" 'BEGIN {printf "%.1f", t * 60 / s}') per minute)"
  sed 's/^/    /' <<<"$breakdown"
}
resident() { # label idle-seconds → the idle period's figures, then VmRSS in RSS
  idle_period "$1" "$2"
  RSS=$(rss_kib)
  echo "$1: VmRSS ${RSS} KiB (VmHWM $(hwm_kib) KiB)"
}
timed_start() { # log-name what count-command label: start, seconds until all OPTED are counted
  local secs
  start_reconciler "$1"
  secs=$(wait_until "$2" "$3" "$OPTED")
  echo "$4: ${secs} s"
}

echo "reconciler: $RECONCILER"
echo "cluster: $OPTED opted-in Deployments in $NAMESPACES namespaces ($KSERVE KServe predictors, $WAKE with HTTP wake)"

# Phase 1: only the opted-in Deployments.
timed_start phase1 "the ScaledObjects" count_so \
  "phase 1 ($OPTED Deployments): cold start to $OPTED ScaledObjects"
sleep 10
resident "phase 1 ($OPTED Deployments)" "$PHASE1_IDLE_SECONDS"
RSS_SMALL=$RSS
stop_reconciler

# Phase 2: plus the plain Deployments.
PLAIN=$((TOTAL - OPTED))
log "creating $PLAIN plain Deployments"
per_ns=$((PLAIN / NAMESPACES))
for n in $(seq 0 $((NAMESPACES - 1))); do
  count=$per_ns
  if [[ $n -eq $((NAMESPACES - 1)) ]]; then count=$((PLAIN - per_ns * (NAMESPACES - 1))); fi
  plain_deployments "ns-$n" $((n * per_ns)) "$count" >"$WORK/plain-$n.json"
done
# Two kubectl processes at a time (`wait` alone would wait for etcd and the apiserver too).
for n in $(seq 0 2 $((NAMESPACES - 1))); do
  k create --save-config -f "$WORK/plain-$n.json" >/dev/null &
  first=$!
  k create --save-config -f "$WORK/plain-$((n + 1)).json" >/dev/null
  wait "$first"
done
echo "cluster: $(k get deployments -A --no-headers | wc -l) Deployments"
start_reconciler phase2
sleep 20
resident "phase 2 ($TOTAL Deployments)" "$IDLE_SECONDS"
RSS_LARGE=$RSS
echo "per plain Deployment: $(awk -v l="$RSS_LARGE" -v s="$RSS_SMALL" -v n="$PLAIN" 'BEGIN {printf "%.0f", (l - s) * 1024 / n}') bytes of VmRSS"
stop_reconciler

# Phase 3: restart after drift, then cold start.
k get scaledobjects -A -o json | jq '.items[].spec.maxReplicaCount = 9 | del(.items[].metadata.managedFields)' |
  k replace -f - >/dev/null
log "all ScaledObjects edited (maxReplicaCount 9) while the reconciler was down"
timed_start phase3 "the repairs" count_repaired \
  "phase 3 ($TOTAL Deployments): restart to all $OPTED ScaledObjects repaired"
stop_reconciler
k delete scaledobjects --all --all-namespaces >/dev/null
timed_start phase3-cold "the ScaledObjects" count_so \
  "phase 3 ($TOTAL Deployments): cold start to $OPTED ScaledObjects"
stop_reconciler
if [[ "${HOLD:-0}" == 1 ]]; then
  echo "holding the cluster: KUBECONFIG=$WORK/reconciler.kubeconfig (admin: $WORK/admin.kubeconfig); Ctrl-C ends"
  sleep infinity
fi
