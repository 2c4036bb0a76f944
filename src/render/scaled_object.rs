//! The KEDA ScaledObject (keda.sh/v1alpha1) for an [`AutoscalingSpec`].
//!
//! Only fields of the CRD are emitted, metadata values are strings, `pollingInterval` /
//! `cooldownPeriod` / `initialCooldownPeriod` only when KEDA uses them (scale to zero), no
//! empty policy lists, names short enough for KEDA's HPA.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;

use super::interceptor_route;
use crate::annotations::custom_headers;
use crate::annotations::{AutoscalingSpec, HTTP_WAKE_TRIGGER, TriggerQuery, TriggerSpec};
use crate::keda::names::{self, MAX_NAME, bounded_name, managed_metadata};
use crate::keda::scaled_object::{
    API_VERSION, Advanced, Fallback, HpaConfig, KIND, ScaleTargetRef, ScaledObject,
    ScaledObjectSpec,
};
use crate::keda::trigger::{AuthenticationRef, Trigger, TriggerKind};

/// Renders the ScaledObject. `extra_labels` are copied onto it (e.g. KServe's isvc label).
pub fn render(spec: &AutoscalingSpec, extra_labels: &BTreeMap<String, String>) -> ScaledObject {
    let name = bounded_name(&spec.target_deployment, MAX_NAME);
    let hpa_name = spec.hpa_name.clone().or_else(|| names::hpa_name_for(&name));
    ScaledObject {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: managed_metadata(name, &spec.namespace, extra_labels),
        spec: ScaledObjectSpec {
            scale_target_ref: ScaleTargetRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: spec.target_deployment.clone(),
            },
            polling_interval: spec.polling_interval,
            cooldown_period: spec.cooldown_period,
            initial_cooldown_period: spec.initial_cooldown_period,
            idle_replica_count: spec.idle_replicas,
            min_replica_count: Some(spec.min_replicas),
            max_replica_count: Some(spec.max_replicas),
            fallback: spec.fallback.as_ref().map(|f| Fallback {
                failure_threshold: f.failure_threshold,
                replicas: f.replicas,
                behavior: f.behavior.clone(),
            }),
            advanced: advanced(spec, hpa_name),
            triggers: spec
                .triggers
                .iter()
                .map(|t| trigger(spec, t))
                .chain(http_wake_trigger(spec))
                .collect(),
        },
    }
}

/// `advanced`: the HPA's name when KEDA's default would not fit, its scaling behaviour, and
/// `restoreToOriginalReplicaCount`; `None` when there is none of them.
fn advanced(spec: &AutoscalingSpec, hpa_name: Option<String>) -> Option<Advanced> {
    let behavior = (spec.scale_up.is_some() || spec.scale_down.is_some()).then(|| {
        HorizontalPodAutoscalerBehavior {
            scale_up: spec.scale_up.clone(),
            scale_down: spec.scale_down.clone(),
        }
    });
    let hpa = (hpa_name.is_some() || behavior.is_some()).then_some(HpaConfig {
        name: hpa_name,
        behavior,
    });
    let restore = spec.restore_to_original_replicas;
    (hpa.is_some() || restore.is_some()).then_some(Advanced {
        horizontal_pod_autoscaler_config: hpa,
        restore_to_original_replica_count: restore,
        ..Advanced::default()
    })
}

/// The `external-push` trigger of HTTP wake: KEDA asks the HTTP add-on's external scaler, which
/// answers for the InterceptorRoute named in `interceptorRoute` (in the ScaledObject's
/// namespace) and streams "active" as soon as the interceptor holds a request. Keys as read by
/// kedacore/http-add-on v0.15.0 `scaler/handlers.go` (`GetMetricSpec`) with the names of
/// `pkg/k8s/scaledobject.go` (`ScalerAddressKey`, `InterceptorRouteKey`).
fn http_wake_trigger(spec: &AutoscalingSpec) -> Option<Trigger> {
    let wake = spec.http_wake.as_ref()?;
    let metadata = BTreeMap::from([
        ("scalerAddress".to_string(), wake.scaler_address.clone()),
        (
            "interceptorRoute".to_string(),
            interceptor_route::name_for(&spec.target_deployment),
        ),
    ]);
    Some(Trigger {
        kind: TriggerKind::ExternalPush,
        name: HTTP_WAKE_TRIGGER.into(),
        metric_type: None,
        metadata,
        authentication_ref: None,
    })
}

