//! Golden tests: every manifest in tests/fixtures/input goes through `mutate` and must equal
//! tests/fixtures/golden/<name>.yaml (warnings in <name>.warnings). Run with
//! `UPDATE_GOLDEN=1 cargo test --test golden` to rewrite them, then review the diff by eye.
//!
//! Each output is also run through `mutate` again (it must not change), and every
//! ScaledObject in it is validated against KEDA's CRD schema, every InterceptorRoute against
//! the KEDA HTTP add-on's, with unknown fields refused.

#[path = "support/keda_schema.rs"]
mod keda_schema;

use std::path::{Path, PathBuf};

use llm_autoscale_webhook::config::WebhookConfig;
use llm_autoscale_webhook::keda::trigger::KnownScalers;
use llm_autoscale_webhook::keda::{ScaledObject, rules};
use llm_autoscale_webhook::manifest::{ManifestError, mutate_manifest, parse_documents};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some()
}

fn check_golden(path: &Path, actual: &str) {
    if updating() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "missing golden file {} (run with UPDATE_GOLDEN=1)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the output.\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

fn inputs(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

#[test]
fn mutations_match_golden_files_and_are_idempotent_and_keda_valid() {
    let cfg = WebhookConfig::default();
    let schema = keda_schema::ScaledObjectSchema::load();
    let route_schema = keda_schema::InterceptorRouteSchema::load();
    let mut routes = 0;
    let mut checked = 0;
    for input in inputs("input") {
        let name = input.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&input).unwrap();
        let out = mutate_manifest(&text, &cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_golden(&fixtures().join(format!("golden/{name}.yaml")), &out.yaml);
        check_golden(
            &fixtures().join(format!("golden/{name}.warnings")),
            &out.warnings
                .iter()
                .map(|w| format!("{w}\n"))
                .collect::<String>(),
        );

        let again = mutate_manifest(&out.yaml, &cfg).unwrap();
        assert_eq!(
            again.yaml, out.yaml,
            "{name}: a second mutate changed the output"
        );

        for doc in parse_documents(&out.yaml).unwrap() {
            if doc["kind"] == "ScaledObject" {
                let errors = schema.errors(&doc);
                assert!(
                    errors.is_empty(),
                    "{name}: ScaledObject fails the KEDA CRD schema: {errors:#?}"
                );
                // The strict layer: KEDA's rules for the configured version and the add-on's.
                let typed: ScaledObject = serde_json::from_value(doc.clone()).unwrap();
                assert_eq!(
                    serde_json::to_value(&typed).unwrap(),
                    doc,
                    "{name}: the typed model drops a field"
                );
                let problems = rules::check(&typed, &KnownScalers::of(&cfg), cfg.keda_version);
                assert!(
                    problems.is_empty(),
                    "{name}: rendered ScaledObject breaks a rule: {problems:#?}"
                );
                checked += 1;
            }
            if doc["kind"] == "InterceptorRoute" {
                routes += 1;
                let errors = route_schema.errors(&doc);
                assert!(
                    errors.is_empty(),
                    "{name}: InterceptorRoute fails the HTTP add-on's CRD schema: {errors:#?}"
                );
            }
        }
    }
    assert!(routes > 0, "no golden case renders an InterceptorRoute");
    assert!(checked >= 10, "only {checked} ScaledObjects checked");
}

/// `builtin` as the cluster default (`--default-backend builtin`): a workload with only the
/// opt-in gets the built-in scaler's sidecar and trigger.
#[test]
fn the_builtin_backend_as_the_cluster_default() {
    let cfg = WebhookConfig {
        default_backend: llm_autoscale_webhook::annotations::Backend::Builtin,
        ..WebhookConfig::default()
    };
    let schema = keda_schema::ScaledObjectSchema::load();
    let text = std::fs::read_to_string(fixtures().join("input/vllm-minimal.yaml")).unwrap();
    let out = mutate_manifest(&text, &cfg).unwrap();
    check_golden(
        &fixtures().join("golden/default-backend-builtin/vllm-minimal.yaml"),
        &out.yaml,
    );
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    assert_eq!(mutate_manifest(&out.yaml, &cfg).unwrap().yaml, out.yaml);
    let so = parse_documents(&out.yaml)
        .unwrap()
        .into_iter()
        .find(|d| d["kind"] == "ScaledObject")
        .unwrap();
    assert!(schema.errors(&so).is_empty());
    let typed: ScaledObject = serde_json::from_value(so).unwrap();
    assert!(rules::check(&typed, &KnownScalers::of(&cfg), cfg.keda_version).is_empty());
    assert_eq!(
        typed.spec.triggers[0].meta("scalerAddress"),
        Some(cfg.builtin_scaler_address.as_str())
    );
}

#[test]
fn invalid_manifests_list_every_problem() {
    let cfg = WebhookConfig::default();
    for input in inputs("invalid") {
        let name = input.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&input).unwrap();
        match mutate_manifest(&text, &cfg) {
            Err(e @ ManifestError::Invalid { .. }) => {
                check_golden(
                    &fixtures().join(format!("invalid/{name}.err")),
                    &format!("{e}\n"),
                );
            }
            other => panic!("{name}: expected invalid annotations, got {other:?}"),
        }
    }
}

#[test]
fn real_kserve_manifests_without_our_annotations_are_untouched() {
    let cfg = WebhookConfig::default();
    for input in inputs("kserve") {
        let text = std::fs::read_to_string(&input).unwrap();
        let out = mutate_manifest(&text, &cfg).unwrap();
        assert_eq!(
            parse_documents(&out.yaml).unwrap(),
            parse_documents(&text).unwrap(),
            "{}",
            input.display()
        );
        assert!(out.warnings.is_empty());
    }
}

#[test]
fn the_schema_check_can_fail() {
    let schema = keda_schema::ScaledObjectSchema::load();
    let mut so = serde_json::json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "x"}, "triggers": [{"type": "external", "metadata": {"a": "b"}}]}
    });
    assert!(schema.errors(&so).is_empty());
    so["spec"]["pollingIntervall"] = 5.into();
    assert!(
        !schema.errors(&so).is_empty(),
        "unknown fields must be refused"
    );
    so["spec"]
        .as_object_mut()
        .unwrap()
        .remove("pollingIntervall");
    so["spec"]["triggers"][0]["metadata"]["a"] = 5.into();
    assert!(
        !schema.errors(&so).is_empty(),
        "metadata values must be strings"
    );
}

