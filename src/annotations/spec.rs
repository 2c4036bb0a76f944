//! What the annotations mean once validated: the [`AutoscalingSpec`] and its parts.

use std::collections::BTreeMap;

use super::{HttpWake, PrometheusOptions};
use crate::config::SidecarMode;
use k8s_openapi::api::autoscaling::v2::HPAScalingRules;

use crate::keda::scaled_object::FallbackBehavior;
use crate::keda::{MetricType, OperationOverTime};
use crate::latency::WindowedPercentile;
use crate::query::AddonQuery;
use crate::workload::{Workload, WorkloadKind};

/// Where the metrics go and who computes the scaling value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Sidecar collector → KEDA OTel add-on; `external` trigger at its scaler.
    Otel,
    /// Sidecar collector → this product's built-in scaler (`src/scaler/`); `external`
    /// trigger at its scaler.
    Builtin,
    /// An existing Prometheus; `prometheus` trigger, no sidecar.
    Prometheus,
    /// Any KEDA external scaler with free-form metadata; no sidecar.
    External,
    /// The llm-d workload-variant-autoscaler's desired replicas, read from Prometheus.
    Wva,
}

impl Backend {
    pub const ALL: [Backend; 5] = [
        Backend::Otel,
        Backend::Builtin,
        Backend::Prometheus,
        Backend::External,
        Backend::Wva,
    ];

    pub fn parse(s: &str) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| b.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Otel => "otel",
            Backend::Builtin => "builtin",
            Backend::Prometheus => "prometheus",
            Backend::External => "external",
            Backend::Wva => "wva",
        }
    }
}

/// The value a trigger is computed from.
#[derive(Clone, Debug, PartialEq)]
pub enum TriggerQuery {
    /// An add-on `metricQuery`, already scoped to the Deployment and namespace.
    Otel(AddonQuery),
    /// The built-in scaler's query (the add-on's grammar, scoped the same way) and the
    /// window its operation over time, or its percentile, covers.
    Builtin {
        query: AddonQuery,
        window_seconds: i32,
    },
    /// A PromQL query.
    Prometheus(String),
    /// Free-form metadata for an external scaler.
    External(BTreeMap<String, String>),
}

/// Where a trigger's value comes from, which decides whether it can wake a workload that has
/// been scaled to zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerSource {
    /// This workload's own pods (its sidecar, or a query scoped to its pods): at zero replicas
    /// there is no pod and so no data.
    Workload,
    /// Something that exists while this workload has no pods: a router, gateway or queue
    /// metric, another service's Prometheus series, an external scaler.
    Gateway,
}

impl TriggerSource {
    pub const ALL: [(&'static str, TriggerSource); 2] = [
        ("workload", TriggerSource::Workload),
        ("gateway", TriggerSource::Gateway),
    ];

    pub fn parse(s: &str) -> Option<TriggerSource> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, t)| *t)
    }
}

/// One trigger of the ScaledObject, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerSpec {
    /// Unique identifier within the ScaledObject.
    pub name: String,
    pub query: TriggerQuery,
    pub source: TriggerSource,
    pub metric_type: MetricType,
    /// Canonical decimal, `> 0` (absent for the external backend).
    pub target: Option<String>,
    pub activation_target: Option<String>,
    /// `operationOverTime` (otel only).
    pub operation_over_time: Option<OperationOverTime>,
    /// A latency trigger: the histogram percentile it reads (on otel, the gauge the sidecar
    /// computes per scrape window).
    pub latency: Option<WindowedPercentile>,
}

/// What the sidecar scrapes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scrape {
    pub port: u16,
    pub path: String,
    pub interval_seconds: i32,
}

/// A validated autoscaling request.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoscalingSpec {
    pub backend: Backend,
    /// Name of the Deployment that scales (for an InferenceService, `<name>-predictor`).
    pub target_deployment: String,
    pub namespace: String,
    pub triggers: Vec<TriggerSpec>,
    pub min_replicas: i32,
    pub max_replicas: i32,
    /// KEDA's `idleReplicaCount`: the replicas while no trigger is active (below min).
    pub idle_replicas: Option<i32>,
    /// KEDA's `advanced.restoreToOriginalReplicaCount`.
    pub restore_to_original_replicas: Option<bool>,
    pub polling_interval: Option<i32>,
    pub cooldown_period: Option<i32>,
    pub initial_cooldown_period: Option<i32>,
    pub fallback: Option<Fallback>,
    /// The HPA's scale-up rules (stabilization, policies, select policy), when any is set.
    pub scale_up: Option<HPAScalingRules>,
    /// The HPA's scale-down rules.
    pub scale_down: Option<HPAScalingRules>,
    /// `advanced.horizontalPodAutoscalerConfig.name`, when set by the user.
    pub hpa_name: Option<String>,
    pub scrape: Scrape,
    /// `scalerAddress` (otel, builtin and external backends).
    pub scaler_address: String,
    /// KEDA reaches the scaler over TLS (`enableTLS`: builtin with `--builtin-scaler-tls`).
    pub scaler_tls: bool,
    /// `serverAddress` (prometheus backend).
    pub prometheus_address: String,
    /// TLS, authentication, headers and empty results of the prometheus backend.
    pub prometheus: PrometheusOptions,
    /// The external backend's scaler streams activity (`external-push`).
    pub external_push: bool,
    /// Resolved: never `Auto`; `None` for backends without a sidecar.
    pub sidecar: SidecarMode,
    /// Requests held by the KEDA HTTP add-on's interceptor wake the Deployment from zero.
    pub http_wake: Option<HttpWake>,
}

