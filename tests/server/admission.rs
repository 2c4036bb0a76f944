//! `/mutate` and `/validate` over HTTPS give what the pure core computes.

use llm_autoscale_webhook::config::{OnInvalid, WebhookConfig};
use llm_autoscale_webhook::manifest::parse_documents;
use llm_autoscale_webhook::mutate::{MutateError, mutate};
use llm_autoscale_webhook::query::parse_addon_query;
use llm_autoscale_webhook::workload::WorkloadKind;
use serde_json::{Value, json};

use crate::harness::{TestServer, apply_response_patch, response_of, review};

/// Every Deployment and InferenceService in the input fixtures (items of Lists included),
/// with the namespace the API server would have filled in.
fn workloads() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir("tests/fixtures/input")
        .expect("fixtures")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read fixture");
        let mut docs = parse_documents(&text).expect("fixture parses");
        let mut i = 0;
        while i < docs.len() {
            if let Some(items) = docs[i].get("items").and_then(Value::as_array).cloned() {
                docs.extend(items);
            }
            i += 1;
        }
        for mut doc in docs {
            if WorkloadKind::of(&doc).is_none() {
                continue;
            }
            if doc.pointer("/metadata/namespace").is_none() {
                doc["metadata"]["namespace"] = json!("default");
            }
            let name = format!(
                "{} {}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                doc.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            );
            out.push((name, doc));
        }
    }
    out
}

#[tokio::test]
async fn every_fixture_gets_the_core_mutation_and_dry_run_the_same_answer() {
    let cfg = WebhookConfig::default();
    let t = TestServer::start(cfg.clone()).await;
    let mut client = t.client().await;
    assert_eq!(client.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let fixtures = workloads();
    assert!(
        fixtures.len() >= 8,
        "expected the input fixtures, found {}",
        fixtures.len()
    );
    let mut patched = 0;
    for (i, (name, object)) in fixtures.iter().enumerate() {
        let expected = mutate(object, &cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        for operation in ["CREATE", "UPDATE"] {
            let uid = format!("uid-{i}-{operation}");
            let body = serde_json::to_vec(&review(object, operation, false, &uid)).unwrap();
            let reply = client.post("/mutate", body).await.expect("request");
            let response = response_of(&reply);
            assert_eq!(response["uid"], uid.as_str(), "{name}");
            assert_eq!(response["allowed"], true, "{name}: {response}");
            let result = apply_response_patch(&response, object);
            assert_eq!(result, expected.patched, "{name} ({operation})");
            if response.get("patch").is_some() {
                patched += 1;
            }

            let dry_body = serde_json::to_vec(&review(object, operation, true, &uid)).unwrap();
            let dry = client.post("/mutate", dry_body).await.expect("request");
            assert_eq!(response_of(&dry), response, "{name}: dry run differs");
        }
    }
    assert!(patched > 0, "no fixture was patched");
}

fn every_problem() -> Value {
    let text = std::fs::read_to_string("tests/fixtures/invalid/every-problem.yaml").unwrap();
    parse_documents(&text).unwrap().remove(0)
}

#[tokio::test]
async fn invalid_annotations_are_denied_with_every_problem() {
    let cfg = WebhookConfig::default();
    let t = TestServer::start(cfg.clone()).await;
    let object = every_problem();
    let MutateError::Invalid(invalid) = mutate(&object, &cfg).expect_err("the fixture is invalid")
    else {
        panic!("invalid annotations expected")
    };
    assert!(invalid.problems.len() > 1);
    let body = serde_json::to_vec(&review(&object, "CREATE", false, "deny-1")).unwrap();
    let reply = t.client().await.post("/mutate", body).await.unwrap();
    let response = response_of(&reply);
    assert_eq!(response["uid"], "deny-1");
    assert_eq!(response["allowed"], false);
    assert!(response.get("patch").is_none());
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&invalid.to_string()),
        "{message}\n---\n{invalid}"
    );
    for problem in &invalid.problems {
        assert!(message.contains(&problem.to_string()), "{problem} missing");
    }
}

#[tokio::test]
async fn warn_mode_admits_with_warnings() {
    let cfg = WebhookConfig {
        on_invalid: OnInvalid::Warn,
        ..WebhookConfig::default()
    };
    let t = TestServer::start(cfg.clone()).await;
    let object = every_problem();
    let MutateError::Invalid(invalid) = mutate(&object, &cfg).expect_err("the fixture is invalid")
    else {
        panic!("invalid annotations expected")
    };
    let body = serde_json::to_vec(&review(&object, "CREATE", false, "warn-1")).unwrap();
    let reply = t.client().await.post("/mutate", body).await.unwrap();
    let response = response_of(&reply);
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none(), "admitted untouched");
    let warnings: Vec<String> = response["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w.as_str().map(str::to_string))
        .collect();
    for problem in &invalid.problems {
        let p = problem.to_string();
        assert!(
            warnings.iter().any(|w| w.contains(&p)),
            "{p} not in {warnings:?}"
        );
    }
    let warned = t
        .metric("llm_autoscale_admission_requests_total{route=\"mutate\",decision=\"warned\"}")
        .await;
    assert_eq!(warned, Some(1.0));
}

fn scaled_object(query: &str) -> Value {
    json!({
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "qwen", "namespace": "llm"},
        "spec": {
            "scaleTargetRef": {"name": "qwen"},
            "minReplicaCount": 1,
            "maxReplicaCount": 4,
            "triggers": [{
                "type": "external",
                "name": "queue",
                "metadata": {
                    "scalerAddress": "keda-otel-scaler.keda.svc:4318",
                    "metricQuery": query,
                    "targetValue": "5"
                }
            }]
        }
    })
}

#[tokio::test]
async fn validate_accepts_colons_and_points_at_the_error() {
    let t = TestServer::start(WebhookConfig::default()).await;
    let mut client = t.client().await;

    let good = scaled_object("sum(vllm:num_requests_running{model_name=x})");
    let body = serde_json::to_vec(&review(&good, "CREATE", false, "so-ok")).unwrap();
    let response = response_of(&client.post("/validate", body).await.unwrap());
    assert_eq!(response["uid"], "so-ok");
    assert_eq!(response["allowed"], true, "{response}");

    let bad_query = "sum(vllm:x{a!=b})";
    let expected = parse_addon_query(bad_query).expect_err("!= is refused");
    let bad = scaled_object(bad_query);
    let body = serde_json::to_vec(&review(&bad, "UPDATE", false, "so-bad")).unwrap();
    let response = response_of(&client.post("/validate", body).await.unwrap());
    assert_eq!(response["uid"], "so-bad");
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("column {}", expected.column)),
        "{message}"
    );
    assert!(message.contains(&expected.to_string()), "{message}");
}
