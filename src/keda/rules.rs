//! Two layers of rules for a ScaledObject.
//!
//! - [`validate`], what the `/validate` webhook enforces on every ScaledObject of the cluster:
//!   only what KEDA cannot check itself, the KEDA OTel add-on's reading of the triggers aimed
//!   at it (query grammar, decimal targets, known operations). It never denies a ScaledObject
//!   the installed KEDA accepts for KEDA's own reasons: KEDA's webhook does that.
//! - [`check`], the strict check of what this product renders: KEDA's static rules for the
//!   configured KEDA version, plus the add-on's.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::problem::Problem;
use crate::query::{self, OPERATIONS_OVER_TIME};
use crate::render::scaled_object::MAX_NAME_WITH_DEFAULT_HPA;
use crate::values;
use crate::version::Version;

use super::FALLBACK_ON_VALUE_SINCE;

/// Is this trigger read by the KEDA OTel add-on? `kedify-otel` always; `external` and
/// `external-push` when their `scalerAddress` is the configured add-on address or names
/// `otel` (the add-on's own admission policy uses the same test).
pub fn is_otel_trigger(trigger: &Value, otel_scaler_address: &str) -> bool {
    let type_ = trigger
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if type_ == "kedify-otel" {
        return true;
    }
    if !matches!(type_, "external" | "external-push") {
        return false;
    }
    let address = trigger
        .pointer("/metadata/scalerAddress")
        .and_then(Value::as_str)
        .unwrap_or_default();
    !address.is_empty() && (address == otel_scaler_address || address.contains("otel"))
}

fn int_at(so: &Value, pointer: &str) -> Option<i64> {
    so.pointer(pointer).and_then(Value::as_i64)
}

/// What the `/validate` webhook denies: problems in triggers read by the KEDA OTel add-on.
pub fn validate(so: &Value, otel_scaler_address: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, t) in triggers(so).iter().enumerate() {
        if is_otel_trigger(t, otel_scaler_address) {
            check_otel_trigger(i, t, &mut problems);
        }
    }
    problems
}

fn triggers(so: &Value) -> &[Value] {
    so.pointer("/spec/triggers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Every problem with a ScaledObject for KEDA `keda_version` (empty: valid).
pub fn check(so: &Value, otel_scaler_address: &str, keda_version: Version) -> Vec<Problem> {
    let mut problems = validate(so, otel_scaler_address);
    let name = so
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();

    if name.len() > 63 {
        problems.push(Problem::new(
            "metadata.name",
            Some(name),
            format!(
                "{} characters: KEDA uses the name as a label value (at most 63)",
                name.len()
            ),
            "use a shorter name",
        ));
    }
    let custom_hpa = so
        .pointer("/spec/advanced/horizontalPodAutoscalerConfig/name")
        .and_then(Value::as_str);
    match custom_hpa {
        Some(h) if h.len() > 63 => problems.push(Problem::new(
            "spec.advanced.horizontalPodAutoscalerConfig.name",
            Some(h),
            "longer than 63 characters",
            "use a shorter HPA name",
        )),
        None if name.len() > MAX_NAME_WITH_DEFAULT_HPA && name.len() <= 63 => {
            problems.push(Problem::new(
                "metadata.name",
                Some(name),
                format!("the HPA KEDA derives, keda-hpa-{name}, is longer than 63 characters"),
                "set spec.advanced.horizontalPodAutoscalerConfig.name or shorten the name",
            ))
        }
        _ => {}
    }

    let min = int_at(so, "/spec/minReplicaCount");
    let max = int_at(so, "/spec/maxReplicaCount");
    let idle = int_at(so, "/spec/idleReplicaCount");
    let effective_min = min.map(|m| m.max(1)).unwrap_or(0);
    let effective_max = max.unwrap_or(100);
    if min.is_some_and(|m| m < 0) {
        problems.push(Problem::new(
            "spec.minReplicaCount",
            Some(&min.unwrap_or_default().to_string()),
            "negative",
            "write 0 or more",
        ));
    }
    if effective_min > effective_max {
        problems.push(Problem::new(
            "spec.minReplicaCount",
            Some(&min.unwrap_or_default().to_string()),
            format!("greater than maxReplicaCount ({effective_max})"),
            "make minReplicaCount ≤ maxReplicaCount",
        ));
    }
    if max.is_some_and(|m| m < 1) {
        problems.push(Problem::new(
            "spec.maxReplicaCount",
            Some(&max.unwrap_or_default().to_string()),
            "must be at least 1",
            "write 1 or more",
        ));
    }
    if let Some(i) = idle {
        if i >= effective_min {
            problems.push(Problem::new(
                "spec.idleReplicaCount",
                Some(&i.to_string()),
                format!("must be less than minReplicaCount ({effective_min})"),
                "lower idleReplicaCount or raise minReplicaCount",
            ));
        }
    }

    let triggers = triggers(so);
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
        if is_otel_trigger(t, otel_scaler_address)
            && t.pointer("/metadata/activationTargetValue").is_some()
        {
            problems.push(Problem::new(
                format!("spec.triggers[{i}].metadata.activationTargetValue"),
                None,
                "the KEDA OTel add-on never reads an activation target",
                "remove it",
            ));
        }
        if let Some(n) = t
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            if !names.insert(n.to_string()) {
                problems.push(Problem::new(
                    format!("spec.triggers[{i}].name"),
                    Some(n),
                    "another trigger has the same name",
                    "give each trigger a unique name",
                ));
            }
        }
    }
    check_fallback(so, triggers, keda_version, &mut problems);
    problems
}

