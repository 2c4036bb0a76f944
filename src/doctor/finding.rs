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
    ($( $(#[$doc:meta])* $variant:ident => ($id:literal, $area:ident, $what:literal), )*) => {
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

            /// What the check looks at and when it blocks (README, "doctor").
            pub fn what(self) -> &'static str {
                match self { $(Check::$variant => $what,)* }
            }
        }
    };
}

checks! {
    /// The product's webhooks are registered.
    WebhookConfiguration => ("webhook-configuration", Webhook, "The product's webhooks are registered: `deployments.llm-autoscale.io` (error when missing: no sidecar is injected), `inferenceservices.llm-autoscale.io` and `scaledobjects.llm-autoscale.io` (warnings)."),
    /// Their caBundle holds a certificate.
    WebhookCaBundle => ("webhook-ca-bundle", Webhook, "Each webhook's `caBundle` holds a PEM certificate (error when empty or unreadable)."),
    /// The served certificate verifies against the caBundle.
    WebhookCertificate => ("webhook-certificate", Webhook, "A TLS handshake with the webhook's endpoint, trusting only its `caBundle`, succeeds as the API server's would (error when it fails or the certificate has expired; warning within 7 days of expiry). A URL is dialled directly; a Service by its DNS name in the cluster, or at `--webhook-address` from outside (otherwise not checked)."),
    /// The webhook's Service has ready endpoints.
    WebhookEndpoints => ("webhook-endpoints", Webhook, "The webhook's Service has ready endpoints (error when none)."),
    /// What the API server does when the webhook cannot be reached.
    WebhookFailurePolicy => ("webhook-failure-policy", Webhook, "What the API server does while the webhook is unreachable (`Ignore`: objects admitted unchanged; `Fail`: refused)."),
    /// The workload's namespace and labels are selected by the webhook.
    WebhookSelector => ("webhook-selector", Webhook, "The webhook's `namespaceSelector` selects the workload's namespace and its `objectSelector` the object (error when excluded)."),
    /// KEDA's ScaledObject CRD is installed.
    KedaCrd => ("keda-crd", Keda, "KEDA's `scaledobjects.keda.sh` CRD is installed (error when missing)."),
    /// KEDA's operator runs.
    KedaOperator => ("keda-operator", Keda, "A Deployment labelled `app.kubernetes.io/name=keda-operator` has ready replicas (error when none is ready; information when there is no such Deployment)."),
    /// KEDA's operator trusts a CA for the built-in scaler's TLS.
    KedaCaDir => ("keda-ca-dir", Keda, "With `--builtin-scaler-tls`: each KEDA operator Deployment has a volume mounted at one of its CA directories (`--ca-dir`, default `/custom/ca`), where KEDA reads the CA files it trusts besides the system roots (error when nothing is mounted there: its TLS reads of the built-in scaler fail; warning when the Deployment does not tell, e.g. a volume mounted above the directory, or no operator found)."),
    /// KEDA's metrics adapter serves external.metrics.k8s.io.
    KedaMetricsApi => ("keda-metrics-api", Keda, "The APIService `v1beta1.external.metrics.k8s.io` (KEDA's metrics server) is Available (error otherwise: HPAs cannot read any trigger)."),
    /// The ScaledObject's Ready condition.
    ScaledObjectReady => ("scaledobject-ready", Keda, "The ScaledObject's `Ready` condition, with KEDA's reason and message (error when False, or Unknown/absent: not reconciled)."),
    /// The ScaledObject's Active condition.
    ScaledObjectActive => ("scaledobject-active", Keda, "Its `Active` condition (information when False: held at the minimum or idle count)."),
    /// The ScaledObject's Fallback condition.
    ScaledObjectFallback => ("scaledobject-fallback", Keda, "Its `Fallback` condition (error when True: KEDA runs the fallback replica count because the scaler fails)."),
    /// The ScaledObject's Paused condition.
    ScaledObjectPaused => ("scaledobject-paused", Keda, "Its `Paused` condition or KEDA's pause annotations (error: scaling stopped)."),
    /// KEDA's HPA for the ScaledObject exists.
    Hpa => ("hpa", Keda, "The HPA KEDA makes for the ScaledObject (status `hpaName`, the configured name, or `keda-hpa-<name>`) exists once KEDA reports Ready (error when missing)."),
    /// The HPA's conditions.
    HpaConditions => ("hpa-conditions", Keda, "The HPA's `AbleToScale` and `ScalingActive` with the HPA controller's reasons (error when False, except `ScalingDisabled` at zero replicas); `ScalingLimited` as information."),
    /// The workload opts in.
    OptIn => ("opt-in", Workload, "The workload carries `llm-autoscale.io/enabled` (error when a named workload does not; information when it is `\"false\"`)."),
    /// Its annotations are valid.
    Annotations => ("annotations", Workload, "The annotations are valid, judged by the webhook's own reader: every problem with its key, value and fix (error), and its warnings."),
    /// The Deployment that scales exists (an InferenceService's predictor).
    TargetDeployment => ("target-deployment", Workload, "The Deployment that scales exists (an InferenceService's `<name>-predictor`; error when missing)."),
    /// The collector sidecar is present and current.
    Sidecar => ("sidecar", Workload, "The collector sidecar is injected and current, from the status annotation's hashes as the reconciler compares them (error when missing on the `otel` backend; warning when stale)."),
    /// Its ScaledObject exists and is managed by this product.
    ScaledObject => ("scaledobject", Workload, "The ScaledObject the reconciler applies exists and is managed by this product for this Deployment (error when missing, someone else's, KServe's leftover, or not created for a reason such as the InferenceService's autoscaler class)."),
    /// The ScaledObject holds what the annotations render now.
    ScaledObjectSync => ("scaledobject-sync", Workload, "It holds what the annotations render now (warning naming the first field that differs)."),
    /// No other ScaledObject or HPA scales the same Deployment.
    CompetingScaler => ("competing-scaler", Workload, "No other ScaledObject or HPA targets the same Deployment (error)."),
    /// The KEDA OTel add-on's REST API answers.
    AddonReachable => ("addon-reachable", MetricsPath, "The KEDA OTel add-on's REST API answers `GET /memstore/data`, at `--addon-url` or through the API server's service proxy to the Service of the scaler address (error when it does not answer)."),
    /// The trigger's metric is in the add-on's store, with series of this workload.
    MetricInStore => ("metric-in-store", MetricsPath, "The trigger's metric is in the add-on's store with series matching the query's labels (error otherwise: KEDA reads 0)."),
    /// The add-on answers "not found" with an error, so KEDA's fallback can fire.
    AddonErrorIfNotFound => ("addon-error-if-not-found", MetricsPath, "The add-on's Deployment sets `METRIC_STORE_ERROR_IF_NOT_FOUND=true` (warning when the ScaledObject has a fallback: without it a missing metric reads as 0 and fallback never fires)."),
    /// The built-in scaler answers.
    BuiltinScalerReachable => ("builtin-scaler-reachable", MetricsPath, "The built-in scaler answers: a gRPC connection to its scaler port at `--builtin-scaler-url` (or at the trigger's `scalerAddress` when doctor runs in the cluster), else `GET /readyz` on its `metrics` port through the API server's service proxy (error when it does not answer)."),
    /// The built-in scaler holds fresh series for the trigger.
    BuiltinSeries => ("builtin-series", MetricsPath, "The built-in scaler answers KEDA's `GetMetricSpec` and `GetMetrics` for the trigger with a value: it holds fresh series of this workload (error with the scaler's reason when it answers an error: no series, stale series past `--staleness`, an empty window; KEDA's read fails and its fallback runs). Needs the gRPC port: `--builtin-scaler-url` from outside the cluster."),
    /// The namespace's token Secret exists.
    BuiltinToken => ("builtin-token", MetricsPath, "With `--builtin-scaler-auth` (the default), the namespace holds Secret `llm-autoscale-scaler-token` (its metadata is read; with `--builtin-scaler-tls` the whole Secret, for `builtin-scaler-ca`, but the token is never looked at), which the reconciler writes and the sidecars present (error when missing: the sidecar cannot start, or the scaler refuses its points)."),
    /// The namespace's token Secret holds the scaler's CA.
    BuiltinScalerCa => ("builtin-scaler-ca", MetricsPath, "With `--builtin-scaler-tls`: the namespace's Secret `llm-autoscale-scaler-token` holds key `ca.crt` with a PEM certificate, which the reconciler writes from `--scaler-tls-ca` and the sidecars verify the scaler with (error when the Secret or the key is missing: the sidecar cannot start; or when it holds no certificate). The Secret is read (only `ca.crt` is looked at)."),
    /// Prometheus answers the trigger's query with data.
    PrometheusQuery => ("prometheus-query", MetricsPath, "Prometheus answers each `prometheus` trigger's query with series, at `--prometheus-url`, through the service proxy, or at `serverAddress` (error when it fails or is empty)."),
    /// A workload that scales to zero has a trigger that can wake it.
    ScaleToZeroWake => ("scale-to-zero-wake", MetricsPath, "A ScaledObject that may take the workload to zero has a trigger whose data exists at zero pods (error when every trigger reads the workload's own sidecar)."),
}

impl From<Check> for &'static str {
    fn from(c: Check) -> &'static str {
        c.id()
    }
}

impl Area {
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Webhook => "webhook",
            Area::Keda => "KEDA",
            Area::Workload => "workload",
            Area::MetricsPath => "metrics path",
        }
    }
}

/// The README's table of checks: id, area, what it looks at.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| Check | Area | What it looks at, and when it blocks |\n| --- | --- | --- |\n",
    );
    for c in Check::ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            c.id(),
            c.area().as_str(),
            c.what()
        ));
    }
    out
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
