//! Two layers of rules for a ScaledObject.
//!
//! - [`validate`], what the `/validate` webhook enforces on every ScaledObject of the cluster:
//!   only what KEDA cannot check itself, the reading of the triggers aimed at the KEDA OTel
//!   add-on (query grammar, decimal targets, known operations) or at the built-in scaler (its
//!   metadata, [`crate::scaler::query`]), told apart by their configured addresses
//!   ([`KnownScalers`]). It never denies a ScaledObject the installed KEDA accepts for KEDA's
//!   own reasons: KEDA's webhook does that.
//! - [`check`], the strict check of what this product renders: KEDA's static rules for the
//!   configured KEDA version, plus the add-on's.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use super::FALLBACK_ON_VALUE_SINCE;
use super::names::{DEFAULT_HPA_PREFIX, MAX_NAME, MAX_NAME_WITH_DEFAULT_HPA};
use super::scaled_object::ScaledObject;
use super::trigger::{KnownScalers, MetricType, OperationOverTime, Reader, Trigger};
use crate::annotations::values;
use crate::problem::Problem;
use crate::query;
use crate::version::Version;

/// What the `/validate` webhook denies in a ScaledObject as the apiserver hands it over:
/// problems in triggers read by the KEDA OTel add-on or the built-in scaler. An object that
/// does not read as a ScaledObject has passed the CRD's schema, so it is KEDA's to judge:
/// nothing is denied.
pub fn validate_json(so: &Value, known: &KnownScalers<'_>) -> Vec<Problem> {
    match ScaledObject::deserialize(so) {
        Ok(so) => validate(&so, known),
        Err(e) => {
            tracing::warn!(error = %e, "a ScaledObject that does not read as one: left to KEDA");
            Vec::new()
        }
    }
}

/// What the `/validate` webhook denies: problems in triggers read by the KEDA OTel add-on or
/// the built-in scaler.
pub fn validate(so: &ScaledObject, known: &KnownScalers<'_>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, t) in so.spec.triggers.iter().enumerate() {
        match t.reader(known) {
            Reader::OtelAddon => problems.extend(check_otel_trigger(i, t)),
            Reader::Builtin => problems.extend(check_builtin_trigger(i, t)),
            Reader::Other => {}
        }
    }
    problems
}

/// The built-in scaler's reading of a trigger's metadata, as it will read it on every call.
pub fn check_builtin_trigger(i: usize, t: &Trigger) -> Vec<Problem> {
    match crate::scaler::query::Query::from_metadata(&t.metadata) {
        Ok(_) => Vec::new(),
        Err(problems) => problems
            .into_iter()
            .map(|p| Problem {
                key: format!("spec.triggers[{i}].{}", p.key),
                ..p
            })
            .collect(),
    }
}

/// Every problem with a ScaledObject for KEDA `keda_version` (empty: valid): the add-on's
/// reading of its triggers, KEDA's static rules, and what this product never renders.
pub fn check(so: &ScaledObject, known: &KnownScalers<'_>, keda_version: Version) -> Vec<Problem> {
    let mut problems = validate(so, known);
    problems.extend(check_names(so));
    problems.extend(check_replicas(so));
    problems.extend(check_triggers(so, known));
    problems.extend(check_fallback(so, keda_version));
    problems
}

/// The name is a label value, and so is the HPA's (kedacore/keda
/// apis/keda/v1alpha1/scaledobject_webhook.go, `maxK8sLabelValueLength`).
fn check_names(so: &ScaledObject) -> Vec<Problem> {
    let name = so.name();
    let mut problems = Vec::new();
    if name.len() > MAX_NAME {
        problems.push(Problem::new(
            "metadata.name",
            Some(name),
            format!(
                "{} characters: KEDA uses the name as a label value (at most {MAX_NAME})",
                name.len()
            ),
            "use a shorter name",
        ));
    }
    match so.custom_hpa_name() {
        Some(h) if h.len() > MAX_NAME => problems.push(Problem::new(
            "spec.advanced.horizontalPodAutoscalerConfig.name",
            Some(h),
            format!("longer than {MAX_NAME} characters"),
            "use a shorter HPA name",
        )),
        None if name.len() > MAX_NAME_WITH_DEFAULT_HPA && name.len() <= MAX_NAME => {
            problems.push(Problem::new(
                "metadata.name",
                Some(name),
                format!(
                    "the HPA KEDA derives, {DEFAULT_HPA_PREFIX}{name}, is longer than {MAX_NAME} characters"
                ),
                "set spec.advanced.horizontalPodAutoscalerConfig.name or shorten the name",
            ))
        }
        _ => {}
    }
    problems
}