#[test]
fn the_interceptor_route_schema_check_can_fail() {
    let schema = keda_schema::InterceptorRouteSchema::load();
    let mut route = serde_json::json!({
        "apiVersion": "http.keda.sh/v1beta1", "kind": "InterceptorRoute",
        "metadata": {"name": "x"},
        "spec": {
            "target": {"service": "x", "port": 8000},
            "rules": [{"hosts": ["x.example.com"], "paths": [{"value": "/v1"}]}],
            "scalingMetric": {"concurrency": {"targetValue": 100}}
        }
    });
    assert!(schema.errors(&route).is_empty());
    route["spec"]["scaleTargetRef"] = serde_json::json!({"name": "x"});
    assert!(
        !schema.errors(&route).is_empty(),
        "unknown fields must be refused"
    );
    route["spec"]
        .as_object_mut()
        .unwrap()
        .remove("scaleTargetRef");
    route["spec"]["target"]["port"] = 70000.into();
    assert!(!schema.errors(&route).is_empty(), "ports stop at 65535");
}

/// The ScaledObject `manifest` renders from tests/fixtures/input/`name`.yaml.
fn rendered_scaled_object(name: &str) -> ScaledObject {
    let text =
        std::fs::read_to_string(fixtures().join("input").join(format!("{name}.yaml"))).unwrap();
    let out = mutate_manifest(&text, &WebhookConfig::default()).unwrap();
    let doc = parse_documents(&out.yaml)
        .unwrap()
        .into_iter()
        .find(|d| d["kind"] == "ScaledObject")
        .unwrap();
    serde_json::from_value(doc).unwrap()
}

