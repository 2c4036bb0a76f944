//! One thing `doctor` found: which check, how bad, about what, what it means and the fix.

use serde::Serialize;

/// How much a finding matters for scaling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// The check passed.
    Ok,
    /// Worth knowing; nothing is wrong.
    Info,
    /// Scaling works, but not as configured or not for long.
    Warning,
    /// Something stands between the workload and scaling: `doctor` exits non-zero.
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Where along the path from annotation to replica count a check looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Area {
    Webhook,
    Keda,
    Workload,
    MetricsPath,
}

macro_rules! checks {
    ($( $(#[$doc:meta])* $variant:ident => ($id:literal, $area:ident), )*) => {
        /// Every check `doctor` makes, with the identifier it prints (README, "doctor").
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
        #[serde(into = "&'static str")]
        pub enum Check {
            $( $(#[$doc])* $variant, )*
        }

        impl Check {
            pub const ALL: &'static [Check] = &[$(Check::$variant),*];

            pub fn id(self) -> &'static str {
                match self { $(Check::$variant => $id,)* }
            }

            pub fn area(self) -> Area {
                match self { $(Check::$variant => Area::$area,)* }
            }
        }
    };
}

checks! {
    /// The product's webhooks are registered.
    WebhookConfiguration => ("webhook-configuration", Webhook),
    /// Their caBundle holds a certificate.
    WebhookCaBundle => ("webhook-ca-bundle", Webhook),
    /// The served certificate verifies against the caBundle.
    WebhookCertificate => ("webhook-certificate", Webhook),
    /// The webhook's Service has ready endpoints.
    WebhookEndpoints => ("webhook-endpoints", Webhook),
    /// What the API server does when the webhook cannot be reached.
    WebhookFailurePolicy => ("webhook-failure-policy", Webhook),
    /// The workload's namespace and labels are selected by the webhook.
    WebhookSelector => ("webhook-selector", Webhook),
    /// KEDA's ScaledObject CRD is installed.
    KedaCrd => ("keda-crd", Keda),
    /// KEDA's operator runs.
    KedaOperator => ("keda-operator", Keda),
    /// KEDA's metrics adapter serves external.metrics.k8s.io.
    KedaMetricsApi => ("keda-metrics-api", Keda),
    /// The ScaledObject's Ready condition.
    ScaledObjectReady => ("scaledobject-ready", Keda),
    /// The ScaledObject's Active condition.
    ScaledObjectActive => ("scaledobject-active", Keda),
    /// The ScaledObject's Fallback condition.
    ScaledObjectFallback => ("scaledobject-fallback", Keda),
    /// The ScaledObject's Paused condition.
    ScaledObjectPaused => ("scaledobject-paused", Keda),
    /// KEDA's HPA for the ScaledObject exists.
    Hpa => ("hpa", Keda),
    /// The HPA's conditions.
    HpaConditions => ("hpa-conditions", Keda),
    /// The workload opts in.
    OptIn => ("opt-in", Workload),
    /// Its annotations are valid.
    Annotations => ("annotations", Workload),
    /// The Deployment that scales exists (an InferenceService's predictor).
    TargetDeployment => ("target-deployment", Workload),
    /// The collector sidecar is present and current.
    Sidecar => ("sidecar", Workload),
    /// Its ScaledObject exists and is managed by this product.
    ScaledObject => ("scaledobject", Workload),
    /// The ScaledObject holds what the annotations render now.
    ScaledObjectSync => ("scaledobject-sync", Workload),
    /// No other ScaledObject or HPA scales the same Deployment.
    CompetingScaler => ("competing-scaler", Workload),
    /// The KEDA OTel add-on's REST API answers.
    AddonReachable => ("addon-reachable", MetricsPath),
    /// The trigger's metric is in the add-on's store, with series of this workload.
    MetricInStore => ("metric-in-store", MetricsPath),
    /// The add-on answers "not found" with an error, so KEDA's fallback can fire.
    AddonErrorIfNotFound => ("addon-error-if-not-found", MetricsPath),
    /// Prometheus answers the trigger's query with data.
    PrometheusQuery => ("prometheus-query", MetricsPath),
    /// A workload that scales to zero has a trigger that can wake it.
    ScaleToZeroWake => ("scale-to-zero-wake", MetricsPath),
}

impl From<Check> for &'static str {
    fn from(c: Check) -> &'static str {
        c.id()
    }
}

/// One result of one check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: Check,
    pub severity: Severity,
    /// What it is about: `MutatingWebhookConfiguration llm-autoscale-webhook`, `trigger
    /// queue`, ...
    pub subject: String,
    pub message: String,
    /// What to do; empty when nothing is to be done.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

impl Finding {
    pub fn new(check: Check, severity: Severity, subject: impl Into<String>) -> Finding {
        Finding {
            check,
            severity,
            subject: subject.into(),
            message: String::new(),
            fix: String::new(),
        }
    }

    pub fn ok(check: Check, subject: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding::new(check, Severity::Ok, subject).saying(message)
    }

    pub fn saying(mut self, message: impl Into<String>) -> Finding {
        self.message = message.into();
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = fix.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_ids_are_unique_kebab_case() {
        let mut ids: Vec<&str> = Check::ALL.iter().map(|c| c.id()).collect();
        assert!(
            ids.iter()
                .all(|id| id.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        );
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }

    #[test]
    fn severities_order_by_weight() {
        assert!(Severity::Error > Severity::Warning);
        assert!(Severity::Warning > Severity::Info);
        assert!(Severity::Info > Severity::Ok);
        let f = Finding::new(Check::Hpa, Severity::Error, "x").saying("m");
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["check"], "hpa");
        assert_eq!(json["severity"], "error");
        assert!(json.get("fix").is_none());
    }
}
