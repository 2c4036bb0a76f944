//! The `wva` backend: KEDA applies the replica count the llm-d workload-variant-autoscaler
//! (WVA) computes for a model variant and publishes as a Prometheus gauge.
//!
//! What the controller publishes, read in llm-d/llm-d-workload-variant-autoscaler:
//! - v0.5.0 and later: `wva_desired_replicas` with `variant_name`, `namespace`,
//!   `accelerator_type` (and `controller_instance` when configured)
//!   (internal/constants/metrics.go `WVADesiredReplicas`, internal/metrics/metrics.go
//!   `baseLabels`);
//! - v0.0.1 to v0.4.1: `inferno_desired_replicas` with the same three labels
//!   (internal/metrics/metrics.go at v0.0.1, internal/constants/metrics.go at v0.4.1). The
//!   integration document users started from also matches `variant_id`, a label only the
//!   single-variant builds emitted (commit 10f5eb6, never in a release).
//!
//! Prometheus scrapes the controller, whose own `namespace` label becomes `exported_namespace`
//! (its integration documents query it so). The ScaledObject's shape follows those documents
//! (docs/integrations/keda-integration.md): threshold 1 per replica, activation above 0, and
//! the scaling defaults below, each overridable by its own annotation.

use k8s_openapi::api::autoscaling::v2::{HPAScalingPolicy, HPAScalingRules};

use super::reader::Reader;
use super::triggers::metric_type_of;
use super::{AutoscalingSpec, Fallback, PREFIX, TriggerQuery, TriggerSource, TriggerSpec};
use crate::keda::MetricType;
use crate::keda::names::{MAX_NAME, bounded_name};
use crate::keda::scaled_object::FallbackBehavior;
use crate::version::Version;

/// The current WVA release, the default of `wva-version`.
pub const CURRENT_RELEASE: Version = Version(0, 5, 1);
/// The release that renamed `inferno_desired_replicas` to `wva_desired_replicas`.
pub const WVA_METRICS_SINCE: Version = Version(0, 5, 0);

/// The documents' scaling defaults.
const POLLING_INTERVAL: i32 = 5;
const COOLDOWN: i32 = 30;
const FALLBACK_REPLICAS: i32 = 2;
const FALLBACK_FAILURES: i32 = 3;

impl Reader<'_> {
    /// The one trigger of the `wva` backend.
    pub(super) fn wva_trigger(&mut self, deployment: &str, namespace: &str) -> Option<TriggerSpec> {
        let version = self
            .get("wva-version", |v| {
                Version::parse(v).ok_or(super::values::Refusal {
                    reason: "not a version".into(),
                    fix: "write the WVA release such as \"0.5.1\"".into(),
                })
            })
            .unwrap_or(CURRENT_RELEASE);
        let accelerator = self.get("wva-accelerator-type", label_value);
        let variant_id = self.get("wva-variant-id", label_value);
        let (metric, name) = if version >= WVA_METRICS_SINCE {
            ("wva_desired_replicas", "wva-desired-replicas")
        } else {
            ("inferno_desired_replicas", "inferno-desired-replicas")
        };
        if variant_id.is_some() {
            self.variant_id_warning(version);
        }
        let mut labels = vec![
            ("variant_name", deployment.to_string()),
            ("exported_namespace", namespace.to_string()),
        ];
        labels.extend(accelerator.map(|a| ("accelerator_type", a)));
        labels.extend(variant_id.map(|v| ("variant_id", v)));
        let matchers: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        Some(TriggerSpec {
            name: name.into(),
            query: TriggerQuery::Prometheus(format!("{metric}{{{}}}", matchers.join(","))),
            // The controller publishes it whether or not the variant has pods.
            source: TriggerSource::Gateway,
            metric_type: self
                .get("metric-type", metric_type_of)
                .unwrap_or(MetricType::AverageValue),
            target: Some("1".into()),
            activation_target: Some("0".into()),
            operation_over_time: None,
            latency: None,
        })
    }

    /// `variant_id`: refused where the series have none, a warning where only some builds do.
    fn variant_id_warning(&mut self, version: Version) {
        if version >= WVA_METRICS_SINCE {
            self.bad(
                "wva-variant-id",
                "wva_desired_replicas has no variant_id label (llm-d-workload-variant-autoscaler internal/metrics/metrics.go): the query would match nothing",
                format!("remove it, or set {PREFIX}wva-version to the release you run"),
            );
            return;
        }
        self.f.warn(format!(
            "{PREFIX}wva-variant-id: released WVA controllers (v0.0.1 to v0.4.1) publish inferno_desired_replicas without variant_id; only the single-variant builds of the integration document add it: keep it only if your controller's series carry it"
        ));
    }
}

/// A label value Prometheus can match as written (no quote or backslash to escape).
fn label_value(v: &str) -> Result<String, super::values::Refusal> {
    if v.is_empty() || v.contains(['"', '\\']) || v.trim() != v {
        return Err(super::values::Refusal {
            reason: "not a label value the query can carry".into(),
            fix: "write it as the WVA controller labels the variant, e.g. \"A100\"".into(),
        });
    }
    Ok(v.to_string())
}

/// The documents' defaults for what the user did not set. Polling and cooldowns only where
/// KEDA's loop scales (see `Reader::loop_only`).
pub(super) fn apply_defaults(spec: &mut AutoscalingSpec) {
    if spec.keda_loop_scales() {
        spec.polling_interval.get_or_insert(POLLING_INTERVAL);
        spec.cooldown_period.get_or_insert(COOLDOWN);
        spec.initial_cooldown_period.get_or_insert(COOLDOWN);
    }
    spec.fallback.get_or_insert(Fallback {
        replicas: FALLBACK_REPLICAS.min(spec.max_replicas),
        failure_threshold: FALLBACK_FAILURES,
        behavior: Some(FallbackBehavior::CurrentReplicasIfHigher),
    });
    spec.restore_to_original_replicas.get_or_insert(false);
    // Unlike the documents: with KEDA's default (true) a dead WVA controller's vanished series
    // reads 0 and takes the variant to zero; as an error, fallback keeps the current replicas.
    spec.prometheus.ignore_null_values.get_or_insert(false);
    let hpa = bounded_name(
        &format!("wva-keda-hpa-{}", spec.target_deployment),
        MAX_NAME,
    );
    spec.hpa_name.get_or_insert(hpa);
    for rules in [&mut spec.scale_up, &mut spec.scale_down] {
        let r = rules.get_or_insert_with(HPAScalingRules::default);
        r.stabilization_window_seconds.get_or_insert(0);
        r.policies.get_or_insert_with(|| {
            vec![
                HPAScalingPolicy {
                    type_: "Percent".into(),
                    value: 100,
                    period_seconds: 30,
                },
                HPAScalingPolicy {
                    type_: "Pods".into(),
                    value: 5,
                    period_seconds: 15,
                },
            ]
        });
    }
}
