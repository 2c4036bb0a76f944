//! The Helm chart (`charts/llm-autoscale-webhook`) with the real Helm: `helm lint`, and
//! `helm template` renders whose objects are checked against each other, against the binary
//! (its defaults, the settings it reads, the Lease it takes) and against `deploy/`, which is
//! rendered from the chart (`scripts/render-deploy.sh`).
//!
//! `cargo test --test chart`; Helm is built on first use (`scripts/e2e-tools.sh helm`, about 5
//! minutes on 2 cores), and kubectl for the kustomize comparison (`kubernetes`, about 4).
//! `UPDATE_GOLDEN=1` rewrites deploy/ and the README's values table.

#[path = "../support/helm.rs"]
mod helm;

mod certificates;
mod deploy;
mod options;
mod rbac;
mod render;
mod scaler;
mod values;

use serde_json::Value;

/// The Service's DNS name in the default render: what the API server checks the serving
/// certificate against.
const SERVICE_DNS: &str = "llm-autoscale-webhook.llm-autoscale-system.svc";

/// The labels of the webhook's pods.
fn pod_labels(objects: &[Value]) -> &serde_json::Map<String, Value> {
    helm::find(objects, "Deployment", helm::RELEASE)["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .expect("pod labels")
}

/// Whether `match_labels` is not empty and every pair of it is on the pods.
fn selects_the_pods(match_labels: &Value, objects: &[Value]) -> bool {
    let pods = pod_labels(objects);
    let m = match_labels.as_object().expect("matchLabels");
    !m.is_empty() && m.iter().all(|(k, v)| pods.get(k) == Some(v))
}

/// The container named `webhook` of the Deployment in `objects`.
fn webhook_container(objects: &[Value]) -> &Value {
    let d = helm::find(objects, "Deployment", helm::RELEASE);
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "webhook"))
        .expect("a container named webhook")
}

/// The `env` of the webhook container as (name, value) pairs; `valueFrom` entries have none.
fn env_of(objects: &[Value]) -> Vec<(String, Option<String>)> {
    webhook_container(objects)["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().expect("env name").to_string(),
                e["value"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// The value of one environment variable of the webhook container.
fn env_value(objects: &[Value], name: &str) -> Option<String> {
    env_of(objects)
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v)
}

/// Every webhook of both configurations.
fn webhooks(objects: &[Value]) -> Vec<&Value> {
    [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ]
    .iter()
    .flat_map(|k| helm::all_of(objects, k))
    .flat_map(|c| c["webhooks"].as_array().expect("webhooks").iter())
    .collect()
}

#[test]
fn lint_passes_strictly_in_every_certificate_mode_and_with_every_option() {
    let chart = helm::chart_dir();
    let chart = chart.to_str().unwrap();
    for set in [
        "certificates.mode=cert-manager",
        "certificates.mode=generate",
        "certificates.mode=provided",
        "serviceMonitor.enabled=true,networkPolicy.enabled=true,networkPolicy.egress.enabled=true,doctor.bindServiceAccount=true,priorityClassName=platform",
        "scaler.enabled=true",
        "scaler.enabled=true,scaler.tls.secretName=scaler-tls,scaler.trustKey.value=0123456789abcdef0123456789abcdef,serviceMonitor.enabled=true,networkPolicy.enabled=true,networkPolicy.egress.enabled=true",
        "scaler.enabled=true,scaler.trustKey.enabled=false",
        "scaler.enabled=true,scaler.tls.secretName=scaler-tls,scaler.trustKey.previousSecretName=old-key",
    ] {
        let out = helm::run(&["lint", "--strict", chart, "--set", set]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 chart(s) linted, 0 chart(s) failed"),
            "helm lint --strict --set {set}:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !stdout.contains("[WARNING]") && !stdout.contains("[ERROR]"),
            "{set}: {stdout}"
        );
    }
}