/// KEDA's replica rules: defaults min 0 (1 for the HPA), max 100; idle below min.
fn check_replicas(so: &ScaledObject) -> Vec<Problem> {
    let spec = &so.spec;
    let mut problems = Vec::new();
    let (min, max) = (spec.min_replica_count, spec.max_replica_count);
    let effective_min = min.map(|m| m.max(1)).unwrap_or(0);
    let effective_max = max.unwrap_or(100);
    let text = |v: Option<i32>| v.unwrap_or_default().to_string();
    if min.is_some_and(|m| m < 0) {
        problems.push(Problem::new(
            "spec.minReplicaCount",
            Some(&text(min)),
            "negative",
            "write 0 or more",
        ));
    }
    if effective_min > effective_max {
        problems.push(Problem::new(
            "spec.minReplicaCount",
            Some(&text(min)),
            format!("greater than maxReplicaCount ({effective_max})"),
            "make minReplicaCount ≤ maxReplicaCount",
        ));
    }
    if max.is_some_and(|m| m < 1) {
        problems.push(Problem::new(
            "spec.maxReplicaCount",
            Some(&text(max)),
            "must be at least 1",
            "write 1 or more",
        ));
    }
    if let Some(i) = spec.idle_replica_count.filter(|i| *i >= effective_min) {
        problems.push(Problem::new(
            "spec.idleReplicaCount",
            Some(&i.to_string()),
            format!("must be less than minReplicaCount ({effective_min})"),
            "lower idleReplicaCount or raise minReplicaCount",
        ));
    }
    problems
}

/// At least one trigger, unique names, and no activation target on the add-on.
fn check_triggers(so: &ScaledObject, known: &KnownScalers<'_>) -> Vec<Problem> {
    let triggers = &so.spec.triggers;
    let mut problems = Vec::new();
    if triggers.is_empty() {
        problems.push(Problem::new(
            "spec.triggers",
            None,
            "no triggers",
            "add at least one trigger",
        ));
    }
    let mut names = BTreeSet::new();
    for (i, t) in triggers.iter().enumerate() {
        // KEDA accepts it, the add-on never reads it (its IsActive is `value > 0`:
        // kedify/otel-add-on scaler/handlers.go): we never render one.
        if t.reader(known) == Reader::OtelAddon && t.meta("activationTargetValue").is_some() {
            problems.push(Problem::new(
                format!("spec.triggers[{i}].metadata.activationTargetValue"),
                None,
                "the KEDA OTel add-on never reads an activation target",
                "remove it",
            ));
        }
        if !t.name.is_empty() && !names.insert(t.name.as_str()) {
            problems.push(Problem::new(
                format!("spec.triggers[{i}].name"),
                Some(&t.name),
                "another trigger has the same name",
                "give each trigger a unique name",
            ));
        }
    }
    problems
}

/// KEDA's fallback rule: a non-cpu/memory trigger, of metricType AverageValue before
/// [`FALLBACK_ON_VALUE_SINCE`] (kedacore/keda apis/keda/v1alpha1/scaledobject_types.go,
/// CheckFallbackValid).
fn check_fallback(so: &ScaledObject, keda_version: Version) -> Vec<Problem> {
    let Some(fb) = &so.spec.fallback else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    if fb.failure_threshold < 0 || fb.replicas < 0 {
        problems.push(Problem::new(
            "spec.fallback",
            None,
            "failureThreshold and replicas must be 0 or more",
            "fix the negative value",
        ));
    }
    let any_metric_type = keda_version >= FALLBACK_ON_VALUE_SINCE;
    let valid = match so.scaling_modifiers() {
        Some(m) => any_metric_type || m.metric_type != Some(MetricType::Value),
        None => so.spec.triggers.iter().any(|t| {
            !t.kind.is_resource()
                && (any_metric_type || t.effective_metric_type() == MetricType::AverageValue)
        }),
    };
    if !valid {
        let reason = if any_metric_type {
            "KEDA only falls back for triggers other than cpu/memory".to_string()
        } else {
            format!(
                "KEDA {keda_version} only falls back for triggers (not cpu/memory) with metricType AverageValue (any metricType from {FALLBACK_ON_VALUE_SINCE})"
            )
        };
        problems.push(Problem::new(
            "spec.fallback",
            None,
            reason,
            "give a trigger metricType AverageValue, or remove the fallback",
        ));
    }
    problems
}