/// Dynamo's ScaledObject (tests/fixtures/dynamo/, from its metrics-keda scaler's README) from
/// annotations, field by field. Deliberate differences: the trigger is `external-push` (the
/// scaler implements StreamIsActive; `scaler-push: "false"` gives `external`), metricType is
/// written out (KEDA's default, AverageValue), and pollingInterval/cooldownPeriod are left out:
/// at minReplicaCount 1 KEDA does not use them for scaling (kedacore/keda v2.21.0
/// `IsPollingIntervalRelevant`), so the webhook refuses them.
#[test]
fn dynamo_external_scaler_from_annotations() {
    let text =
        std::fs::read_to_string(fixtures().join("dynamo/keda-external-scaler-scaledobject.yaml"))
            .unwrap();
    let theirs: ScaledObject =
        serde_json::from_value(parse_documents(&text).unwrap().remove(0)).unwrap();
    let ours = rendered_scaled_object("dynamo-external-push");
    assert_eq!(
        ours.spec.scale_target_ref.name,
        theirs.spec.scale_target_ref.name
    );
    assert_eq!(
        (ours.spec.min_replica_count, ours.spec.max_replica_count),
        (theirs.spec.min_replica_count, theirs.spec.max_replica_count)
    );
    assert_eq!(ours.spec.triggers.len(), 1);
    assert_eq!(
        ours.spec.triggers[0].metadata,
        theirs.spec.triggers[0].metadata
    );
    assert_eq!(ours.spec.triggers[0].kind.as_str(), "external-push");
    assert_eq!(theirs.spec.triggers[0].kind.as_str(), "external");
    assert_eq!(
        ours.spec.triggers[0].effective_metric_type(),
        theirs.spec.triggers[0].effective_metric_type()
    );
    assert_eq!(
        (theirs.spec.polling_interval, theirs.spec.cooldown_period),
        (Some(15), Some(30))
    );
    assert_eq!(
        (ours.spec.polling_interval, ours.spec.cooldown_period),
        (None, None)
    );
    assert!(ours.spec.fallback.is_none() && ours.spec.advanced.is_none());
}

/// The llm-d WVA ScaledObjects (tests/fixtures/wva/, from its integration documents) from
/// annotations, field by field. Deliberate differences: the name is the Deployment's (the
/// documents add `-scaler`) and the labels are ours; minReplicaCount is written out (0, KEDA's
/// default); `metricType` is on the trigger, where KEDA reads it (the documents put it in
/// `metadata`, where the prometheus scaler ignores it: kedacore/keda
/// pkg/scalers/prometheus_scaler.go `prometheusMetadata`); the query is on one line; and
/// `ignoreNullValues: "false"`, so that a dead WVA controller (its series gone) falls back
/// instead of reading 0 and taking the variant to zero.
#[test]
fn wva_scaled_objects_from_annotations() {
    for (input, document) in [
        (
            "wva-inferno-desired-replicas",
            "keda-scaled-object-vllme-inferno.yaml",
        ),
        ("wva-desired-replicas", "keda-scaled-object-vllme.yaml"),
    ] {
        let text = std::fs::read_to_string(fixtures().join("wva").join(document)).unwrap();
        let theirs: ScaledObject =
            serde_json::from_value(parse_documents(&text).unwrap().remove(0)).unwrap();
        let ours = rendered_scaled_object(input);
        let (o, t) = (&ours.spec, &theirs.spec);
        assert_eq!(o.scale_target_ref.name, t.scale_target_ref.name, "{input}");
        assert_eq!(
            (
                o.polling_interval,
                o.cooldown_period,
                o.initial_cooldown_period
            ),
            (
                t.polling_interval,
                t.cooldown_period,
                t.initial_cooldown_period
            ),
            "{input}"
        );
        assert_eq!(
            (o.min_replica_count, t.min_replica_count),
            (Some(0), None),
            "{input}"
        );
        assert_eq!(o.max_replica_count, t.max_replica_count, "{input}");
        assert_eq!(o.fallback, t.fallback, "{input}");
        assert_eq!(o.advanced, t.advanced, "{input}");
        let (ot, tt) = (&o.triggers[0], &t.triggers[0]);
        assert_eq!(
            (o.triggers.len(), &ot.kind, &ot.name),
            (1, &tt.kind, &tt.name),
            "{input}"
        );
        let squeeze =
            |q: Option<&str>| q.unwrap_or_default().split_whitespace().collect::<String>();
        assert_eq!(
            squeeze(ot.meta("query")),
            squeeze(tt.meta("query")),
            "{input}"
        );
        assert_eq!(
            ot.metric_type.as_ref().map(|m| m.as_str()),
            tt.meta("metricType"),
            "{input}"
        );
        let without = |t: &llm_autoscale_webhook::keda::Trigger, drop: &[&str]| {
            let mut m = t.metadata.clone();
            m.retain(|k, _| !drop.contains(&k.as_str()));
            m
        };
        assert_eq!(
            without(ot, &["query", "ignoreNullValues"]),
            without(tt, &["query", "metricType"]),
            "{input}"
        );
        assert_eq!(ot.meta("ignoreNullValues"), Some("false"));
    }
}

