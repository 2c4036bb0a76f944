#!/usr/bin/env bash
# Where the time of an admitted create goes, through a real kube-apiserver (not part of
# `cargo test`): dry-run creates of a Deployment with no webhook, with the webhook registered
# but not sent the object, sent it with nothing to change, and sent it with the sidecar to
# add. Prints the client's latency percentiles per phase, the API server's mean time calling
# the webhook and in its mutating admission step, and the webhook's own handling time
# (tests/e2e/admission_cost.rs says how each is read).
#
# Usage: scripts/measure-apiserver-admission.sh
# Builds the control plane tools on first use (scripts/e2e-tools.sh) and the release webhook.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/e2e-tools.sh >&2
cargo build -q --release --bin llm-autoscale-webhook
ADMISSION_COST_BIN="$PWD/target/release/llm-autoscale-webhook" \
    cargo test -q --test e2e apiserver_admission_cost -- --ignored --nocapture 2>&1 |
    grep -v -E '^(running|test |$)|test result'