impl AutoscalingSpec {
    /// Metric names the sidecar must forward: the metrics of the triggers read from this
    /// workload's pods. A `<histogram>_count`/`_sum` query also forwards `<histogram>`: the
    /// collector's Prometheus receiver turns the `_bucket`/`_count`/`_sum` series into one
    /// histogram of the base name, and the KEDA OTel add-on stores it back as `<name>_count`
    /// and `<name>_sum` (kedify/otel-add-on receiver/receiver.go, storeCountAndSumDatapoints).
    /// Latency triggers read a gauge the sidecar computes: see [`Self::sidecar_percentiles`].
    ///
    /// On `builtin` a latency trigger's histogram is forwarded itself (as deltas: the scaler
    /// merges the pods' windows, [`Self::sidecar_deltas`]).
    pub fn sidecar_metrics(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for t in &self.triggers {
            let q = match &t.query {
                TriggerQuery::Otel(q) if t.latency.is_none() => q,
                TriggerQuery::Builtin { query, .. } => query,
                _ => continue,
            };
            if t.source != TriggerSource::Workload {
                continue;
            }
            let base = histogram_base(&q.metric);
            for name in std::iter::once(q.metric.as_str()).chain(base) {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
        }
        names
    }

    /// The windowed percentiles the sidecar computes for the otel triggers, each once.
    pub fn sidecar_percentiles(&self) -> Vec<WindowedPercentile> {
        let mut out: Vec<WindowedPercentile> = Vec::new();
        for t in &self.triggers {
            if let (TriggerQuery::Otel(_), Some(w)) = (&t.query, &t.latency) {
                if !out.contains(w) {
                    out.push(w.clone());
                }
            }
        }
        out
    }

    /// Whether the sidecar sends counters and histograms as deltas per scrape (the built-in
    /// scaler merges deltas across pods and replicas; cumulative values cannot be).
    pub fn sidecar_deltas(&self) -> bool {
        self.backend == Backend::Builtin
    }

    /// Whether KEDA may take the workload to zero pods (see [`scales_to_zero`]).
    pub fn scales_to_zero(&self) -> bool {
        scales_to_zero(self.min_replicas, self.idle_replicas)
    }

    /// Whether KEDA's own scale loop decides any step (see [`keda_loop_scales`]).
    pub fn keda_loop_scales(&self) -> bool {
        keda_loop_scales(self.min_replicas, self.idle_replicas)
    }

    /// Whether something can see demand while the workload has no pod: the KEDA HTTP add-on's
    /// interceptor (HTTP wake), or a trigger whose source is not the workload's pods.
    pub fn wakes_from_zero(&self) -> bool {
        self.http_wake.is_some()
            || self
                .triggers
                .iter()
                .any(|t| t.source == TriggerSource::Gateway)
    }
}

/// Whether KEDA may take the workload to zero pods: `min-replicas` 0, or an idle replica
/// count of 0.
pub fn scales_to_zero(min_replicas: i32, idle_replicas: Option<i32>) -> bool {
    min_replicas == 0 || idle_replicas == Some(0)
}

/// Whether KEDA's own scale loop decides any step: with scale to zero or an idle count
/// (kedacore/keda v2.21.0 apis/keda/v1alpha1/scaledobject_types.go,
/// `IsPollingIntervalRelevant`; otherwise the HPA drives every step, and the polling interval
/// and the cooldowns are not used for scaling).
pub fn keda_loop_scales(min_replicas: i32, idle_replicas: Option<i32>) -> bool {
    min_replicas == 0 || idle_replicas.is_some()
}

/// `vllm:e2e_request_latency_seconds_count` → `vllm:e2e_request_latency_seconds`.
pub fn histogram_base(metric: &str) -> Option<&str> {
    metric
        .strip_suffix("_count")
        .or_else(|| metric.strip_suffix("_sum"))
        .filter(|b| !b.is_empty())
}

/// KEDA's fallback: replicas to run while the scaler fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    pub replicas: i32,
    pub failure_threshold: i32,
    /// `None`: KEDA's default, `static`.
    pub behavior: Option<FallbackBehavior>,
}

/// The Deployment an object's ScaledObject targets.
pub fn target_deployment(w: &Workload) -> String {
    match w.kind {
        WorkloadKind::Deployment => w.name.clone(),
        WorkloadKind::InferenceService => format!("{}-predictor", w.name),
    }
}
