//! A ScaledObject trigger (`spec.triggers[]`): its kind, metric type and metadata, typed.
//!
//! Every string the CRD admits deserialises: kinds and metric types this product does not
//! know are kept as [`TriggerKind::Other`] and [`MetricType::Other`], so `/validate` can read
//! any ScaledObject of the cluster.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::string_enum::string_enum;

string_enum! {
    /// `spec.triggers[].type`.
    TriggerKind {
        "An external scaler (gRPC `GetMetrics`), e.g. the KEDA OTel add-on."
        External => "external",
        "An external scaler that also streams activity (`StreamIsActive`)."
        ExternalPush => "external-push",
        "KEDA's Prometheus scaler."
        Prometheus => "prometheus",
        "The KEDA OTel add-on's own trigger name in Kedify's distribution."
        KedifyOtel => "kedify-otel",
        "The CPU resource metric."
        Cpu => "cpu",
        "The memory resource metric."
        Memory => "memory",
    }
}

impl TriggerKind {
    /// An external scaler, polled or pushing.
    pub fn is_external(&self) -> bool {
        matches!(self, TriggerKind::External | TriggerKind::ExternalPush)
    }

    /// A resource-metric trigger (KEDA never falls back for these).
    pub fn is_resource(&self) -> bool {
        matches!(self, TriggerKind::Cpu | TriggerKind::Memory)
    }
}

string_enum! {
    /// `metricType` of a trigger: how the HPA compares the value with the target. KEDA's
    /// default is `AverageValue` (kedacore/keda apis/keda/v1alpha1/scaledobject_types.go,
    /// `MetricType` of `ScaleTriggers`, and pkg/scalers/scaler.go `GetMetricTargetType`).
    MetricType {
        "The value divided by the replica count is compared with the target."
        AverageValue => "AverageValue",
        "The value itself is compared with the target."
        Value => "Value",
        "cpu/memory only: percent of the request."
        Utilization => "Utilization",
    }
}

/// The KEDA OTel add-on's `operationOverTime`: how the points it holds for a series become one
/// value (kedify/otel-add-on types/types.go, `OperationOverTime` and its constants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationOverTime {
    LastOne,
    Avg,
    Min,
    Max,
    Rate,
    Count,
}

impl OperationOverTime {
    pub const ALL: [OperationOverTime; 6] = [
        OperationOverTime::LastOne,
        OperationOverTime::Avg,
        OperationOverTime::Min,
        OperationOverTime::Max,
        OperationOverTime::Rate,
        OperationOverTime::Count,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OperationOverTime::LastOne => "last_one",
            OperationOverTime::Avg => "avg",
            OperationOverTime::Min => "min",
            OperationOverTime::Max => "max",
            OperationOverTime::Rate => "rate",
            OperationOverTime::Count => "count",
        }
    }

    pub fn parse(s: &str) -> Option<OperationOverTime> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// "last_one, avg, ..." for messages.
    pub fn names() -> String {
        Self::ALL.map(OperationOverTime::as_str).join(", ")
    }
}

impl fmt::Display for OperationOverTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `spec.triggers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    #[serde(rename = "type")]
    pub kind: TriggerKind,
    /// Unique within the ScaledObject when set; optional in KEDA.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_type: Option<MetricType>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_ref: Option<AuthenticationRef>,
}

/// `authenticationRef`: the TriggerAuthentication (or ClusterTriggerAuthentication) holding
/// the trigger's credentials (apis/keda/v1alpha1/scaletriggers_types.go, `AuthenticationRef`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationRef {
    pub name: String,
    /// `TriggerAuthentication` (KEDA's default when absent) or `ClusterTriggerAuthentication`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl Trigger {
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// The metric type KEDA uses: the written one, else `AverageValue`.
    pub fn effective_metric_type(&self) -> MetricType {
        self.metric_type.clone().unwrap_or_default()
    }

    /// Is this trigger read by the KEDA OTel add-on? `kedify-otel` always; `external` and
    /// `external-push` when their `scalerAddress` is the configured add-on address or names
    /// `otel` (the add-on's own admission policy uses the same test).
    pub fn is_otel_addon(&self, otel_scaler_address: &str) -> bool {
        match self.kind {
            TriggerKind::KedifyOtel => true,
            TriggerKind::External | TriggerKind::ExternalPush => {
                let address = self.meta("scalerAddress").unwrap_or_default();
                !address.is_empty() && (address == otel_scaler_address || address.contains("otel"))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_metric_types_round_trip_including_unknown_ones() {
        for s in [
            "external",
            "external-push",
            "prometheus",
            "kedify-otel",
            "cpu",
            "memory",
            "kafka",
        ] {
            assert_eq!(String::from(TriggerKind::from(s.to_string())), s);
        }
        assert_eq!(
            TriggerKind::from("kafka".to_string()),
            TriggerKind::Other("kafka".into())
        );
        for s in ["AverageValue", "Value", "Utilization", "Bogus"] {
            assert_eq!(String::from(MetricType::from(s.to_string())), s);
        }
    }

    #[test]
    fn operations_over_time_parse_their_own_names() {
        for op in OperationOverTime::ALL {
            assert_eq!(OperationOverTime::parse(op.as_str()), Some(op));
        }
        assert_eq!(OperationOverTime::parse("p99"), None);
    }

    #[test]
    fn a_trigger_reads_from_keda_json() {
        let t: Trigger = serde_json::from_value(serde_json::json!({
            "type": "external", "metadata": {"scalerAddress": "keda-otel-scaler.keda.svc:4318"},
            "authenticationRef": {"name": "x"}
        }))
        .unwrap();
        assert_eq!(t.kind, TriggerKind::External);
        assert!(t.name.is_empty());
        assert_eq!(t.effective_metric_type(), MetricType::AverageValue);
        // Its address names the add-on, whatever address is configured.
        assert!(t.is_otel_addon("elsewhere:1"));
        let mut other = t.clone();
        other
            .metadata
            .insert("scalerAddress".into(), "my-scaler.ns:9090".into());
        assert!(!other.is_otel_addon("elsewhere:1"));
        assert!(other.is_otel_addon("my-scaler.ns:9090"));
        other.kind = TriggerKind::Prometheus;
        assert!(!other.is_otel_addon("my-scaler.ns:9090"));
    }
}
