//! Property tests: mutation is idempotent and never loses or reorders a user's field, for
//! generated Deployments and annotation sets; parsers never panic on arbitrary input.

use llm_autoscale_webhook::annotations::values;
use llm_autoscale_webhook::config::WebhookConfig;
use llm_autoscale_webhook::keda::rules;
use llm_autoscale_webhook::keda::trigger::KnownScalers;
use llm_autoscale_webhook::mutate::mutate;
use llm_autoscale_webhook::query::{self, check_promql, parse_addon_query};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,20}[a-z0-9]"
}

fn container() -> impl Strategy<Value = Value> {
    (
        name(),
        prop::option::of(1u16..9000),
        prop::option::of("[a-z]{1,8}"),
        any::<bool>(),
    )
        .prop_map(|(name, port, env, probe)| {
            let mut c = json!({"name": name, "image": format!("registry.example/{name}:v1")});
            if let Some(p) = port {
                c["ports"] = json!([{"containerPort": p}]);
            }
            if let Some(e) = env {
                c["env"] = json!([{"name": "X", "value": e}]);
            }
            if probe {
                c["readinessProbe"] = json!({"httpGet": {"path": "/health", "port": 8000}});
            }
            c
        })
}

fn annotation_set() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop::sample::select(vec![
        "backend",
        "preset",
        "metric",
        "target",
        "min-replicas",
        "max-replicas",
        "sidecar",
        "metrics-port",
        "scrape-interval",
        "fallback-replicas",
        "scale-down-stabilization",
        "query",
        "cooldown-period",
    ]);
    let value = prop::sample::select(vec![
        "otel",
        "prometheus",
        "kv-cache",
        "queue-depth",
        "vllm:num_requests_running",
        "0",
        "1",
        "3",
        "0.5",
        "native",
        "container",
        "none",
        "9000",
        "10s",
        "5m",
        "sum(vllm:num_requests_waiting{model_name=x})",
        "600m",
        "bogus",
    ]);
    prop::collection::vec((key, value), 0..6).prop_map(|v| {
        v.into_iter()
            .map(|(k, v)| (format!("llm-autoscale.io/{k}"), v.to_string()))
            .collect()
    })
}

fn deployment() -> impl Strategy<Value = Value> {
    (
        name(),
        name(),
        prop::collection::vec(container(), 1..4),
        prop::collection::vec(container(), 0..2),
        annotation_set(),
        any::<bool>(),
        any::<bool>(),
        prop::collection::btree_map("[a-z]{1,6}", "[a-z0-9]{0,6}", 0..3),
    )
        .prop_map(
            |(name, ns, containers, inits, annotations, on_template, enabled, labels)| {
                let mut ann = Map::new();
                if enabled {
                    ann.insert("llm-autoscale.io/enabled".into(), "true".into());
                }
                for (k, v) in annotations {
                    ann.insert(k, Value::String(v));
                }
                ann.entry("llm-autoscale.io/max-replicas")
                    .or_insert("4".into());
                let mut d = json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": ns, "labels": labels},
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": {"app": "x"}},
                        "template": {
                            "metadata": {"labels": {"app": "x"}},
                            "spec": {"containers": containers, "terminationGracePeriodSeconds": 30}
                        }
                    }
                });
                if !inits.is_empty() {
                    d["spec"]["template"]["spec"]["initContainers"] = Value::Array(inits);
                }
                if on_template {
                    d["spec"]["template"]["metadata"]["annotations"] = Value::Object(ann);
                } else {
                    d["metadata"]["annotations"] = Value::Object(ann);
                }
                d
            },
        )
}