/// `--builtin-scaler-tls`: the built-in scaler's sidecar reads the scaler's CA from its
/// namespace's Secret and its exporter verifies the scaler with it; the triggers set KEDA's
/// `enableTLS`. The sidecar differs from the plain one only there (a new hash only with the
/// setting on), and the ScaledObject only in `enableTLS`.
#[test]
fn the_builtin_backend_over_tls() {
    let plain_cfg = WebhookConfig::default();
    let cfg = WebhookConfig {
        builtin_scaler_tls: true,
        ..WebhookConfig::default()
    };
    let schema = keda_schema::ScaledObjectSchema::load();
    let text = std::fs::read_to_string(fixtures().join("input/vllm-builtin.yaml")).unwrap();
    let out = mutate_manifest(&text, &cfg).unwrap();
    check_golden(
        &fixtures().join("golden/builtin-scaler-tls/vllm-builtin.yaml"),
        &out.yaml,
    );
    assert_eq!(mutate_manifest(&out.yaml, &cfg).unwrap().yaml, out.yaml);
    let plain = mutate_manifest(&text, &plain_cfg).unwrap();
    let docs = |yaml: &str| parse_documents(yaml).unwrap();
    let (tls_docs, plain_docs) = (docs(&out.yaml), docs(&plain.yaml));
    let so = tls_docs
        .iter()
        .find(|d| d["kind"] == "ScaledObject")
        .unwrap();
    assert!(schema.errors(so).is_empty());
    let typed: ScaledObject = serde_json::from_value(so.clone()).unwrap();
    assert!(rules::check(&typed, &KnownScalers::of(&cfg), cfg.keda_version).is_empty());
    let plain_so = plain_docs
        .iter()
        .find(|d| d["kind"] == "ScaledObject")
        .unwrap();
    for (t, p) in typed.spec.triggers.iter().zip(
        serde_json::from_value::<ScaledObject>(plain_so.clone())
            .unwrap()
            .spec
            .triggers,
    ) {
        assert_eq!(t.meta("enableTLS"), Some("true"), "{so}");
        let mut without = t.metadata.clone();
        without.remove("enableTLS");
        assert_eq!(without, p.metadata);
    }
    let sidecar = |d: &serde_json::Value| {
        d["spec"]["template"]["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "llm-autoscale-collector")
            .unwrap()
            .clone()
    };
    let (tls_sidecar, plain_sidecar) = (
        sidecar(tls_docs.iter().find(|d| d["kind"] == "Deployment").unwrap()),
        sidecar(
            plain_docs
                .iter()
                .find(|d| d["kind"] == "Deployment")
                .unwrap(),
        ),
    );
    let env = |c: &serde_json::Value| c["env"].as_array().unwrap().clone();
    let ca = env(&tls_sidecar)
        .into_iter()
        .find(|e| e["name"] == "LLM_AUTOSCALE_SCALER_CA")
        .expect("the CA's variable");
    assert_eq!(
        ca["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "llm-autoscale-scaler-token", "key": "ca.crt", "optional": false})
    );
    let config = |c: &serde_json::Value| -> serde_json::Value {
        let text = env(c)
            .into_iter()
            .find(|e| e["name"] == "LLM_AUTOSCALE_COLLECTOR_CONFIG")
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string();
        serde_yaml_ng::from_str(&text).unwrap()
    };
    let (mut tls_config, plain_config) = (config(&tls_sidecar), config(&plain_sidecar));
    assert_eq!(
        tls_config["exporters"]["otlp_grpc/keda"]["tls"],
        serde_json::json!({"insecure": false, "ca_pem": "${env:LLM_AUTOSCALE_SCALER_CA}"})
    );
    tls_config["exporters"]["otlp_grpc/keda"]["tls"] = serde_json::json!({"insecure": true});
    assert_eq!(tls_config, plain_config);
}