fn trigger(spec: &AutoscalingSpec, t: &TriggerSpec) -> Trigger {
    let (kind, metadata) = match &t.query {
        TriggerQuery::Otel(q) => (TriggerKind::External, otel_metadata(spec, t, q)),
        TriggerQuery::Builtin {
            query,
            window_seconds,
        } => (
            // Not `external-push`: KEDA acts on a pushed `true` only to activate from zero or
            // the idle count (kedacore/keda v2.21.0 pkg/scaling/scale_handler.go,
            // `startPushScalers`), and there the workload has no pods, so the built-in
            // scaler has nothing to push; its activity counts when KEDA polls (deactivation).
            TriggerKind::External,
            builtin_metadata(spec, t, query, *window_seconds),
        ),
        TriggerQuery::Prometheus(q) => (TriggerKind::Prometheus, prometheus_metadata(spec, t, q)),
        TriggerQuery::External(extra) => {
            let mut metadata = extra.clone();
            metadata.insert("scalerAddress".into(), spec.scaler_address.clone());
            let kind = if spec.external_push {
                TriggerKind::ExternalPush
            } else {
                TriggerKind::External
            };
            (kind, metadata)
        }
    };
    let authentication_ref = match &t.query {
        TriggerQuery::Prometheus(_) => spec.prometheus.auth.as_ref().map(|a| AuthenticationRef {
            name: a.name.clone(),
            kind: (a.kind != "TriggerAuthentication").then(|| a.kind.clone()),
        }),
        _ => None,
    };
    Trigger {
        kind,
        name: t.name.clone(),
        metric_type: Some(t.metric_type.clone()),
        metadata,
        authentication_ref,
    }
}

/// The metadata entries whose value is set.
fn entries<const N: usize>(pairs: [(&str, Option<String>); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), v?)))
        .collect()
}

/// What the KEDA OTel add-on reads (kedify/otel-add-on util/handler_specific.go).
fn otel_metadata(
    spec: &AutoscalingSpec,
    t: &TriggerSpec,
    q: &crate::query::AddonQuery,
) -> BTreeMap<String, String> {
    entries([
        ("scalerAddress", Some(spec.scaler_address.clone())),
        ("metricQuery", Some(q.to_string())),
        ("targetValue", t.target.clone()),
        ("activationTargetValue", t.activation_target.clone()),
        (
            "operationOverTime",
            t.operation_over_time.map(|o| o.as_str().to_string()),
        ),
    ])
}

/// What the built-in scaler reads ([`crate::scaler::query`]).
fn builtin_metadata(
    spec: &AutoscalingSpec,
    t: &TriggerSpec,
    q: &crate::query::AddonQuery,
    window_seconds: i32,
) -> BTreeMap<String, String> {
    use crate::scaler::query as keys;
    let mut metadata = entries([
        ("scalerAddress", Some(spec.scaler_address.clone())),
        (keys::METRIC_QUERY, Some(q.to_string())),
        (
            keys::OPERATION_OVER_TIME,
            t.operation_over_time.map(|o| o.as_str().to_string()),
        ),
        (
            keys::PERCENTILE,
            t.latency
                .as_ref()
                .map(|l| l.percentile.as_str().to_string()),
        ),
        (keys::WINDOW, Some(format!("{window_seconds}s"))),
        (keys::TARGET_VALUE, t.target.clone()),
        (keys::ACTIVATION_TARGET_VALUE, t.activation_target.clone()),
    ]);
    metadata.extend(super::scaler_tls::trigger_metadata(spec.scaler_tls));
    metadata
}

/// What KEDA's prometheus scaler reads (pkg/scalers/prometheus_scaler.go).
fn prometheus_metadata(
    spec: &AutoscalingSpec,
    t: &TriggerSpec,
    q: &str,
) -> BTreeMap<String, String> {
    let p = &spec.prometheus;
    let text = |b: Option<bool>| b.map(|b| b.to_string());
    entries([
        ("serverAddress", Some(spec.prometheus_address.clone())),
        ("query", Some(q.to_string())),
        ("threshold", t.target.clone()),
        ("activationThreshold", t.activation_target.clone()),
        ("unsafeSsl", text(p.unsafe_ssl)),
        ("ignoreNullValues", text(p.ignore_null_values)),
        ("authModes", p.auth_modes.clone()),
        ("customHeaders", custom_headers(&p.headers)),
    ])
}