/// The add-on's reading of one trigger's metadata: query grammar, a positive decimal target,
/// known operations, clamps it can parse.
pub fn check_otel_trigger(i: usize, t: &Trigger) -> Vec<Problem> {
    let field = |k: &str| format!("spec.triggers[{i}].metadata.{k}");
    let mut problems = Vec::new();
    match t.meta("metricQuery") {
        None => problems.push(Problem::new(
            field("metricQuery"),
            None,
            "missing: the OTel scaler needs a query",
            "add metricQuery such as sum(vllm:num_requests_waiting{deployment=my-model})",
        )),
        Some(q) => {
            if let Err(e) = query::parse_addon_query(q) {
                problems.push(Problem::new(
                    field("metricQuery"),
                    Some(q),
                    e.to_string(),
                    "write op(metric{label=value,...}) with op one of sum|avg|min|max|count and only = matchers",
                ));
            }
        }
    }
    match t.meta("targetValue") {
        None => problems.push(Problem::new(
            field("targetValue"),
            None,
            "missing: the OTel scaler needs a target",
            "add targetValue such as \"5\"",
        )),
        Some(v) => match values::decimal(v) {
            Ok(d) if values::is_zero(&d) => problems.push(Problem::new(
                field("targetValue"),
                Some(v),
                "must be greater than 0",
                "write a positive decimal",
            )),
            Ok(_) => {}
            Err(r) => problems.push(Problem::new(field("targetValue"), Some(v), r.reason, r.fix)),
        },
    }
    if let Some(v) = t.meta("activationTargetValue") {
        if let Err(r) = values::decimal(v) {
            problems.push(Problem::new(
                field("activationTargetValue"),
                Some(v),
                r.reason,
                r.fix,
            ));
        }
    }
    problems.extend(check_otel_operation_and_clamps(&field, t));
    problems
}

