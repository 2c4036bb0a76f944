//! Arbitrary annotation values on an opted-in Deployment: mutate never panics, and when it
//! succeeds a second run changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_autoscale_webhook::config::WebhookConfig;
use llm_autoscale_webhook::mutate::mutate;
use serde_json::json;

const KEYS: [&str; 10] = [
    "target", "query", "triggers", "metric", "min-replicas", "max-replicas", "scrape-interval",
    "scaler-metadata", "metrics-path", "sidecar",
];

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let mut parts = s.splitn(2, '\n');
    let (Some(k), Some(v)) = (parts.next(), parts.next()) else { return };
    let key = KEYS[k.len() % KEYS.len()];
    let d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "m", "namespace": "n", "annotations": {
            "llm-autoscale.io/enabled": "true", "llm-autoscale.io/max-replicas": "3",
            format!("llm-autoscale.io/{key}"): v}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "vllm/vllm-openai:v0.11.0"}]}}}
    });
    let cfg = WebhookConfig::default();
    if let Ok(m) = mutate(&d, &cfg) {
        let again = mutate(&m.patched, &cfg).expect("a mutated object stays valid");
        assert!(again.patch.0.is_empty());
    }
});