/// KEDA's fallback rule: a non-cpu/memory trigger, of metricType AverageValue before
/// [`FALLBACK_ON_VALUE_SINCE`] (kedacore/keda apis/keda/v1alpha1/scaledobject_types.go,
/// CheckFallbackValid).
fn check_fallback(
    so: &Value,
    triggers: &[Value],
    keda_version: Version,
    problems: &mut Vec<Problem>,
) {
    let Some(fb) = so.pointer("/spec/fallback") else {
        return;
    };
    let neg = |k: &str| fb.get(k).and_then(Value::as_i64).is_some_and(|v| v < 0);
    if neg("failureThreshold") || neg("replicas") {
        problems.push(Problem::new(
            "spec.fallback",
            None,
            "failureThreshold and replicas must be 0 or more",
            "fix the negative value",
        ));
    }
    let modifiers_type = so
        .pointer("/spec/advanced/scalingModifiers/metricType")
        .and_then(Value::as_str);
    let uses_modifiers = so
        .pointer("/spec/advanced/scalingModifiers/formula")
        .is_some();
    let any_metric_type = keda_version >= FALLBACK_ON_VALUE_SINCE;
    let valid = if uses_modifiers {
        any_metric_type || modifiers_type != Some("Value")
    } else {
        triggers.iter().any(|t| {
            let ty = t.get("type").and_then(Value::as_str).unwrap_or_default();
            let mt = t
                .get("metricType")
                .and_then(Value::as_str)
                .unwrap_or("AverageValue");
            !matches!(ty, "cpu" | "memory") && (any_metric_type || mt == "AverageValue")
        })
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
}

fn check_otel_trigger(i: usize, t: &Value, problems: &mut Vec<Problem>) {
    let field = |k: &str| format!("spec.triggers[{i}].metadata.{k}");
    let meta = |k: &str| t.pointer(&format!("/metadata/{k}")).and_then(Value::as_str);
    match meta("metricQuery") {
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
    match meta("targetValue") {
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
    if let Some(v) = meta("activationTargetValue") {
        if let Err(r) = values::decimal(v) {
            problems.push(Problem::new(
                field("activationTargetValue"),
                Some(v),
                r.reason,
                r.fix,
            ));
        }
    }
    if let Some(op) = meta("operationOverTime") {
        if !OPERATIONS_OVER_TIME.contains(&op) {
            problems.push(Problem::new(
                field("operationOverTime"),
                Some(op),
                "unknown operation",
                format!("write one of {}", OPERATIONS_OVER_TIME.join(", ")),
            ));
        }
    }
    // The add-on parses the clamps as floats and ignores (with a log line) what does not
    // parse (kedify/otel-add-on util/handler_specific.go).
    for k in ["clampMin", "clampMax"] {
        if let Some(v) = meta(k) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
            let _ = check(&v, ADDR, TESTED);
            let _ = validate(&v, ADDR);
        }
    }
}
