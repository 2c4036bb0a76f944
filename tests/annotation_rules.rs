//! One test per annotation rule: what is accepted, what is refused and how it is said.

use std::collections::BTreeMap;

use llm_autoscale_webhook::annotations::{self, AutoscalingSpec, Backend, TriggerQuery};
use llm_autoscale_webhook::config::{SidecarMode, WebhookConfig};
use llm_autoscale_webhook::mutate::mutate;
use llm_autoscale_webhook::problem::Invalid;
use llm_autoscale_webhook::version::Version;
use llm_autoscale_webhook::workload::{Workload, WorkloadKind};
use serde_json::{Value, json};

fn deployment(annotations: &[(&str, &str)]) -> Value {
    let ann: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (format!("llm-autoscale.io/{k}"), v.to_string()))
        .collect();
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "llama", "namespace": "llm", "annotations": ann},
        "spec": {"selector": {"matchLabels": {"app": "llama"}}, "template": {
            "metadata": {"labels": {"app": "llama"}},
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0",
                                     "ports": [{"containerPort": 8000}]}]}}}
    })
}

fn parse_with(
    annotations: &[(&str, &str)],
    cfg: &WebhookConfig,
) -> Result<(Option<AutoscalingSpec>, Vec<String>), Invalid> {
    let w = Workload::from_object(WorkloadKind::Deployment, &deployment(annotations));
    annotations::parse(&w, cfg)
}

fn spec(annotations: &[(&str, &str)]) -> (AutoscalingSpec, Vec<String>) {
    let mut all = vec![("enabled", "true"), ("max-replicas", "4")];
    all.extend_from_slice(annotations);
    let (s, w) = parse_with(&all, &WebhookConfig::default()).unwrap_or_else(|e| panic!("{e}"));
    (s.expect("opted in"), w)
}

