//! Objects the doctor's unit tests build snapshots from.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde_json::{Value, json};

use super::address::ServiceRef;
use super::snapshot::{HookKind, Probe, ServedCertificate, WebhookSeen, WebhookTarget};
use super::webhook::{DEPLOYMENTS_HOOK, INFERENCE_SERVICES_HOOK, SCALED_OBJECTS_HOOK};

/// Deployment `llm/m` (uid `u-1`) with a vLLM container and these annotations.
pub fn deployment(annotations: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "m", "namespace": "llm", "uid": "u-1", "annotations": annotations},
        "spec": {"selector": {"matchLabels": {"app": "m"}}, "template": {
            "metadata": {"labels": {"app": "m"}},
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0",
                                     "ports": [{"containerPort": 8000}]}]}}}
    })
}

/// Opted in to the otel backend with the default (queue) trigger.
pub fn opted_in_annotations() -> Value {
    json!({"llm-autoscale.io/enabled": "true", "llm-autoscale.io/max-replicas": "4"})
}

/// The three webhooks as deploy/ registers them, trusted and served.
pub fn hooks() -> Vec<WebhookSeen> {
    vec![
        hook(DEPLOYMENTS_HOOK, HookKind::Mutating),
        hook(INFERENCE_SERVICES_HOOK, HookKind::Mutating),
        hook(SCALED_OBJECTS_HOOK, HookKind::Validating),
    ]
}

/// One webhook of the product's Service, trusted (a CA of its own), with two ready endpoints
/// and a certificate valid for 90 days, kept away from its own namespace and kube-system.
pub fn hook(name: &str, kind: HookKind) -> WebhookSeen {
    WebhookSeen {
        configuration: "llm-autoscale-webhook".into(),
        kind,
        name: name.into(),
        target: WebhookTarget::Service {
            service: ServiceRef {
                namespace: "llm-autoscale-system".into(),
                name: "llm-autoscale-webhook".into(),
                port: Some(443),
            },
            path: "/mutate".into(),
        },
        ca_bundle: ca_pem(),
        failure_policy: "Ignore".into(),
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".into(),
                operator: "NotIn".into(),
                values: Some(vec!["llm-autoscale-system".into(), "kube-system".into()]),
            }]),
            match_labels: None,
        }),
        object_selector: None,
        ready_endpoints: Some(2),
        tls: Probe::Answered(ServedCertificate {
            expires_in_seconds: 90 * 86400,
        }),
    }
}

fn ca_pem() -> Vec<u8> {
    crate::certs::generate(&crate::certs::ServingRequest::local_development())
        .map(|b| b.ca_cert_pem.into_bytes())
        .unwrap_or_default()
}
