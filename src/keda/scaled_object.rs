//! The KEDA ScaledObject (keda.sh/v1alpha1), typed: the one model that rendering, `/validate`,
//! the reconciler and the CLI share.
//!
//! Fields follow kedacore/keda apis/keda/v1alpha1/scaledobject_types.go (`ScaledObjectSpec`,
//! `Fallback`, `AdvancedConfig`, `ScalingModifiers`). Only what this product renders or
//! checks is modelled; unknown fields are ignored when reading, and nothing absent is
//! written. Every value the CRD admits deserialises, so `/validate` can read any ScaledObject
//! the apiserver lets through.

use std::borrow::Cow;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::string_enum::string_enum;
use super::trigger::{MetricType, Trigger};

pub const GROUP: &str = "keda.sh";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "keda.sh/v1alpha1";
pub const KIND: &str = "ScaledObject";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaledObject {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ScaledObjectSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaledObjectSpec {
    #[serde(default)]
    pub scale_target_ref: ScaleTargetRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling_interval: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_period: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_cooldown_period: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_replica_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replica_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replica_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced: Option<Advanced>,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fallback {
    pub failure_threshold: i32,
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<FallbackBehavior>,
}

string_enum! {
    /// `spec.fallback.behavior`: which replica count KEDA keeps while the scaler fails
    /// (`FallbackBehavior*` constants of scaledobject_types.go; `static` is the default).
    FallbackBehavior {
        "`fallback.replicas`."
        Static => "static",
        "The current replica count."
        CurrentReplicas => "currentReplicas",
        "The current count when it is above `fallback.replicas`, else `fallback.replicas`."
        CurrentReplicasIfHigher => "currentReplicasIfHigher",
        "The current count when it is below `fallback.replicas`, else `fallback.replicas`."
        CurrentReplicasIfLower => "currentReplicasIfLower",
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Advanced {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizontal_pod_autoscaler_config: Option<HpaConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_to_original_replica_count: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_modifiers: Option<ScalingModifiers>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingModifiers {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub formula: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<MetricType>,
}

impl ScaledObject {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The HPA name set in `advanced.horizontalPodAutoscalerConfig.name`, if any.
    pub fn custom_hpa_name(&self) -> Option<&str> {
        self.spec
            .advanced
            .as_ref()?
            .horizontal_pod_autoscaler_config
            .as_ref()?
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
    }

    /// The scaling modifiers, when a formula is set.
    pub fn scaling_modifiers(&self) -> Option<&ScalingModifiers> {
        self.spec
            .advanced
            .as_ref()?
            .scaling_modifiers
            .as_ref()
            .filter(|m| !m.formula.is_empty())
    }
}

/// Lets the reconciler use `Api<ScaledObject>` (reads, server-side apply, reflector stores).
impl kube::Resource for ScaledObject {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(KIND)
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(GROUP)
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed(VERSION)
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("scaledobjects")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keda::trigger::TriggerKind;

    #[test]
    fn reads_a_scaled_object_from_keda_docs_with_fields_it_does_not_model() {
        let so: ScaledObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "m", "namespace": "llm", "generation": 3},
            "spec": {
                "scaleTargetRef": {"name": "m", "envSourceContainerName": "c"},
                "minReplicaCount": 0, "maxReplicaCount": 4,
                "fallback": {"failureThreshold": 3, "replicas": 2, "behavior": "currentReplicasIfHigher"},
                "advanced": {"restoreToOriginalReplicaCount": true,
                             "scalingModifiers": {"formula": "a + b", "target": "2", "metricType": "Value"}},
                "triggers": [{"type": "kafka", "metadata": {"topic": "t"}, "authenticationRef": {"name": "x"}}]
            },
            "status": {"hpaName": "keda-hpa-m"}
        }))
        .unwrap();
        assert_eq!(so.name(), "m");
        assert_eq!(so.spec.triggers[0].kind, TriggerKind::Other("kafka".into()));
        assert_eq!(
            so.spec.fallback.as_ref().and_then(|f| f.behavior.clone()),
            Some(FallbackBehavior::CurrentReplicasIfHigher)
        );
        assert_eq!(
            so.scaling_modifiers().map(|m| m.formula.as_str()),
            Some("a + b")
        );
        assert_eq!(so.custom_hpa_name(), None);
    }

    #[test]
    fn fallback_behaviours_round_trip() {
        for s in [
            "static",
            "currentReplicas",
            "currentReplicasIfHigher",
            "currentReplicasIfLower",
            "scalingModifiers",
        ] {
            assert_eq!(String::from(FallbackBehavior::from(s.to_string())), s);
        }
    }
}
