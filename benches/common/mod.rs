//! The admission reviews the benchmarks send: the annotated vLLM Deployment of
//! `examples/vllm-deployment.yaml`, and the same Deployment with many environment variables
//! on its model server (the size of the object grows, the work the webhook adds does not).

// Each benchmark uses a part of this.
#![allow(dead_code)]

use llm_autoscale_webhook::manifest::parse_documents;
use serde_json::{Value, json};

#[path = "../../tests/server/harness.rs"]
pub mod harness;

/// The example Deployment.
pub fn example() -> Value {
    let text = std::fs::read_to_string("examples/vllm-deployment.yaml")
        .expect("examples/vllm-deployment.yaml");
    parse_documents(&text)
        .expect("example parses")
        .into_iter()
        .next()
        .expect("one document")
}

/// The example Deployment with `n` environment variables on its vLLM container.
pub fn with_env_vars(n: usize) -> Value {
    let mut d = example();
    let env: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("VLLM_EXTRA_SETTING_{i:05}"), "value": format!("value-{i:05}")}))
        .collect();
    d["spec"]["template"]["spec"]["containers"][0]["env"] = Value::Array(env);
    d
}

/// The example Deployment as the cluster stores it after admission: the sidecar is in and
/// current, so admitting it again answers without a patch (every later apply of it).
pub fn current() -> Value {
    let cfg = llm_autoscale_webhook::config::WebhookConfig::default();
    llm_autoscale_webhook::mutate::mutate(&example(), &cfg)
        .expect("the example mutates")
        .patched
}

/// A case by name: `typical`, `current` (typical, already admitted) or `env-N` (N environment
/// variables).
pub fn case(name: &str) -> Option<Value> {
    match name {
        "typical" => Some(example()),
        "current" => Some(current()),
        _ => name
            .strip_prefix("env-")
            .and_then(|n| n.parse().ok())
            .map(with_env_vars),
    }
}

/// The CREATE AdmissionReview of `object`, as the apiserver sends it.
pub fn review_body(object: &Value) -> Vec<u8> {
    serde_json::to_vec(&harness::review(object, "CREATE", false, "bench")).expect("encode")
}