/// Every leaf of `original` is in `mutated` at the same path, and the keys of every object
/// keep their relative order.
fn assert_nothing_lost(original: &Value, mutated: &Value, path: &str) {
    match (original, mutated) {
        (Value::Object(a), Value::Object(b)) => {
            let order: Vec<&String> = b.keys().filter(|k| a.contains_key(*k)).collect();
            let expected: Vec<&String> = a.keys().collect();
            assert_eq!(order, expected, "key order changed at {path}");
            for (k, v) in a {
                let Some(w) = b.get(k) else {
                    panic!("{path}/{k} was dropped")
                };
                assert_nothing_lost(v, w, &format!("{path}/{k}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert!(b.len() >= a.len(), "{path}: list shrank");
            for (i, v) in a.iter().enumerate() {
                assert_nothing_lost(v, &b[i], &format!("{path}/{i}"));
            }
        }
        (a, b) => assert_eq!(a, b, "{path} changed"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn mutation_is_idempotent(d in deployment()) {
        let cfg = WebhookConfig::default();
        if let Ok(first) = mutate(&d, &cfg) {
            let second = mutate(&first.patched, &cfg).expect("a mutated object stays valid");
            prop_assert!(second.patch.0.is_empty(), "second patch: {:?}", second.patch);
            prop_assert_eq!(&second.patched, &first.patched);
            prop_assert_eq!(second.scaled_object, first.scaled_object);
            // The patch really turns the input into the output.
            let mut applied = d.clone();
            json_patch::patch(&mut applied, &first.patch).unwrap();
            prop_assert_eq!(applied, first.patched);
        }
    }

    #[test]
    fn no_user_field_is_lost_or_reordered(d in deployment()) {
        if let Ok(m) = mutate(&d, &WebhookConfig::default()) {
            assert_nothing_lost(&d, &m.patched, "");
        }
    }

    #[test]
    fn opting_out_restores_the_original(d in deployment()) {
        let cfg = WebhookConfig::default();
        if let Ok(m) = mutate(&d, &cfg) {
            let mut opted_out = m.patched.clone();
            for p in ["/metadata/annotations", "/spec/template/metadata/annotations"] {
                if let Some(a) = opted_out.pointer_mut(p).and_then(Value::as_object_mut) {
                    a.remove("llm-autoscale.io/enabled");
                }
            }
            let mut expected = d.clone();
            for p in ["/metadata/annotations", "/spec/template/metadata/annotations"] {
                if let Some(a) = expected.pointer_mut(p).and_then(Value::as_object_mut) {
                    a.remove("llm-autoscale.io/enabled");
                }
            }
            // The managed label goes with the opt-in, and with it a labels map it leaves
            // empty: to the apiserver an empty map and none are the same object.
            let without_empty_labels = |mut v: Value| {
                if v.pointer("/metadata/labels").and_then(Value::as_object).is_some_and(Map::is_empty) {
                    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.remove("labels");
                    }
                }
                v
            };
            let stripped = mutate(&opted_out, &cfg).unwrap();
            prop_assert_eq!(
                without_empty_labels(stripped.patched),
                without_empty_labels(expected)
            );
            prop_assert!(stripped.scaled_object.is_none());
        }
    }

    /// Valid configurations on objects with arbitrary unicode names, namespaces and label
    /// values (a mutating webhook sees them before the apiserver validates them): every case
    /// injects, names stay within KEDA's limits, and a second pass changes nothing.
    #[test]
    fn valid_configurations_always_inject(
        name in prop_oneof!["\\PC{1,80}", "[a-z0-9]([-a-z0-9.]{0,90}[a-z0-9])?"],
        ns in prop_oneof!["\\PC{1,40}", "[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?"],
        label in "\\PC{0,40}",
        annotations in valid_annotation_set(),
    ) {
        let cfg = WebhookConfig::default();
        let mut ann = Map::new();
        for (k, v) in annotations {
            ann.insert(format!("llm-autoscale.io/{k}"), Value::String(v));
        }
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": {"team": label}, "annotations": ann},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0"}]}}}
        });
        let m = match mutate(&d, &cfg) {
            Ok(m) => m,
            // The only refusal allowed: a name the KEDA OTel add-on's query cannot carry
            // (kedify/otel-add-on metric/simple_parser.go splits on `,` and `=`).
            Err(e) => {
                let why = e.to_string();
                let unmatchable = !query::is_matchable_value(&name) || !query::is_matchable_value(&ns);
                prop_assert!(unmatchable && why.contains("cannot match a label value"), "{}", why);
                prop_assert!(!why.contains("llm-autoscale.io/"), "only the name is refused: {}", why);
                return Ok(());
            }
        };
        let so = m.scaled_object.as_ref().expect("a ScaledObject");
        prop_assert!(so.name().len() <= 63, "{}", so.name());
        // Names the apiserver stores (it refuses the others after admission, before anything
        // is rendered into the cluster) give ScaledObjects that pass the strict rules.
        if is_k8s_name(&name) && is_k8s_name(&ns) {
            let problems = rules::check(so, &KnownScalers::of(&cfg), cfg.keda_version);
            prop_assert!(problems.is_empty(), "{:?}", problems);
        }
        let template = &m.patched["spec"]["template"];
        prop_assert!(template["metadata"]["annotations"]["llm-autoscale.io/status"].is_string());
        let again = mutate(&m.patched, &cfg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(again.patch.0.is_empty(), "second patch: {:?}", again.patch);
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,64}") {
        let _ = parse_addon_query(&s);
        let _ = check_promql(&s);
        let _ = values::decimal(&s);
        let _ = values::seconds(&s);
        let _ = values::count(&s);
        let _ = values::grpc_address(&s);
        let _ = values::http_url(&s);
    }

    #[test]
    fn query_grammar_never_panics_on_near_misses(
        s in prop::collection::vec(prop::sample::select(vec![
            "sum", "(", ")", "{", "}", "vllm:x", "a", "=", "!=", "=~", ",", "\"v\"", " ", "b", "+",
        ]), 0..12)
    ) {
        let q: String = s.concat();
        if let Ok(parsed) = parse_addon_query(&q) {
            // The canonical form parses back to the same query.
            prop_assert_eq!(parse_addon_query(&parsed.to_string()).unwrap(), parsed);
        }
    }

    #[test]
    fn mutate_never_panics_on_arbitrary_json(v in arbitrary_json()) {
        let _ = mutate(&v, &WebhookConfig::default());
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "annotations": {"llm-autoscale.io/enabled": "true", "llm-autoscale.io/max-replicas": "2"}}});
        d["spec"] = v;
        let _ = mutate(&d, &WebhookConfig::default());
    }
}