fn check_otel_operation_and_clamps(field: &dyn Fn(&str) -> String, t: &Trigger) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(op) = t.meta("operationOverTime") {
        if OperationOverTime::parse(op).is_none() {
            problems.push(Problem::new(
                field("operationOverTime"),
                Some(op),
                "unknown operation",
                format!("write one of {}", OperationOverTime::names()),
            ));
        }
    }
    // The add-on parses the clamps as floats and ignores (with a log line) what does not
    // parse (kedify/otel-add-on util/handler_specific.go).
    for k in ["clampMin", "clampMax"] {
        if let Some(v) = t.meta(k) {
            if !v.trim().parse::<f64>().is_ok_and(f64::is_finite) {
                problems.push(Problem::new(
                    field(k),
                    Some(v),
                    "not a number: the add-on would ignore it",
                    "write a decimal such as \"10\" or \"0.5\"",
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn known(otel_addon: &str) -> KnownScalers<'_> {
        KnownScalers {
            otel_addon,
            builtin: BUILTIN,
        }
    }

    fn check(so: &Value, address: &str, version: Version) -> Vec<Problem> {
        super::check(
            &serde_json::from_value(so.clone()).unwrap(),
            &known(address),
            version,
        )
    }

    fn validate(so: &Value, address: &str) -> Vec<Problem> {
        validate_json(so, &known(address))
    }

    fn so(triggers: Value) -> Value {
        json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "m", "namespace": "llm"},
            "spec": {"scaleTargetRef": {"name": "m"}, "minReplicaCount": 1, "maxReplicaCount": 3,
                     "triggers": triggers}
        })
    }

    fn otel(q: &str) -> Value {
        json!([{"type": "external", "metadata": {
            "scalerAddress": "keda-otel-scaler.keda.svc:4318", "metricQuery": q, "targetValue": "5"}}])
    }

    const ADDR: &str = "keda-otel-scaler.keda.svc:4318";
    const BUILTIN: &str = "llm-autoscale-scaler.llm-autoscale-system.svc:4318";
    const TESTED: Version = crate::keda::TESTED_VERSION;

    #[test]
    fn vllm_names_pass() {
        assert!(
            check(
                &so(otel("sum(vllm:num_requests_running{model_name=x})")),
                ADDR,
                TESTED
            )
            .is_empty()
        );
    }

    /// The gauges latency triggers read (`<histogram>_p90`, `last_one`, seconds) pass.
    #[test]
    fn latency_triggers_pass() {
        let mut s = so(otel(
            "max(vllm:time_to_first_token_seconds_p90{deployment=m,namespace=llm})",
        ));
        s["spec"]["triggers"][0]["metricType"] = json!("Value");
        s["spec"]["triggers"][0]["metadata"]["operationOverTime"] = json!("last_one");
        s["spec"]["triggers"][0]["metadata"]["targetValue"] = json!("0.5");
        assert!(validate(&s, ADDR).is_empty());
        assert!(check(&s, ADDR, TESTED).is_empty());
    }

    #[test]
    fn not_equal_is_denied_with_position() {
        let p = check(&so(otel("sum(vllm:x{a!=b})")), ADDR, TESTED);
        assert_eq!(p.len(), 1);
        assert!(p[0].to_string().contains("column 13"), "{}", p[0]);
        assert!(p[0].key.ends_with("metricQuery"));
    }

    #[test]
    fn non_otel_triggers_are_not_read() {
        let t = json!([{"type": "prometheus", "metadata": {"query": "sum(x{a!=b})", "threshold": "1"}}]);
        assert!(check(&so(t), ADDR, TESTED).is_empty());
        let t = json!([{"type": "external", "metadata": {"scalerAddress": "other:1", "metricQuery": "a!=b"}}]);
        assert!(check(&so(t), ADDR, TESTED).is_empty());
    }

    /// The built-in scaler's triggers are read as it reads them; an address that merely
    /// contains "otel" is nobody's this product knows.
    #[test]
    fn triggers_are_told_apart_by_configured_address() {
        let builtin = |meta: Value| json!([{"type": "external", "metadata": meta}]);
        let good = builtin(json!({
            "scalerAddress": "llm-autoscale-scaler.llm-autoscale-system:4318",
            "metricQuery": "sum(vllm:num_requests_waiting{deployment=m,namespace=llm})",
            "window": "60s", "targetValue": "5", "activationTargetValue": "1"}));
        assert!(validate(&so(good), ADDR).is_empty());
        let bad = builtin(json!({
            "scalerAddress": BUILTIN, "metricQuery": "sum(x{a!=b})", "window": "soon"}));
        let keys: Vec<String> = validate(&so(bad), ADDR)
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(
            keys,
            [
                "spec.triggers[0].metadata.metricQuery",
                "spec.triggers[0].metadata.window",
                "spec.triggers[0].metadata.targetValue"
            ]
        );
        // The add-on's rule against activation targets is not the built-in scaler's.
        let t = builtin(json!({"scalerAddress": BUILTIN, "metricQuery": "sum(x)",
            "targetValue": "5", "activationTargetValue": "2"}));
        assert!(check(&so(t), ADDR, TESTED).is_empty());
        let t = json!([{"type": "external", "metadata": {"scalerAddress": "otel-collector.monitoring:4318", "metricQuery": "a!=b"}}]);
        assert!(validate(&so(t), ADDR).is_empty());
    }

    #[test]
    fn kedify_otel_and_custom_addresses_are_read() {
        let t = json!([{"type": "kedify-otel", "metadata": {"metricQuery": "x{a=~b}", "targetValue": "1"}}]);
        assert_eq!(check(&so(t), ADDR, TESTED).len(), 1);
        let t = json!([{"type": "external", "metadata": {"scalerAddress": "scaler.monitoring:4318", "metricQuery": "x{a=~b}", "targetValue": "1"}}]);
        assert_eq!(check(&so(t), "scaler.monitoring:4318", TESTED).len(), 1);
    }

    #[test]
    fn target_values_must_be_decimals() {
        let mut s = so(otel("x"));
        s["spec"]["triggers"][0]["metadata"]["targetValue"] = json!("600m");
        let p = check(&s, ADDR, TESTED);
        assert!(p[0].fix.contains("0.6"), "{}", p[0]);
        s["spec"]["triggers"][0]["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("targetValue");
        assert!(check(&s, ADDR, TESTED)[0].reason.contains("missing"));
    }

    #[test]
    fn keda_static_rules() {
        let mut s = so(otel("x"));
        s["spec"]["minReplicaCount"] = json!(5);
        assert!(
            check(&s, ADDR, TESTED)[0]
                .reason
                .contains("greater than maxReplicaCount")
        );

        let mut s = so(json!([
            {"type": "prometheus", "name": "q", "metadata": {}},
            {"type": "prometheus", "name": "q", "metadata": {}}
        ]));
        assert!(check(&s, ADDR, TESTED)[0].reason.contains("same name"));

        s["spec"]["triggers"] =
            json!([{"type": "prometheus", "metricType": "Value", "metadata": {}}]);
        s["spec"]["fallback"] = json!({"failureThreshold": 3, "replicas": 2});
        assert!(
            check(&s, ADDR, Version(2, 17, 0))[0]
                .reason
                .contains("AverageValue")
        );
        assert!(check(&s, ADDR, Version(2, 18, 0)).is_empty());
        s["spec"]["triggers"] =
            json!([{"type": "cpu", "metricType": "Utilization", "metadata": {}}]);
        assert!(check(&s, ADDR, TESTED)[0].reason.contains("cpu/memory"));

        let mut s = so(otel("x"));
        s["metadata"]["name"] = json!("a".repeat(60));
        assert!(check(&s, ADDR, TESTED)[0].reason.contains("keda-hpa-"));
        s["spec"]["advanced"] = json!({"horizontalPodAutoscalerConfig": {"name": "short"}});
        assert!(check(&s, ADDR, TESTED).is_empty());
        s["metadata"]["name"] = json!("a".repeat(64));
        assert!(check(&s, ADDR, TESTED)[0].reason.contains("label value"));

        let mut s = so(otel("x"));
        s["spec"]["idleReplicaCount"] = json!(1);
        assert!(check(&s, ADDR, TESTED)[0].key.contains("idleReplicaCount"));
    }

    #[test]
    fn validate_leaves_keda_its_own_rules() {
        // KEDA's webhook judges these; /validate must never deny what KEDA accepts.
        let mut s = so(json!([
            {"type": "prometheus", "name": "q", "metricType": "Value", "metadata": {}},
            {"type": "prometheus", "name": "q", "metadata": {}}
        ]));
        s["spec"]["fallback"] = json!({"failureThreshold": 3, "replicas": 2});
        s["spec"]["minReplicaCount"] = json!(9);
        assert!(validate(&s, ADDR).is_empty());
        assert!(!check(&s, ADDR, TESTED).is_empty());
        assert_eq!(validate(&so(otel("sum(x{a!=b})")), ADDR).len(), 1);
        // Accepted by KEDA and harmless, but never part of what this product renders.
        let mut s = so(otel("x"));
        s["spec"]["triggers"][0]["metadata"]["activationTargetValue"] = json!("2");
        assert!(validate(&s, ADDR).is_empty());
        assert!(check(&s, ADDR, TESTED)[0].reason.contains("never reads"));
    }

    #[test]
    fn clamps_are_decimals_as_the_add_on_parses_them() {
        let mut s = so(otel("x"));
        s["spec"]["triggers"][0]["metadata"]["clampMin"] = json!("0.5");
        s["spec"]["triggers"][0]["metadata"]["clampMax"] = json!("12");
        assert!(validate(&s, ADDR).is_empty());
        s["spec"]["triggers"][0]["metadata"]["clampMax"] = json!("ten");
        let p = validate(&s, ADDR);
        assert!(
            p[0].key.ends_with("clampMax") && p[0].fix.contains("0.5"),
            "{}",
            p[0]
        );
    }

    #[test]
    fn garbage_does_not_panic() {
        for v in [
            json!(null),
            json!({}),
            json!({"spec": {"triggers": "x"}}),
            json!({"spec": {"triggers": [1, null]}}),
        ] {
            assert!(validate(&v, ADDR).is_empty());
        }
    }
}
