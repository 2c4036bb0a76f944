//! The KEDA ScaledObject (keda.sh/v1alpha1) for an [`AutoscalingSpec`].
//!
//! Only fields of the CRD are emitted, metadata values are strings, `pollingInterval` /
//! `cooldownPeriod` / `initialCooldownPeriod` only when KEDA uses them (scale to zero), no
//! empty policy lists, names short enough for KEDA's HPA.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::interceptor_route;
use crate::annotations::{AutoscalingSpec, HTTP_WAKE_TRIGGER, TriggerQuery};

pub const API_VERSION: &str = "keda.sh/v1alpha1";
pub const KIND: &str = "ScaledObject";
/// Label on every ScaledObject this product manages.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "llm-autoscale-webhook";
/// KEDA names the HPA `keda-hpa-<name>`; a label value holds at most 63 characters.
pub const MAX_NAME_WITH_DEFAULT_HPA: usize = 63 - "keda-hpa-".len();

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaledObject {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: ScaledObjectSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub name: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaledObjectSpec {
    pub scale_target_ref: ScaleTargetRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling_interval: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_period: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_cooldown_period: Option<i32>,
    pub min_replica_count: i32,
    pub max_replica_count: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced: Option<Advanced>,
    pub triggers: Vec<Trigger>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fallback {
    pub failure_threshold: i32,
    pub replicas: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Advanced {
    pub horizontal_pod_autoscaler_config: HpaConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    #[serde(rename = "type")]
    pub type_: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// A name of at most `max` characters: the name itself, or a prefix plus a short hash.
pub fn bounded_name(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let digest = Sha256::digest(name.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let keep = max.saturating_sub(hash.len() + 1);
    // A mutating webhook sees names before the apiserver validates them: cut on a character
    // boundary, never inside a multi-byte character.
    let prefix: String = name
        .char_indices()
        .take_while(|(i, c)| i + c.len_utf8() <= keep)
        .map(|(_, c)| c)
        .collect();
    format!("{}-{hash}", prefix.trim_end_matches(['-', '.']))
}

/// Renders the ScaledObject. `extra_labels` are copied onto it (e.g. KServe's isvc label).
pub fn render(spec: &AutoscalingSpec, extra_labels: &BTreeMap<String, String>) -> ScaledObject {
    let name = bounded_name(&spec.target_deployment, 63);
    let hpa_name = spec.hpa_name.clone().or_else(|| {
        (name.len() > MAX_NAME_WITH_DEFAULT_HPA).then(|| {
            format!(
                "keda-hpa-{}",
                bounded_name(&name, MAX_NAME_WITH_DEFAULT_HPA)
            )
        })
    });
    let rules = |seconds: Option<i32>| {
        seconds.map(|s| HPAScalingRules {
            stabilization_window_seconds: Some(s),
            ..HPAScalingRules::default()
        })
    };
    let behavior = (spec.scale_up_stabilization.is_some()
        || spec.scale_down_stabilization.is_some())
    .then(|| HorizontalPodAutoscalerBehavior {
        scale_up: rules(spec.scale_up_stabilization),
        scale_down: rules(spec.scale_down_stabilization),
    });
    let advanced = (hpa_name.is_some() || behavior.is_some()).then_some(Advanced {
        horizontal_pod_autoscaler_config: HpaConfig {
            name: hpa_name,
            behavior,
        },
    });
    let mut labels = extra_labels.clone();
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());

    ScaledObject {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: Metadata {
            name,
            namespace: spec.namespace.clone(),
            labels,
        },
        spec: ScaledObjectSpec {
            scale_target_ref: ScaleTargetRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: spec.target_deployment.clone(),
            },
            polling_interval: spec.polling_interval,
            cooldown_period: spec.cooldown_period,
            initial_cooldown_period: spec.initial_cooldown_period,
            min_replica_count: spec.min_replicas,
            max_replica_count: spec.max_replicas,
            fallback: spec.fallback.map(|f| Fallback {
                failure_threshold: f.failure_threshold,
                replicas: f.replicas,
            }),
            advanced,
            triggers: spec
                .triggers
                .iter()
                .map(|t| trigger(spec, t))
                .chain(http_wake_trigger(spec))
                .collect(),
        },
    }
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
        type_: "external-push".into(),
        name: HTTP_WAKE_TRIGGER.into(),
        metric_type: None,
        metadata,
    })
}

fn trigger(spec: &AutoscalingSpec, t: &crate::annotations::TriggerSpec) -> Trigger {
    let mut metadata = BTreeMap::new();
    let mut put = |k: &str, v: Option<&String>| {
        if let Some(v) = v {
            metadata.insert(k.to_string(), v.clone());
        }
    };
    let type_ = match &t.query {
        TriggerQuery::Otel(q) => {
            put("scalerAddress", Some(&spec.scaler_address));
            put("metricQuery", Some(&q.to_string()));
            put("targetValue", t.target.as_ref());
            put("activationTargetValue", t.activation_target.as_ref());
            put("operationOverTime", t.operation_over_time.as_ref());
            "external"
        }
        TriggerQuery::Prometheus(q) => {
            put("serverAddress", Some(&spec.prometheus_address));
            put("query", Some(q));
            put("threshold", t.target.as_ref());
            put("activationThreshold", t.activation_target.as_ref());
            "prometheus"
        }
        TriggerQuery::External(extra) => {
            for (k, v) in extra {
                put(k, Some(v));
            }
            put("scalerAddress", Some(&spec.scaler_address));
            "external"
        }
    };
    Trigger {
        type_: type_.into(),
        name: t.name.clone(),
        metric_type: Some(t.metric_type.as_str().into()),
        metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_stay() {
        assert_eq!(bounded_name("qwen", 54), "qwen");
        let long = "a".repeat(54);
        assert_eq!(bounded_name(&long, 54), long);
    }

    #[test]
    fn multi_byte_characters_at_the_cut_do_not_panic() {
        for pad in 0..4 {
            let name = format!("{}{}", "a".repeat(50 + pad), "é".repeat(10));
            let cut = bounded_name(&name, 54);
            assert!(cut.len() <= 54, "{cut}");
            assert!(cut.starts_with(&"a".repeat(45)), "{cut}");
        }
        assert_eq!(bounded_name(&"ü".repeat(40), 54).len(), 54 - 1);
    }

    #[test]
    fn long_names_are_cut_with_a_stable_hash() {
        let long = format!("{}-x", "llama-3-1-70b-instruct-vllm-predictor".repeat(3));
        let a = bounded_name(&long, 54);
        assert!(a.len() <= 54 && a.len() > 40, "{a}");
        assert_eq!(a, bounded_name(&long, 54));
        assert_ne!(a, bounded_name(&format!("{long}y"), 54));
        assert!(!a.contains("--"));
    }
}