/// Every problem as text, for the given annotations (with the opt-in and max-replicas added
/// unless overridden).
fn problems(annotations: &[(&str, &str)]) -> Vec<String> {
    let mut all: Vec<(&str, &str)> = vec![("enabled", "true")];
    if !annotations.iter().any(|(k, _)| *k == "max-replicas") {
        all.push(("max-replicas", "4"));
    }
    all.extend_from_slice(annotations);
    match parse_with(&all, &WebhookConfig::default()) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

fn only_problem(annotations: &[(&str, &str)]) -> String {
    let p = problems(annotations);
    assert_eq!(p.len(), 1, "{p:#?}");
    p[0].clone()
}

fn otel_query(s: &AutoscalingSpec, i: usize) -> String {
    match &s.triggers[i].query {
        TriggerQuery::Otel(q) => q.to_string(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn without_the_opt_in_nothing_happens() {
    let cfg = WebhookConfig::default();
    assert_eq!(parse_with(&[], &cfg).unwrap().0, None);
    assert_eq!(
        parse_with(&[("enabled", "false"), ("target", "nonsense")], &cfg)
            .unwrap()
            .0,
        None
    );
    let d = deployment(&[("max-replicas", "4")]);
    let m = mutate(&d, &cfg).unwrap();
    assert!(m.patch.0.is_empty());
    assert!(m.scaled_object.is_none());
}

#[test]
fn enabled_must_be_a_boolean() {
    let p = only_problem(&[("enabled", "yes")]);
    assert!(p.starts_with("llm-autoscale.io/enabled: \"yes\""), "{p}");
}

#[test]
fn defaults_are_the_queue_depth_preset_over_otel() {
    let (s, warnings) = spec(&[]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(s.backend, Backend::Otel);
    assert_eq!((s.min_replicas, s.max_replicas), (1, 4));
    assert_eq!(s.sidecar, SidecarMode::Native);
    assert_eq!(s.scrape.port, 8000);
    assert_eq!(s.scrape.path, "/metrics");
    assert_eq!(s.scrape.interval_seconds, 5);
    assert_eq!(s.scaler_address, "keda-otel-scaler.keda.svc:4318");
    assert_eq!(s.triggers.len(), 1);
    assert_eq!(s.triggers[0].name, "queue_depth");
    assert_eq!(s.triggers[0].target.as_deref(), Some("5"));
    assert_eq!(
        s.triggers[0].operation_over_time.map(|o| o.as_str()),
        Some("avg")
    );
    assert_eq!(
        otel_query(&s, 0),
        "sum(vllm:num_requests_waiting{deployment=llama,namespace=llm})"
    );
}

#[test]
fn max_replicas_is_required_and_at_least_one() {
    let p = problems(&[("max-replicas", "")]);
    assert!(p.iter().any(|p| p.contains("max-replicas")), "{p:?}");
    let mut all = vec![("enabled", "true")];
    all.push(("min-replicas", "1"));
    let e = parse_with(&all, &WebhookConfig::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("llm-autoscale.io/max-replicas: required"),
        "{e}"
    );
    assert!(only_problem(&[("max-replicas", "0")]).contains("at least 1"));
}

#[test]
fn replica_bounds() {
    assert!(
        only_problem(&[("min-replicas", "5"), ("max-replicas", "2")])
            .contains("greater than max-replicas (2)")
    );
    assert!(only_problem(&[("min-replicas", "-1")]).contains("not a whole number"));
    assert!(
        only_problem(&[("max-replicas", "2.5")])
            .contains("fix: write a whole number such as \"2\"")
    );
    let (s, _) = spec(&[("min-replicas", "0"), ROUTER_TRIGGER]);
    assert_eq!(s.min_replicas, 0);
}

#[test]
fn targets_are_plain_decimals() {
    let p = only_problem(&[("target", "600m")]);
    assert!(p.contains("llm-autoscale.io/target: \"600m\""), "{p}");
    assert!(p.contains("write \"0.6\""), "{p}");
    assert!(only_problem(&[("target", "0")]).contains("greater than 0"));
    assert!(only_problem(&[("target", "1e3")]).contains("not a plain decimal"));
    let (s, _) = spec(&[("target", ".5")]);
    assert_eq!(s.triggers[0].target.as_deref(), Some("0.5"));
    assert!(
        only_problem(&[("backend", "prometheus"), ("activation-target", "-1")])
            .contains("negative")
    );
}

#[test]
fn custom_metrics_need_a_target() {
    let p = only_problem(&[("metric", "vllm:e2e_request_latency_seconds_count")]);
    assert!(p.contains("llm-autoscale.io/target: required"), "{p}");
    let (s, _) = spec(&[("metric", "my_app:queue_length"), ("target", "3")]);
    assert_eq!(s.triggers[0].name, "my_app_queue_length");
    assert_eq!(
        otel_query(&s, 0),
        "sum(my_app:queue_length{deployment=llama,namespace=llm})"
    );
}

#[test]
fn metric_names_are_checked() {
    assert!(
        only_problem(&[("metric", "vllm num requests"), ("target", "1")])
            .contains("not a metric name")
    );
    assert!(
        only_problem(&[("metric", "vllm:x"), ("preset", "kv-cache")])
            .contains("set together with preset")
    );
    assert!(only_problem(&[("preset", "latency")]).contains("queue-depth, kv-cache"));
}

#[test]
fn presets() {
    let (s, _) = spec(&[("preset", "kv-cache")]);
    let t = &s.triggers[0];
    assert_eq!(
        (t.name.as_str(), t.target.as_deref(), t.metric_type.as_str()),
        ("kv_cache", Some("0.8"), "Value")
    );
    assert_eq!(
        otel_query(&s, 0),
        "avg(vllm:kv_cache_usage_perc{deployment=llama,namespace=llm})"
    );
    let (s, _) = spec(&[("preset", "token-throughput")]);
    assert_eq!(
        s.triggers[0].operation_over_time.map(|o| o.as_str()),
        Some("rate")
    );
    let (s, _) = spec(&[("preset", "running-requests"), ("target", "8")]);
    assert_eq!(s.triggers[0].target.as_deref(), Some("8"));
}

#[test]
fn queries_use_the_addon_grammar_with_positions() {
    let p = only_problem(&[("query", "sum(vllm:x{a!=b})")]);
    assert!(p.contains("column 13") && p.contains("`!=`"), "{p}");
    assert!(only_problem(&[("query", "sum(vllm:x{a=~\"b\"})")]).contains("regular-expression"));
    assert!(only_problem(&[("query", "sum(vllm:x")]).contains("missing `)`"));
    assert!(only_problem(&[("query", "sum(a) + sum(b)")]).contains("arithmetic"));
    let (s, _) = spec(&[
        (
            "query",
            "max(vllm:num_requests_running{model_name=\"llama\"})",
        ),
        ("target", "4"),
    ]);
    assert_eq!(
        otel_query(&s, 0),
        "max(vllm:num_requests_running{model_name=llama,deployment=llama,namespace=llm})"
    );
    assert_eq!(s.triggers[0].metric_type.as_str(), "Value");
}

#[test]
fn a_query_scoped_elsewhere_warns() {
    let (_, w) = spec(&[("query", "sum(vllm:num_requests_waiting{namespace=other})")]);
    assert!(w.iter().any(|w| w.contains("namespace=other")), "{w:?}");
}

#[test]
fn prometheus_backend_gets_a_scoped_promql_query() {
    let (s, _) = spec(&[("backend", "prometheus")]);
    assert_eq!(s.sidecar, SidecarMode::None);
    match &s.triggers[0].query {
        TriggerQuery::Prometheus(q) => assert_eq!(
            q,
            r#"sum(vllm:num_requests_waiting{namespace="llm",pod=~"llama-[a-z0-9]+-[a-z0-9]{5}"})"#
        ),
        other => panic!("{other:?}"),
    }
    let (s, _) = spec(&[("backend", "prometheus"), ("preset", "token-throughput")]);
    match &s.triggers[0].query {
        TriggerQuery::Prometheus(q) => assert!(
            q.starts_with("sum(rate(vllm:generation_tokens_total{"),
            "{q}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        only_problem(&[("backend", "prometheus"), ("query", "sum(x[1m)")])
            .contains("does not match")
    );
    assert!(
        only_problem(&[
            ("backend", "prometheus"),
            ("prometheus-address", "prometheus:9090")
        ])
        .contains("http://")
    );
}

#[test]
fn external_backend_needs_an_address_and_takes_metadata() {
    let p = only_problem(&[("backend", "external")]);
    assert!(p.contains("scaler-address: required"), "{p}");
    let (s, _) = spec(&[
        ("backend", "external"),
        ("scaler-address", "scaler.ns.svc:9090"),
        ("scaler-metadata", r#"{"model": "m", "slo": 2}"#),
    ]);
    match &s.triggers[0].query {
        TriggerQuery::External(m) => {
            assert_eq!(m["model"], "m");
            assert_eq!(m["slo"], "2");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        only_problem(&[
            ("backend", "external"),
            ("scaler-address", "x:1"),
            ("scaler-metadata", "[1]")
        ])
        .contains("not a JSON object")
    );
    let cfg = WebhookConfig {
        external_scaler_address: "dflt.svc:1".into(),
        ..WebhookConfig::default()
    };
    let (s, _) = parse_with(
        &[
            ("enabled", "true"),
            ("max-replicas", "2"),
            ("backend", "external"),
        ],
        &cfg,
    )
    .unwrap();
    assert_eq!(s.unwrap().scaler_address, "dflt.svc:1");
}

#[test]
fn unknown_backend_and_sidecar_modes() {
    assert!(only_problem(&[("backend", "otle")]).contains("unknown backend"));
    assert!(only_problem(&[("sidecar", "yes")]).contains("unknown sidecar mode"));
    let (s, _) = spec(&[("sidecar", "container")]);
    assert_eq!(s.sidecar, SidecarMode::Container);
    let cfg = WebhookConfig {
        native_sidecars: false,
        ..WebhookConfig::default()
    };
    let (s, _) = parse_with(&[("enabled", "true"), ("max-replicas", "2")], &cfg).unwrap();
    assert_eq!(s.unwrap().sidecar, SidecarMode::Container);
    // A key the backend never reads is refused, not ignored (the keys table says who reads
    // what).
    let p = only_problem(&[("backend", "prometheus"), ("sidecar", "native")]);
    assert!(p.contains("the prometheus backend never reads it"), "{p}");
    assert!(p.contains("read by the otel and builtin backends"), "{p}");
}

#[test]
fn keys_a_backend_never_reads_are_refused_in_annotations_and_trigger_entries() {
    for (backend, k, v) in [
        ("prometheus", "scaler-address", "a.b:1"),
        ("prometheus", "operation-over-time", "rate"),
        ("prometheus", "metrics-port", "8000"),
        ("otel", "prometheus-address", "http://p:9090"),
        ("otel", "scaler-metadata", "{}"),
        ("external", "metric", "vllm:num_requests_running"),
        ("external", "vllm-version", "0.11.0"),
    ] {
        let mut a = vec![("backend", backend), (k, v)];
        if backend == "external" {
            a.push(("scaler-address", "s.n:9090"));
        }
        let p = only_problem(&a);
        assert!(p.contains(&format!("llm-autoscale.io/{k}")), "{p}");
        assert!(
            p.contains("never reads it") && p.contains("fix: remove it"),
            "{p}"
        );
    }
    let p = only_problem(&[("activation-target", "1")]);
    assert!(p.contains("never reads an activation target"), "{p}");
    let p = only_problem(&[
        ("backend", "prometheus"),
        (
            "triggers",
            r#"[{"preset":"queue-depth","operationOverTime":"rate"}]"#,
        ),
    ]);
    assert!(p.contains("triggers[0].operation-over-time"), "{p}");
}

#[test]
fn every_triggers_entry_is_checked_not_only_the_first() {
    let p = problems(&[(
        "triggers",
        r#"[{"preset":"queue-depth","colour":"red"},{"preset":"kv-cache","target":{"x":1}},{"preset":"nope"}]"#,
    )]);
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(
        p[0].contains("triggers[0]") && p[0].contains("unknown field `colour`"),
        "{p:#?}"
    );
    assert!(
        p[1].contains("triggers[1]") && p[1].contains("not a string"),
        "{p:#?}"
    );
    assert!(
        p[2].contains("triggers[2].preset") && p[2].contains("unknown preset"),
        "{p:#?}"
    );
}

#[test]
fn unknown_keys_suggest_the_right_one() {
    let p = only_problem(&[("max-replica", "4")]);
    assert!(
        p.contains("did you mean llm-autoscale.io/max-replicas?"),
        "{p}"
    );
}

#[test]
fn addresses_ports_paths_durations() {
    assert!(only_problem(&[("scaler-address", "http://x:1")]).contains("scheme"));
    assert!(only_problem(&[("metrics-port", "99999")]).contains("not a port"));
    assert!(only_problem(&[("metrics-path", "metrics")]).contains("must start with /"));
    assert!(only_problem(&[("scrape-interval", "fast")]).contains("not a duration"));
    assert!(only_problem(&[("scale-down-stabilization", "2h")]).contains("at most 3600"));
    let (s, _) = spec(&[
        ("scrape-interval", "1m30s"),
        ("scale-down-stabilization", "15m"),
        ("metrics-port", "9000"),
    ]);
    assert_eq!(s.scrape.interval_seconds, 90);
    assert_eq!(
        s.scale_down.and_then(|r| r.stabilization_window_seconds),
        Some(900)
    );
    assert_eq!(s.scrape.port, 9000);
}

#[test]
fn hpa_policies_and_select_policy_per_direction() {
    let (s, _) = spec(&[
        (
            "scale-up-policies",
            r#"[{"type":"Percent","value":100,"periodSeconds":30},{"type":"Pods","value":5,"periodSeconds":15}]"#,
        ),
        ("scale-up-stabilization", "0"),
        ("scale-down-select-policy", "Disabled"),
    ]);
    let up = s.scale_up.unwrap();
    assert_eq!(up.stabilization_window_seconds, Some(0));
    let policies = up.policies.unwrap();
    assert_eq!(
        (
            policies[1].type_.as_str(),
            policies[1].value,
            policies[1].period_seconds
        ),
        ("Pods", 5, 15)
    );
    assert_eq!(
        s.scale_down.unwrap().select_policy.as_deref(),
        Some("Disabled")
    );

    // Every bad entry is reported, with the Kubernetes limits in the reason.
    let p = problems(&[(
        "scale-down-policies",
        r#"[{"type":"Replicas","value":1,"periodSeconds":15},{"type":"Pods","value":0,"periodSeconds":15},{"type":"Pods","value":1,"periodSeconds":3600},{"type":"Pods","value":1}]"#,
    )]);
    assert_eq!(p.len(), 4, "{p:#?}");
    assert!(p[0].contains("scale-down-policies[0]") && p[0].contains("Pods and Percent"));
    assert!(p[1].contains("above 0"));
    assert!(p[2].contains("1 to 1800"));
    assert!(p[3].contains("missing field `periodSeconds`"), "{}", p[3]);
    assert!(only_problem(&[("scale-up-select-policy", "max")]).contains("Max, Min, Disabled"));
}

#[test]
fn idle_replicas_restore_and_fallback_behavior() {
    let (s, _) = spec(&[
        ("min-replicas", "2"),
        ("idle-replica-count", "1"),
        ("cooldown-period", "60"),
        ("polling-interval", "15"),
        ("restore-to-original-replica-count", "false"),
        ("fallback-replicas", "2"),
        ("fallback-behavior", "currentReplicasIfHigher"),
    ]);
    assert_eq!(s.idle_replicas, Some(1));
    // With an idle count KEDA's loop scales, so the cooldown and polling interval count.
    assert_eq!(
        (s.cooldown_period, s.polling_interval),
        (Some(60), Some(15))
    );
    assert_eq!(s.restore_to_original_replicas, Some(false));
    assert_eq!(
        s.fallback
            .unwrap()
            .behavior
            .map(|b| b.as_str().to_string())
            .as_deref(),
        Some("currentReplicasIfHigher")
    );
    assert!(
        only_problem(&[("min-replicas", "2"), ("idle-replica-count", "2")])
            .contains("below min-replicas (2)")
    );
    assert!(
        only_problem(&[
            ("idle-replica-count", "0"),
            ("min-replicas", "0"),
            ROUTER_TRIGGER
        ])
        .contains("already goes to zero")
    );
    // Idle at zero is scale to zero: it needs a wake path too.
    assert!(
        only_problem(&[("min-replicas", "1"), ("idle-replica-count", "0")])
            .contains("never wake up")
    );
    assert!(
        only_problem(&[("fallback-behavior", "static")])
            .contains("only reads it with llm-autoscale.io/fallback-replicas")
    );
    assert!(
        only_problem(&[
            ("fallback-replicas", "2"),
            ("fallback-behavior", "scalingModifiers")
        ])
        .contains("unknown fallback behavior")
    );
    let old_keda = WebhookConfig {
        keda_version: Version(2, 16, 0),
        ..WebhookConfig::default()
    };
    let e = parse_with(
        &[
            ("enabled", "true"),
            ("max-replicas", "4"),
            ("fallback-replicas", "2"),
            ("fallback-behavior", "currentReplicas"),
        ],
        &old_keda,
    )
    .unwrap_err();
    assert!(e.to_string().contains("arrived in v2.17.0"), "{e}");
}

#[test]
fn polling_interval_without_keda_loop_scaling_is_refused() {
    // kedacore/keda v2.21.0 IsPollingIntervalRelevant: min 0, an idle count, or cached metrics.
    let p = only_problem(&[("polling-interval", "10s")]);
    assert!(p.contains("otherwise the HPA scales"), "{p}");
}

#[test]
fn metric_type_overrides_the_aggregation() {
    let (s, _) = spec(&[("preset", "queue-depth"), ("metric-type", "Value")]);
    assert_eq!(s.triggers[0].metric_type.as_str(), "Value");
    let (s, _) = spec(&[(
        "triggers",
        r#"[{"preset":"kv-cache","metricType":"AverageValue"}]"#,
    )]);
    assert_eq!(s.triggers[0].metric_type.as_str(), "AverageValue");
    assert!(only_problem(&[("metric-type", "Utilization")]).contains("unknown metric type"));
}

/// A gateway trigger, so that scale to zero can wake up.
const ROUTER_TRIGGER: (&str, &str) = (
    "triggers",
    r#"[{"preset":"queue-depth"},{"name":"router","source":"gateway","query":"sum(router_queue_depth{model=llama})","target":"5"}]"#,
);

#[test]
fn cooldowns_and_polling_interval_only_where_keda_scales() {
    // KEDA's own loop decides only the steps to and from zero or the idle count; elsewhere
    // the HPA scales (kedacore/keda v2.21.0 IsPollingIntervalRelevant; the cooldowns delay
    // scaleToZeroOrIdle). Without it they are refused, not ignored.
    let p = only_problem(&[("cooldown-period", "5m")]);
    assert!(
        p.contains("cooldown-period") && p.contains("only uses it when"),
        "{p}"
    );
    assert!(p.contains("fix: remove it"), "{p}");
    let (s, w) = spec(&[
        ("min-replicas", "0"),
        ("cooldown-period", "5m"),
        ("polling-interval", "15"),
        ("initial-cooldown-period", "1h"),
        ROUTER_TRIGGER,
    ]);
    assert_eq!(
        (
            s.cooldown_period,
            s.polling_interval,
            s.initial_cooldown_period
        ),
        (Some(300), Some(15), Some(3600))
    );
    assert!(w.is_empty());
}

#[test]
fn fallback_rules() {
    let (s, _) = spec(&[("fallback-replicas", "2")]);
    let f = s.fallback.unwrap();
    assert_eq!((f.replicas, f.failure_threshold), (2, 3));
    let (_, w) = spec(&[("fallback-replicas", "9")]);
    assert!(w.iter().any(|w| w.contains("above max-replicas")));
}

#[test]
fn fallback_on_mean_triggers_depends_on_the_keda_version() {
    // KEDA 2.18 lifted the AverageValue requirement (CHANGELOG v2.18.0, #6655).
    let (s, _) = spec(&[("preset", "kv-cache"), ("fallback-replicas", "2")]);
    assert!(s.fallback.is_some());
    let old_keda = WebhookConfig {
        keda_version: Version(2, 17, 0),
        ..WebhookConfig::default()
    };
    let e = parse_with(
        &[
            ("enabled", "true"),
            ("max-replicas", "4"),
            ("preset", "kv-cache"),
            ("fallback-replicas", "2"),
        ],
        &old_keda,
    )
    .unwrap_err();
    let p = e.to_string();
    assert!(
        p.contains("KEDA v2.17.0 only falls back") && p.contains("AverageValue"),
        "{p}"
    );
}

#[test]
fn fallback_on_otel_warns_that_missing_data_reads_zero() {
    let (_, w) = spec(&[("fallback-replicas", "2")]);
    assert!(
        w.iter()
            .any(|w| w.contains("answers 0") && w.contains("METRIC_STORE_ERROR_IF_NOT_FOUND")),
        "{w:?}"
    );
    // Prometheus: an empty result is the same trap unless ignoreNullValues is false.
    let (_, w) = spec(&[
        ("backend", "prometheus"),
        ("fallback-replicas", "2"),
        ("ignore-null-values", "false"),
    ]);
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn scale_to_zero_that_cannot_wake_is_refused() {
    let p = only_problem(&[("min-replicas", "0")]);
    assert!(p.starts_with("llm-autoscale.io/min-replicas: \"0\""), "{p}");
    assert!(p.contains("never wake") && p.contains("\"gateway\""), "{p}");
    // The prometheus backend's built query reads the pods too.
    let p = only_problem(&[("min-replicas", "0"), ("backend", "prometheus")]);
    assert!(p.contains("never wake"), "{p}");
    // ... unless the query is the user's own, or marked as the workload's.
    let (s, _) = spec(&[
        ("min-replicas", "0"),
        ("backend", "prometheus"),
        ("query", "sum(router_queue_depth{model=\"llama\"})"),
        ("target", "5"),
    ]);
    assert!(s.wakes_from_zero());
    // A query of vLLM's own metrics reads the model's pods unless marked otherwise.
    let vllm_query = ("query", "sum(vllm:num_requests_waiting{namespace=\"llm\"})");
    let p = only_problem(&[("min-replicas", "0"), ("backend", "prometheus"), vllm_query]);
    assert!(p.contains("never wake"), "{p}");
    let (s, _) = spec(&[
        ("min-replicas", "0"),
        ("backend", "prometheus"),
        vllm_query,
        ("target", "5"),
        ("source", "gateway"),
    ]);
    assert!(s.wakes_from_zero());
    let p = only_problem(&[
        ("min-replicas", "0"),
        ("backend", "prometheus"),
        ("query", "sum(router_queue_depth)"),
        ("source", "workload"),
    ]);
    assert!(p.contains("never wake"), "{p}");
    // An external scaler runs on its own.
    let (s, _) = spec(&[
        ("min-replicas", "0"),
        ("backend", "external"),
        ("scaler-address", "scaler.llm.svc:9090"),
    ]);
    assert!(s.wakes_from_zero());
}

#[test]
fn gateway_triggers_are_read_as_written_and_not_forwarded() {
    let (s, _) = spec(&[("min-replicas", "0"), ROUTER_TRIGGER]);
    assert_eq!(otel_query(&s, 1), "sum(router_queue_depth{model=llama})");
    assert_eq!(s.sidecar_metrics(), ["vllm:num_requests_waiting"]);
    assert!(s.wakes_from_zero());
    let p = only_problem(&[("source", "gateway")]);
    assert!(
        p.contains("llm-autoscale.io/source: \"gateway\"") && p.contains("needs its own query"),
        "{p}"
    );
    let p = only_problem(&[("source", "router")]);
    assert!(p.contains("unknown source"), "{p}");
    // Only gateway triggers: nothing for a sidecar to forward, so none is injected.
    let gateway_only = [
        ("enabled", "true"),
        ("max-replicas", "4"),
        ("source", "gateway"),
        ("query", "sum(router_queue_depth{model=llama})"),
        ("target", "5"),
    ];
    let (s, warnings) = spec(&gateway_only);
    assert_eq!(s.sidecar, SidecarMode::None);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("no sidecar is injected")),
        "{warnings:?}"
    );
    let m = mutate(&deployment(&gateway_only), &WebhookConfig::default()).unwrap();
    let pod = &m.patched["spec"]["template"]["spec"];
    assert!(pod["initContainers"].is_null(), "{pod}");
    assert_eq!(pod["containers"].as_array().map(Vec::len), Some(1), "{pod}");
    assert!(m.scaled_object.is_some());
}

#[test]
fn activation_target_is_refused_where_nothing_reads_it() {
    let p = only_problem(&[("activation-target", "2")]);
    assert!(
        p.contains("never reads an activation target") && p.contains("prometheus"),
        "{p}"
    );
    let (s, _) = spec(&[("backend", "prometheus"), ("activation-target", "2")]);
    assert_eq!(s.triggers[0].activation_target.as_deref(), Some("2"));
}

#[test]
fn histograms_on_the_add_on() {
    // The add-on keeps a histogram's _count and _sum only (kedify/otel-add-on
    // receiver/receiver.go): the sidecar must forward the histogram for them.
    let (s, _) = spec(&[
        ("metric", "vllm:e2e_request_latency_seconds_count"),
        ("target", "2"),
    ]);
    assert_eq!(
        s.sidecar_metrics(),
        [
            "vllm:e2e_request_latency_seconds_count",
            "vllm:e2e_request_latency_seconds"
        ]
    );
    assert_eq!(
        s.triggers[0].operation_over_time.map(|o| o.as_str()),
        Some("rate")
    );
    let p = only_problem(&[
        ("metric", "vllm:e2e_request_latency_seconds_bucket"),
        ("target", "2"),
    ]);
    assert!(
        p.contains("drops its buckets") && p.contains("histogram_quantile"),
        "{p}"
    );
    let (s, _) = spec(&[
        ("backend", "prometheus"),
        ("metric", "vllm:e2e_request_latency_seconds_count"),
        ("target", "2"),
    ]);
    match &s.triggers[0].query {
        TriggerQuery::Prometheus(q) => assert!(q.starts_with("sum(rate("), "{q}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn trigger_lists() {
    let (s, _) = spec(&[(
        "triggers",
        r#"[{"preset":"queue-depth","target":10},{"metric":"vllm:kv_cache_usage_perc","target":"0.75","name":"kv"},{"metric":"vllm:num_requests_waiting","target":"20"}]"#,
    )]);
    let names: Vec<&str> = s.triggers.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["queue_depth", "kv", "queue_depth_2"]);
    assert_eq!(s.triggers[0].target.as_deref(), Some("10"));
    assert_eq!(
        s.sidecar_metrics(),
        ["vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"]
    );

    let p = only_problem(&[(
        "triggers",
        r#"[{"metric":"a","target":"1","name":"x"},{"metric":"b","target":"2","name":"x"}]"#,
    )]);
    assert!(
        p.contains("triggers[1].name") && p.contains("same name"),
        "{p}"
    );
    let p = only_problem(&[("triggers", r#"[{"query":"sum(x{a!=b})","target":"1"}]"#)]);
    assert!(p.starts_with("llm-autoscale.io/triggers[0].query:"), "{p}");
    assert!(only_problem(&[("triggers", "[")]).contains("not valid JSON"));
    assert!(only_problem(&[("triggers", "[]")]).contains("empty"));
    assert!(only_problem(&[("triggers", r#"[{"metrc":"a"}]"#)]).contains("unknown field"));
    assert!(
        only_problem(&[("triggers", r#"[{"preset":"kv-cache"}]"#), ("target", "1")])
            .contains("set together with")
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let p = problems(&[
        ("min-replicas", "9"),
        ("max-replicas", "2"),
        ("target", "600m"),
        ("metrics-port", "x"),
        ("scaler-address", "nope"),
        ("sidecar", "maybe"),
    ]);
    assert_eq!(p.len(), 5, "{p:#?}");
    for p in &p {
        assert!(
            p.starts_with("llm-autoscale.io/") && p.contains("fix: "),
            "{p}"
        );
    }
}

#[test]
fn vllm_version_aliases() {
    let (s, w) = spec(&[("metric", "vllm:gpu_cache_usage_perc"), ("target", "0.5")]);
    assert_eq!(
        otel_query(&s, 0),
        "avg(vllm:kv_cache_usage_perc{deployment=llama,namespace=llm})"
    );
    assert!(w[0].contains("renamed"), "{w:?}");
    let (s, w) = spec(&[
        ("metric", "vllm:gpu_cache_usage_perc"),
        ("target", "0.5"),
        ("vllm-version", "0.9.2"),
    ]);
    assert!(otel_query(&s, 0).contains("gpu_cache_usage_perc"));
    assert!(w[0].contains("deprecated in vLLM v0.9.2"), "{w:?}");
    // Before v0.9.2 only the old name exists: the kv-cache preset reads it.
    let (s, w) = spec(&[("preset", "kv-cache"), ("vllm-version", "0.9.1")]);
    assert_eq!(
        otel_query(&s, 0),
        "avg(vllm:gpu_cache_usage_perc{deployment=llama,namespace=llm})"
    );
    assert!(w[0].contains("the name this version exports"), "{w:?}");
    assert!(only_problem(&[("vllm-version", "latest")]).contains("not a version"));
}

#[test]
fn kserve_port_annotation_and_predictor_default() {
    let port = |d: &Value| {
        let w = Workload::from_object(WorkloadKind::Deployment, d);
        let (s, _) = annotations::parse(&w, &WebhookConfig::default()).unwrap();
        s.unwrap().scrape.port
    };
    let mut d = deployment(&[("enabled", "true"), ("max-replicas", "2")]);
    d["metadata"]["labels"] = json!({"serving.kserve.io/inferenceservice": "llama"});
    assert_eq!(port(&d), 8080);
    d["spec"]["template"]["metadata"]["annotations"] = json!({"prometheus.kserve.io/port": "8082"});
    assert_eq!(port(&d), 8082);
}

#[test]
fn generate_name_only_objects_are_refused() {
    let mut d = deployment(&[("enabled", "true"), ("max-replicas", "2")]);
    d["metadata"].as_object_mut().unwrap().remove("name");
    d["metadata"]["generateName"] = json!("llama-");
    let e = mutate(&d, &WebhookConfig::default()).unwrap_err();
    assert!(e.to_string().contains("metadata.name"), "{e}");
}

#[test]
fn inference_services_switch_class_and_refuse_serverless() {
    let isvc = |mode: &str| {
        json!({
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "opt", "namespace": "llm", "annotations": {
                "serving.kserve.io/deploymentMode": mode,
                "serving.kserve.io/autoscalerClass": "hpa",
                "llm-autoscale.io/enabled": "true", "llm-autoscale.io/max-replicas": "3"}},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "huggingface"}}}}
        })
    };
    let cfg = WebhookConfig::default();
    let m = mutate(&isvc("Standard"), &cfg).unwrap();
    assert_eq!(
        m.patched["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"],
        "external"
    );
    assert!(m.warnings.iter().any(|w| w.contains("\"hpa\"")));
    let so = m.scaled_object.unwrap();
    assert_eq!(so.name(), "opt-predictor");
    assert_eq!(so.spec.scale_target_ref.name, "opt-predictor");
    assert_eq!(
        so.spec.triggers[0].metadata["metricQuery"],
        "sum(vllm:num_requests_waiting{deployment=opt-predictor,namespace=llm})"
    );
    assert!(
        m.patched.pointer("/spec/predictor/containers").is_none(),
        "no sidecar on the isvc"
    );
    let again = mutate(&m.patched, &cfg).unwrap();
    assert!(again.patch.0.is_empty());
    for mode in ["Serverless", "Knative", "ModelMesh", "Raw"] {
        let e = mutate(&isvc(mode), &cfg).unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("serving.kserve.io/deploymentMode: \"{mode}\"")),
            "{e}"
        );
        assert!(e.to_string().contains("\"Standard\""), "{e}");
    }
    assert!(mutate(&isvc("RawDeployment"), &cfg).is_ok());
}

#[test]
fn a_sidecar_defaulted_by_the_apiserver_is_left_alone() {
    let cfg = WebhookConfig::default();
    let injected = mutate(
        &deployment(&[("enabled", "true"), ("max-replicas", "2")]),
        &cfg,
    )
    .unwrap()
    .patched;
    let mut stored = injected.clone();
    let sidecar = &mut stored["spec"]["template"]["spec"]["initContainers"][0];
    sidecar["imagePullPolicy"] = json!("IfNotPresent");
    sidecar["terminationMessagePath"] = json!("/dev/termination-log");
    sidecar["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] = json!("v1");
    let m = mutate(&stored, &cfg).unwrap();
    assert!(m.patch.0.is_empty(), "{:?}", m.patch);
    // A configuration change still replaces it.
    let newer = WebhookConfig {
        otlp_endpoint: "collector.other.svc:4317".into(),
        ..cfg
    };
    let m = mutate(&stored, &newer).unwrap();
    assert!(!m.patch.0.is_empty());
    assert!(
        m.patched["spec"]["template"]["spec"]["initContainers"][0]
            .get("imagePullPolicy")
            .is_none()
    );
}

#[test]
fn a_hand_written_status_never_removes_what_the_webhook_did_not_inject() {
    let cfg = WebhookConfig::default();
    for status in [
        r#"{"version":1,"container":"data","placement":"volumes"}"#,
        r#"{"version":1,"container":"vllm","placement":"containers"}"#,
        r#"{"version":1,"container":"vllm","placement":"initContainers","hash":"x"}"#,
    ] {
        let mut d = deployment(&[("enabled", "false")]);
        d["spec"]["template"]["metadata"]["annotations"] =
            json!({"llm-autoscale.io/status": status});
        d["spec"]["template"]["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
        d["spec"]["template"]["spec"]["initContainers"] =
            json!([{"name": "vllm", "image": "busybox"}]);
        let m = mutate(&d, &cfg).unwrap();
        let pod = &m.patched["spec"]["template"]["spec"];
        assert_eq!(pod["volumes"][0]["name"], "data", "{status}");
        assert_eq!(pod["containers"][0]["name"], "vllm", "{status}");
        assert_eq!(pod["initContainers"][0]["name"], "vllm", "{status}");
        assert!(
            m.patched["spec"]["template"]["metadata"]
                .get("annotations")
                .is_none(),
            "the status annotation itself is dropped: {status}"
        );
    }
}

#[test]
fn names_with_multi_byte_characters_at_the_cut_do_not_panic() {
    // A mutating webhook sees names before the apiserver validates them.
    let cfg = WebhookConfig::default();
    let mut d = deployment(&[("enabled", "true"), ("max-replicas", "2")]);
    d["metadata"]["name"] = json!(format!("{}{}", "a".repeat(53), "é".repeat(8)));
    let m = mutate(&d, &cfg).unwrap();
    let so = m.scaled_object.unwrap();
    assert!(so.name().len() <= 63, "{}", so.name());
}

#[test]
fn built_promql_queries_parse_as_promql() {
    for preset in [
        "queue-depth",
        "kv-cache",
        "running-requests",
        "token-throughput",
    ] {
        let (s, _) = spec(&[("backend", "prometheus"), ("preset", preset)]);
        match &s.triggers[0].query {
            TriggerQuery::Prometheus(q) => {
                llm_autoscale_webhook::query::check_promql(q).unwrap_or_else(|e| panic!("{q}: {e}"))
            }
            other => panic!("{other:?}"),
        }
    }
    let p = only_problem(&[("backend", "prometheus"), ("query", "sum(x) by")]);
    assert!(p.contains("not valid PromQL"), "{p}");
}

#[test]
fn prometheus_connection_keys() {
    let prom = [("backend", "prometheus"), ("preset", "queue-depth")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut a = prom.to_vec();
        a.extend_from_slice(extra);
        a
    };
    let (s, _) = spec(&with(&[
        (
            "prometheus-auth",
            "ClusterTriggerAuthentication/shared-prom",
        ),
        ("prometheus-auth-modes", "bearer, tls"),
        ("prometheus-unsafe-ssl", "true"),
    ]));
    let auth = s.prometheus.auth.unwrap();
    assert_eq!(
        (auth.kind.as_str(), auth.name.as_str()),
        ("ClusterTriggerAuthentication", "shared-prom")
    );
    assert_eq!(s.prometheus.auth_modes.as_deref(), Some("bearer,tls"));
    assert_eq!(s.prometheus.unsafe_ssl, Some(true));
    assert!(only_problem(&with(&[("prometheus-auth", "Secret/x")])).contains("not a kind KEDA"));
    assert!(
        only_problem(&with(&[
            ("prometheus-auth", "prom"),
            ("prometheus-auth-modes", "bearer,basic")
        ]))
        .contains("exclude each other")
    );
    assert!(
        only_problem(&with(&[
            ("prometheus-auth", "prom"),
            ("prometheus-auth-modes", "token")
        ]))
        .contains("\"token\"")
    );
    assert!(
        only_problem(&with(&[("prometheus-headers", r#"{"X-A":"a,b"}"#)]))
            .contains("splits headers on , and =")
    );
    // Credentials come only from a TriggerAuthentication: modes without one cannot work.
    let p = only_problem(&with(&[("prometheus-auth-modes", "bearer")]));
    assert!(
        p.contains("none is named") && p.contains("prometheus-auth"),
        "{p}"
    );
    // Only the prometheus backend reads them.
    assert!(only_problem(&[("prometheus-auth", "x")]).contains("never reads it"));
    // Fallback on prometheus says what an empty result does.
    let (_, w) = spec(&with(&[("fallback-replicas", "2")]));
    assert!(w.iter().any(|w| w.contains("ignore-null-values")), "{w:?}");
    let (_, w) = spec(&with(&[
        ("fallback-replicas", "2"),
        ("ignore-null-values", "false"),
    ]));
    assert!(!w.iter().any(|w| w.contains("ignore-null-values")), "{w:?}");
}

#[test]
fn wva_backend_reads_its_own_keys_and_the_release_decides_the_metric() {
    let wva = [("backend", "wva"), ("wva-accelerator-type", "H100")];
    let (s, w) = spec(&wva);
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(s.min_replicas, 0);
    match &s.triggers[0].query {
        TriggerQuery::Prometheus(q) => assert_eq!(
            q,
            r#"wva_desired_replicas{variant_name="llama",exported_namespace="llm",accelerator_type="H100"}"#
        ),
        other => panic!("{other:?}"),
    }
    // A user's own setting wins over the integration's default.
    let (s, _) = spec(&[("backend", "wva"), ("fallback-replicas", "1")]);
    assert_eq!(s.fallback.unwrap().replicas, 1);
    // With min-replicas above 0 KEDA's loop decides nothing: no polling or cooldown defaults.
    let (s, _) = spec(&[("backend", "wva"), ("min-replicas", "1")]);
    assert_eq!((s.polling_interval, s.cooldown_period), (None, None));
    let p = only_problem(&[("backend", "wva"), ("wva-variant-id", "a/b-A100-1")]);
    assert!(p.contains("no variant_id label"), "{p}");
    assert!(only_problem(&[("backend", "wva"), ("preset", "kv-cache")]).contains("never reads it"));
    assert!(only_problem(&[("wva-version", "0.5.1")]).contains("read by the wva backend"));
}

// Latency triggers: a percentile of a histogram per window (src/latency.rs,
// src/annotations/triggers/latency.rs).

const TTFT: &str = "vllm:time_to_first_token_seconds";

#[test]
fn latency_presets_read_the_worst_pods_latest_window() {
    let (s, w) = spec(&[("preset", "ttft-p90")]);
    assert!(w.is_empty(), "{w:?}");
    let t = &s.triggers[0];
    assert_eq!(t.name, "ttft_p90");
    assert_eq!(
        otel_query(&s, 0),
        "max(vllm:time_to_first_token_seconds_p90{deployment=llama,namespace=llm})"
    );
    assert_eq!(t.operation_over_time.map(|o| o.as_str()), Some("last_one"));
    assert_eq!(t.metric_type.as_str(), "Value");
    assert_eq!(t.target.as_deref(), Some("1"));
    // Nothing is forwarded as scraped: the sidecar computes the gauge.
    assert!(s.sidecar_metrics().is_empty());
    let windows = s.sidecar_percentiles();
    assert_eq!(windows.len(), 1);
    assert_eq!(
        windows[0].gauge_name(),
        "vllm:time_to_first_token_seconds_p90"
    );
    for (preset, target) in [
        ("itl-p90", "0.1"),
        ("e2e-p90", "30"),
        ("queue-time-p90", "0.5"),
    ] {
        let (s, _) = spec(&[("preset", preset)]);
        assert_eq!(s.triggers[0].target.as_deref(), Some(target), "{preset}");
    }
}

#[test]
fn a_metric_and_a_percentile_make_a_latency_trigger() {
    let (s, w) = spec(&[("metric", TTFT), ("percentile", "95"), ("target", "0.5")]);
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(s.triggers[0].name, "vllm_time_to_first_token_seconds_p95");
    assert_eq!(
        otel_query(&s, 0),
        "max(vllm:time_to_first_token_seconds_p95{deployment=llama,namespace=llm})"
    );
    // The preset's target applies to the same metric at the same percentile.
    let (s, _) = spec(&[("metric", TTFT), ("percentile", "90")]);
    assert_eq!(s.triggers[0].target.as_deref(), Some("1"));
    let p = only_problem(&[("metric", TTFT), ("percentile", "95")]);
    assert!(
        p.contains("target") && p.contains("required: the latency (seconds)"),
        "{p}"
    );
    let (s, _) = spec(&[
        ("metric", TTFT),
        ("percentile", "90"),
        ("aggregation", "avg"),
        ("operation-over-time", "avg"),
    ]);
    assert!(otel_query(&s, 0).starts_with("avg("));
    assert_eq!(
        s.triggers[0].operation_over_time.map(|o| o.as_str()),
        Some("avg")
    );
}

#[test]
fn percentiles_are_between_0_and_100() {
    for bad in ["0", "100", "150", "p90", "90%", "99.9999"] {
        let p = only_problem(&[("metric", TTFT), ("percentile", bad), ("target", "1")]);
        assert!(p.starts_with("llm-autoscale.io/percentile:"), "{bad}: {p}");
    }
    let (s, w) = spec(&[("metric", TTFT), ("percentile", "99.9"), ("target", "1")]);
    assert_eq!(s.triggers[0].name, "vllm_time_to_first_token_seconds_p99_9");
    // p99.9 needs 1,000 requests per window before it says anything.
    assert!(w.iter().any(|w| w.contains("1000 requests")), "{w:?}");
}

#[test]
fn percentiles_only_on_latency_histograms() {
    let p = only_problem(&[("percentile", "90"), ("target", "1")]);
    assert!(
        p.contains("llm-autoscale.io/metric") && p.contains("required with percentile"),
        "{p}"
    );
    let p = only_problem(&[
        ("metric", "vllm:num_requests_waiting"),
        ("percentile", "90"),
        ("target", "1"),
    ]);
    assert!(
        p.contains("not one of vLLM's latency histograms") && p.contains(TTFT),
        "{p}"
    );
    let p = only_problem(&[
        ("metric", "vllm:time_to_first_token_seconds_bucket"),
        ("percentile", "90"),
        ("target", "1"),
    ]);
    assert!(
        p.contains(&format!("write the histogram's name, {TTFT}")),
        "{p}"
    );
    // Another server's histogram cannot be checked here: a warning says what it must be.
    let (_, w) = spec(&[
        ("metric", "sglang:time_to_first_token_seconds"),
        ("percentile", "90"),
        ("target", "1"),
    ]);
    assert!(
        w.iter()
            .any(|w| w.contains("must be a Prometheus histogram")),
        "{w:?}"
    );
    // A histogram read as a plain value has no series of that name: refused, on both backends.
    for backend in ["otel", "prometheus"] {
        let p = only_problem(&[("backend", backend), ("metric", TTFT), ("target", "1")]);
        assert!(
            p.contains("is a histogram") && p.contains("add percentile"),
            "{p}"
        );
    }
}

#[test]
fn latency_targets_are_seconds_inside_the_buckets() {
    // vLLM's queue-time histogram starts at 0.3 s: below it every busy window would read as
    // an interpolation between 0 and 0.3 s.
    let p = only_problem(&[("preset", "queue-time-p90"), ("target", "0.1")]);
    assert!(
        p.contains("below the first bucket bound") && p.contains("0.3"),
        "{p}"
    );
    let p = only_problem(&[("preset", "ttft-p90"), ("target", "3000")]);
    assert!(
        p.contains("last finite bucket bound") && p.contains("2560"),
        "{p}"
    );
    let p = only_problem(&[("preset", "ttft-p90"), ("target", "0")]);
    assert!(p.contains("greater than 0"), "{p}");
    let (_, w) = spec(&[("preset", "ttft-p90"), ("target", "0.6")]);
    assert!(
        w.iter()
            .any(|w| w.contains("between the bucket bounds 0.5 and 0.75")),
        "{w:?}"
    );
}

#[test]
fn latency_triggers_refuse_what_means_nothing_for_a_latency() {
    for (key, value, says) in [
        ("aggregation", "sum", "not a latency"),
        ("aggregation", "count", "not a latency"),
        ("metric-type", "AverageValue", "does not shrink per replica"),
        ("operation-over-time", "rate", "last_one, avg, min or max"),
        ("query", "max(x)", "set together with percentile"),
        ("source", "gateway", "reads this workload's pods"),
    ] {
        let p = problems(&[("preset", "ttft-p90"), (key, value)]);
        assert!(
            p.iter()
                .any(|p| p.contains(&format!("llm-autoscale.io/{key}")) && p.contains(says)),
            "{key}={value}: {p:#?}"
        );
    }
    let p = problems(&[("preset", "ttft-p90"), ("percentile", "99")]);
    assert!(
        p.iter().any(|p| p.contains("set together with preset")),
        "{p:#?}"
    );
}

#[test]
fn latency_names_follow_the_vllm_version() {
    let (s, w) = spec(&[("preset", "itl-p90"), ("vllm-version", "0.10.1")]);
    assert_eq!(
        otel_query(&s, 0),
        "max(vllm:time_per_output_token_seconds_p90{deployment=llama,namespace=llm})"
    );
    assert!(
        w.iter()
            .any(|w| w.contains("does not exist before vLLM v0.10.2")),
        "{w:?}"
    );
    let p = only_problem(&[
        ("metric", "vllm:request_time_per_output_token_seconds"),
        ("percentile", "90"),
        ("target", "0.1"),
        ("vllm-version", "0.10.2"),
    ]);
    assert!(p.contains("does not exist before vLLM v0.11.0"), "{p}");
}

#[test]
fn latency_on_prometheus_merges_the_pods_buckets() {
    let (s, _) = spec(&[("backend", "prometheus"), ("preset", "ttft-p90")]);
    let q = match &s.triggers[0].query {
        TriggerQuery::Prometheus(q) => q.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        q,
        "histogram_quantile(0.9, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{namespace=\"llm\",pod=~\"llama-[a-z0-9]+-[a-z0-9]{5}\"}[1m]))) and (sum(increase(vllm:time_to_first_token_seconds_count{namespace=\"llm\",pod=~\"llama-[a-z0-9]+-[a-z0-9]{5}\"}[1m])) >= 10)"
    );
    llm_autoscale_webhook::query::check_promql(&q).unwrap();
    assert!(s.triggers[0].operation_over_time.is_none());
    let (s, _) = spec(&[
        ("backend", "prometheus"),
        ("preset", "ttft-p90"),
        ("aggregation", "max"),
    ]);
    match &s.triggers[0].query {
        TriggerQuery::Prometheus(q) => {
            assert!(
                q.starts_with("max(histogram_quantile(0.9, sum by (le, pod)"),
                "{q}"
            );
            llm_autoscale_webhook::query::check_promql(q).unwrap();
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn latency_on_otel_needs_a_collector_with_extract_percentile_metric() {
    let all = [
        ("enabled", "true"),
        ("max-replicas", "4"),
        ("preset", "ttft-p90"),
    ];
    let old = WebhookConfig {
        collector_image: "otel/opentelemetry-collector-contrib:0.150.0".into(),
        ..WebhookConfig::default()
    };
    let e = parse_with(&all, &old).unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
    let p = e.problems[0].to_string();
    assert!(
        p.contains("llm-autoscale.io/preset") && p.contains("extract_percentile_metric"),
        "{p}"
    );
    let newer = WebhookConfig {
        collector_image: "otel/opentelemetry-collector-contrib:0.151.0".into(),
        ..WebhookConfig::default()
    };
    assert!(parse_with(&all, &newer).is_ok());
    // Prometheus computes it itself.
    let mut on_prometheus = all.to_vec();
    on_prometheus.push(("backend", "prometheus"));
    assert!(parse_with(&on_prometheus, &old).is_ok());
}

#[test]
fn latency_without_the_sidecar_says_who_must_compute_the_gauge() {
    let (_, w) = spec(&[("preset", "ttft-p90"), ("sidecar", "none")]);
    assert!(
        w.iter()
            .any(|w| w.contains("vllm:time_to_first_token_seconds_p90")
                && w.contains("your own collector")),
        "{w:?}"
    );
}

fn builtin_query(s: &AutoscalingSpec, i: usize) -> (String, i32) {
    match &s.triggers[i].query {
        TriggerQuery::Builtin {
            query,
            window_seconds,
        } => (query.to_string(), *window_seconds),
        other => panic!("{other:?}"),
    }
}

#[test]
fn builtin_triggers_read_the_add_on_grammar_with_a_window() {
    let (s, warnings) = spec(&[
        ("backend", "builtin"),
        (
            "triggers",
            r#"[{"preset":"queue-depth"},
                {"preset":"kv-cache","window":"2m","activation-target":"0.5"},
                {"preset":"ttft-p90"},
                {"metric":"vllm:e2e_request_latency_seconds","percentile":"95","target":"30","aggregation":"max","window":"90s"}]"#,
        ),
    ]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(s.backend, Backend::Builtin);
    assert_eq!(
        s.scaler_address,
        "llm-autoscale-scaler.llm-autoscale-system.svc:4318"
    );
    assert_eq!(s.sidecar, SidecarMode::Native);
    assert_eq!(
        builtin_query(&s, 0),
        (
            "sum(vllm:num_requests_waiting{deployment=llama,namespace=llm})".into(),
            60
        )
    );
    assert_eq!(
        builtin_query(&s, 1),
        (
            "avg(vllm:kv_cache_usage_perc{deployment=llama,namespace=llm})".into(),
            120
        )
    );
    assert_eq!(s.triggers[1].activation_target.as_deref(), Some("0.5"));
    // A latency trigger reads the histogram itself: the fleet's percentile by default, the
    // worst pod's with max.
    assert_eq!(
        builtin_query(&s, 2),
        (
            "vllm:time_to_first_token_seconds{deployment=llama,namespace=llm}".into(),
            60
        )
    );
    assert_eq!(s.triggers[2].operation_over_time, None);
    assert_eq!(
        builtin_query(&s, 3),
        (
            "max(vllm:e2e_request_latency_seconds{deployment=llama,namespace=llm})".into(),
            90
        )
    );
    // The sidecar forwards the histograms (as deltas), not percentile gauges.
    assert_eq!(
        s.sidecar_metrics(),
        [
            "vllm:num_requests_waiting",
            "vllm:kv_cache_usage_perc",
            "vllm:time_to_first_token_seconds",
            "vllm:e2e_request_latency_seconds"
        ]
    );
    assert!(s.sidecar_percentiles().is_empty());
    assert!(s.sidecar_deltas());
}

#[test]
fn builtin_refusals_say_why() {
    let p = only_problem(&[
        ("backend", "builtin"),
        ("query", "sum(router_queue{model=m})"),
        ("target", "5"),
        ("source", "gateway"),
    ]);
    assert!(
        p.contains("llm-autoscale.io/source") && p.contains("HTTP wake"),
        "{p}"
    );
    let p = only_problem(&[
        ("backend", "builtin"),
        ("preset", "ttft-p90"),
        ("operation-over-time", "avg"),
    ]);
    assert!(p.contains("percentile of the window's requests"), "{p}");
    let p = only_problem(&[("backend", "builtin"), ("window", "0")]);
    assert!(
        p.contains("llm-autoscale.io/window") && p.contains("at least 1 second"),
        "{p}"
    );
    let p = only_problem(&[("window", "1m")]);
    assert!(
        p.contains("the otel backend never reads it") && p.contains("builtin"),
        "{p}"
    );
    let p = only_problem(&[
        ("backend", "builtin"),
        ("metric", "vllm:time_to_first_token_seconds_bucket"),
        ("target", "1"),
    ]);
    assert!(p.contains("keeps the histogram whole"), "{p}");
    // Scale to zero needs a wake path: the built-in scaler's series come from the pods.
    let p = only_problem(&[("backend", "builtin"), ("min-replicas", "0")]);
    assert!(p.contains("never wake up"), "{p}");
}

#[test]
fn the_default_backend_is_configurable() {
    let cfg = WebhookConfig {
        default_backend: Backend::Builtin,
        builtin_scaler_address: "scaler.ops.svc:9000".into(),
        ..WebhookConfig::default()
    };
    let (s, _) = parse_with(&[("enabled", "true"), ("max-replicas", "2")], &cfg).unwrap();
    let s = s.unwrap();
    assert_eq!(s.backend, Backend::Builtin);
    assert_eq!(s.scaler_address, "scaler.ops.svc:9000");
    // A workload still chooses its own.
    let (s, _) = parse_with(
        &[
            ("enabled", "true"),
            ("max-replicas", "2"),
            ("backend", "otel"),
        ],
        &cfg,
    )
    .unwrap();
    assert_eq!(s.unwrap().backend, Backend::Otel);
}

/// `--builtin-scaler-tls` reaches the built-in triggers only; with `sidecar: none` the
/// warning tells the user's own collector to use TLS too.
#[test]
fn the_builtin_scalers_tls_is_a_setting_of_the_builtin_backend() {
    let cfg = WebhookConfig {
        builtin_scaler_tls: true,
        ..WebhookConfig::default()
    };
    let builtin = [
        ("enabled", "true"),
        ("max-replicas", "2"),
        ("backend", "builtin"),
    ];
    let (s, _) = parse_with(&builtin, &cfg).unwrap();
    assert!(s.unwrap().scaler_tls);
    let (s, _) = parse_with(&builtin, &WebhookConfig::default()).unwrap();
    assert!(!s.unwrap().scaler_tls);
    let (s, _) = parse_with(&[("enabled", "true"), ("max-replicas", "2")], &cfg).unwrap();
    assert!(!s.unwrap().scaler_tls, "otel reads the add-on");
    let mut none = builtin.to_vec();
    none.push(("sidecar", "none"));
    let (_, warnings) = parse_with(&none, &cfg).unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("over TLS") && w.contains("ca.crt")),
        "{warnings:?}"
    );
}