/// A name the apiserver accepts for a Deployment or namespace (lowercase RFC 1123).
fn is_k8s_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !s.starts_with(['-', '.'])
        && !s.ends_with(['-', '.'])
}

/// Annotation sets that are valid by construction.
fn valid_annotation_set() -> impl Strategy<Value = Vec<(String, String)>> {
    (
        prop::sample::select(vec![
            "queue-depth",
            "kv-cache",
            "running-requests",
            "token-throughput",
        ]),
        prop::option::of(prop::sample::select(vec!["1", "2.5", "0.75", "10"])),
        1u32..8,
        prop::sample::select(vec!["native", "container", "auto"]),
        prop::option::of(prop::sample::select(vec!["5s", "30s", "1m"])),
        prop::option::of(prop::sample::select(vec!["9000", "8080"])),
    )
        .prop_map(|(preset, target, max, sidecar, interval, port)| {
            let mut v = vec![
                ("enabled".to_string(), "true".to_string()),
                ("max-replicas".to_string(), max.to_string()),
                ("preset".to_string(), preset.to_string()),
                ("sidecar".to_string(), sidecar.to_string()),
            ];
            let optional = [
                ("target", target),
                ("scrape-interval", interval),
                ("metrics-port", port),
            ];
            for (k, value) in optional {
                if let Some(value) = value {
                    v.push((k.to_string(), value.to_string()));
                }
            }
            v
        })
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-z:]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "template",
                    "spec",
                    "metadata",
                    "annotations",
                    "containers",
                    "initContainers",
                    "name",
                    "x"
                ]),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}
