//! End-to-end tests against a real control plane on 127.0.0.1
//! (`cargo test --test e2e`). See `cluster.rs` for what runs and how.
//!
//! The first run on a machine builds the control-plane tools from Go modules
//! (`scripts/e2e-tools.sh`, several minutes on 2 cores); later runs reuse
//! them. Each test starts its own [`ControlPlane`].

mod admission_cost;
mod builtin;
mod chart_install;
mod cluster;
// The collector tests' harness: the collector binary and the kubelet's resolution of a
// container (not every helper is used here).
#[allow(dead_code)]
#[path = "../collector/process.rs"]
mod collector_process;
mod doctor;
mod fake_metrics;
#[allow(dead_code)]
#[path = "../collector/kubelet.rs"]
mod kubelet;
mod product;
mod prometheus;
#[allow(dead_code)]
#[path = "../scaler/clients.rs"]
mod scaler_clients;
#[allow(dead_code)]
#[path = "../scaler/process.rs"]
mod scaler_process;
mod scaling;
mod scaling_plane;

#[path = "../support/helm.rs"]
mod helm;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cluster::ControlPlane;
use serde_json::{Value, json};

/// Reads `tests/fixtures/<rel>`.
fn fixture(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Parses a single-document YAML manifest.
fn manifest(yaml: &str) -> Value {
    serde_yaml_ng::from_str(yaml).expect("fixture is one YAML document")
}

const NAMESPACE: &str = "llm";
const DEPLOYMENT: &str = "llama3-8b-vllm";

/// A vLLM Deployment as the ScaledObject fixture expects it.
fn vllm_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": DEPLOYMENT}},
            "template": {
                "metadata": {"labels": {"app": DEPLOYMENT}},
                "spec": {"containers": [{
                    "name": "vllm",
                    "image": "vllm/vllm-openai:v0.11.0",
                    "args": ["--model", "meta-llama/Meta-Llama-3-8B-Instruct"],
                    "ports": [{"name": "http", "containerPort": 8000}],
                }]},
            },
        },
    })
}

/// The control plane itself: KEDA's webhook judges ScaledObjects, the
/// garbage collector follows ownerReferences, KServe's CRD accepts the
/// InferenceService from KServe's docs.
#[test]
fn control_plane_smoke() {
    let t0 = Instant::now();
    let cp = ControlPlane::start();
    let started = t0.elapsed();

    cp.kubectl_ok(&["create", "namespace", NAMESPACE]);
    cp.kubectl_stdin_ok(&["apply", "-f", "-"], &vllm_deployment().to_string());
    let uid = cp.kubectl_ok(&[
        "get",
        "deployment",
        "-n",
        NAMESPACE,
        DEPLOYMENT,
        "-o=jsonpath={.metadata.uid}",
    ]);
    assert!(!uid.is_empty(), "the Deployment has a uid");

    // A valid ScaledObject is admitted by KEDA's webhook ...
    let scaled_object = fixture("keda/keda-so-vllm-prometheus.yaml");
    let out = cp.kubectl_stdin_ok(&["apply", "-f", "-"], &scaled_object);
    assert!(out.contains("created"), "{out}");

    // ... and a second one on the same Deployment is denied. KEDA reads the
    // existing ScaledObjects from an informer cache, so wait (dry runs reach
    // the webhook too) until it has seen the first one.
    let mut duplicate = manifest(&scaled_object);
    duplicate["metadata"]["name"] = json!("llama3-8b-vllm-duplicate");
    let duplicate = duplicate.to_string();
    let conflict = format!("is already managed by the ScaledObject '{DEPLOYMENT}'");
    cp.wait_for(
        "KEDA's webhook to see the first ScaledObject",
        Duration::from_secs(30),
        || {
            let out = cp.kubectl_stdin(&["create", "--dry-run=server", "-f", "-"], &duplicate);
            String::from_utf8_lossy(&out.stderr).contains(&conflict)
        },
    );
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], &duplicate);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "duplicate ScaledObject was admitted");
    assert!(
        stderr.contains("vscaledobject.kb.io") && stderr.contains("denied the request"),
        "denied by KEDA's webhook: {stderr}"
    );
    assert!(stderr.contains(&conflict), "names the conflict: {stderr}");
    let out = cp.kubectl(&[
        "get",
        "scaledobject",
        "-n",
        NAMESPACE,
        "llama3-8b-vllm-duplicate",
    ]);
    assert!(
        !out.status.success(),
        "the denied ScaledObject is not stored"
    );

    // Objects owned by the Deployment (a ConfigMap, and the ScaledObject
    // once it names its owner, as the product's reconciler does) are
    // garbage-collected when the Deployment goes.
    let owner = json!([{
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": DEPLOYMENT,
        "uid": uid,
    }]);
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "owned-by-deployment",
            "namespace": NAMESPACE,
            "ownerReferences": owner,
        },
        "data": {"k": "v"},
    });
    cp.kubectl_stdin_ok(&["apply", "-f", "-"], &config_map.to_string());
    cp.kubectl_ok(&[
        "patch",
        "scaledobject",
        "-n",
        NAMESPACE,
        DEPLOYMENT,
        "--type=merge",
        &format!("-p={}", json!({"metadata": {"ownerReferences": owner}})),
    ]);
    cp.kubectl_ok(&["delete", "deployment", "-n", NAMESPACE, DEPLOYMENT]);
    cp.wait_for(
        "the garbage collector to delete the Deployment's dependents",
        Duration::from_secs(30),
        || {
            let cm = cp.kubectl(&["get", "configmap", "-n", NAMESPACE, "owned-by-deployment"]);
            let so = cp.kubectl(&["get", "scaledobject", "-n", NAMESPACE, DEPLOYMENT]);
            let gone = |o: &std::process::Output| {
                !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("NotFound")
            };
            gone(&cm) && gone(&so)
        },
    );

    // KServe's CRD (applied server-side: it is ~2 MB) takes the
    // InferenceService from KServe's docs as written.
    let isvc = fixture("kserve/huggingface-fbopt-otel.yaml");
    cp.kubectl_stdin_ok(&["apply", "-n", NAMESPACE, "-f", "-"], &isvc);
    let stored: Value = serde_json::from_str(&cp.kubectl_ok(&[
        "get",
        "inferenceservice",
        "-n",
        NAMESPACE,
        "huggingface-fbopt",
        "-o=json",
    ]))
    .expect("kubectl -o json");
    assert_eq!(
        stored["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"],
        "keda"
    );
    assert_eq!(
        stored["spec"]["predictor"]["autoScaling"]["metrics"][0]["podmetric"]["metric"]["query"],
        "vllm:num_requests_running"
    );

    eprintln!(
        "e2e: control_plane_smoke: control plane {:.1?}, scenario {:.1?}",
        started,
        t0.elapsed() - started
    );
}
