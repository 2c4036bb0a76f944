# Shortcuts; every target is a plain cargo or script command you can run yourself.
.PHONY: run test unit e2e chart deploy collector tools bench bench-scaler lint fmt ci

run: ## mutate the example offline
	cargo run -- mutate -f examples/vllm-deployment.yaml

test: ## the whole suite (builds the e2e tools on first use)
	cargo test

unit: ## fast tests: unit, golden, property, HTTPS integration, the built-in scaler on loopback
	cargo test --lib --test golden --test annotation_rules --test properties --test server --test upgrade --test scaler

e2e: ## end-to-end against a real kube-apiserver, etcd, KEDA (webhook, operator, adapter), HPA, Prometheus
	cargo test --test e2e -- --nocapture

chart: ## helm lint and helm template of charts/llm-autoscale-webhook; deploy/ is its render
	cargo test --test chart

deploy: ## re-render deploy/ from the chart
	scripts/render-deploy.sh

collector: ## the rendered sidecar config in a real OpenTelemetry collector
	cargo test --test collector -- --nocapture

tools: ## build (or reuse) the control plane and collector binaries
	scripts/e2e-tools.sh
	scripts/collector-build.sh

bench: ## criterion benchmark of the admission path vs a no-op HTTPS handler
	cargo bench --bench admission

bench-scaler: ## load on the built-in scaler: 1,000 workloads x 4 pods x 10 series, 1 and 3 replicas
	scripts/bench-scaler.sh 1
	scripts/bench-scaler.sh 3

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

fmt:
	cargo fmt

ci:
	bash .ci/run
