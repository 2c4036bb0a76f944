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

    /// Which scaler reads this trigger: `kedify-otel` is the KEDA OTel add-on's own kind;
    /// `external` and `external-push` triggers are told apart by their `scalerAddress`,
    /// compared with the configured addresses as Services ([`same_service`]), never by what
    /// the name contains.
    pub fn reader(&self, known: &KnownScalers<'_>) -> Reader {
        match self.kind {
            TriggerKind::KedifyOtel => Reader::OtelAddon,
            TriggerKind::External | TriggerKind::ExternalPush => {
                let address = self.meta("scalerAddress").unwrap_or_default();
                if same_service(address, known.builtin) {
                    Reader::Builtin
                } else if same_service(address, known.otel_addon) {
                    Reader::OtelAddon
                } else {
                    Reader::Other
                }
            }
            _ => Reader::Other,
        }
    }
}

/// Who reads a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// The KEDA OTel add-on.
    OtelAddon,
    /// This product's built-in scaler.
    Builtin,
    /// Anything else: KEDA's own scalers, other external scalers.
    Other,
}

/// The external scalers this product knows, by their configured addresses.
#[derive(Clone, Copy, Debug)]
pub struct KnownScalers<'a> {
    /// The KEDA OTel add-on's scaler (`--scaler-address`).
    pub otel_addon: &'a str,
    /// The built-in scaler (`--builtin-scaler-address`).
    pub builtin: &'a str,
}

impl<'a> KnownScalers<'a> {
    pub fn of(cfg: &'a crate::config::WebhookConfig) -> KnownScalers<'a> {
        KnownScalers {
            otel_addon: &cfg.scaler_address,
            builtin: &cfg.builtin_scaler_address,
        }
    }
}

/// Whether two `host:port` addresses name the same Service port: the same port, and the
/// same host once the cluster's DNS suffix is dropped (`name.ns`, `name.ns.svc` and
/// `name.ns.svc.cluster.local` are one Service). Other hosts compare as written.
pub fn same_service(a: &str, b: &str) -> bool {
    fn parts(address: &str) -> Option<(&str, &str)> {
        let (host, port) = address.trim().rsplit_once(':')?;
        let host = host
            .split_once(".svc")
            .filter(|(_, rest)| rest.is_empty() || rest.starts_with('.'))
            .map_or(host, |(name, _)| name);
        Some((host, port))
    }
    match (parts(a), parts(b)) {
        (Some(x), Some(y)) => !x.0.is_empty() && x.0.eq_ignore_ascii_case(y.0) && x.1 == y.1,
        _ => false,
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
        let known = KnownScalers {
            otel_addon: "keda-otel-scaler.keda:4318",
            builtin: "llm-autoscale-scaler.llm-autoscale-system.svc:4318",
        };
        // The configured address, however the Service is spelled.
        assert_eq!(t.reader(&known), Reader::OtelAddon);
        let mut other = t.clone();
        let mut at = |address: &str| {
            other
                .metadata
                .insert("scalerAddress".into(), address.into());
            other.reader(&known)
        };
        assert_eq!(
            at("keda-otel-scaler.keda.svc.cluster.local:4318"),
            Reader::OtelAddon
        );
        assert_eq!(
            at("llm-autoscale-scaler.llm-autoscale-system:4318"),
            Reader::Builtin
        );
        // Not by what the name contains, nor another port.
        assert_eq!(at("my-otel-collector.ns:4318"), Reader::Other);
        assert_eq!(at("keda-otel-scaler.keda.svc:4317"), Reader::Other);
        assert_eq!(at("keda-otel-scaler.other:4318"), Reader::Other);
        other.kind = TriggerKind::Prometheus;
        assert_eq!(other.reader(&known), Reader::Other);
        let mut kedify = t.clone();
        kedify.kind = TriggerKind::KedifyOtel;
        assert_eq!(kedify.reader(&known), Reader::OtelAddon);
        assert!(same_service("a.b:1", "A.B.svc:1"));
        assert!(!same_service(":1", ":1"));
        assert!(!same_service("a.b", "a.b"));
        assert!(same_service("10.0.0.7:4318", "10.0.0.7:4318"));
        assert!(!same_service("a.b.svcx:1", "a.b:1"));
    }
}
