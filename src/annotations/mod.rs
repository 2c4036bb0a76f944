//! Annotation API v1: the `llm-autoscale.io/*` annotations parsed into a validated
//! [`AutoscalingSpec`], collecting every problem (each naming its annotation, the value and
//! the fix) instead of stopping at the first.

use std::collections::BTreeMap;

use crate::config::{SidecarMode, WebhookConfig};
use crate::keda::{MetricType, OperationOverTime};
use crate::presets::{self, Version};
use crate::problem::{Findings, Invalid, Problem};
use crate::query::AddonQuery;
use crate::values::{self, Refusal};
use crate::workload::{Workload, WorkloadKind};

mod http_wake;
mod triggers;

pub use http_wake::{HTTP_WAKE_KEYS, HTTP_WAKE_TRIGGER, HttpWake};
pub use triggers::{TRIGGER_KEYS, default_promql};
use triggers::{
    TriggerContext, TriggerInput, parse_string_map, parse_trigger_list, resolve_trigger,
};

/// Every annotation of this product starts with this.
pub const PREFIX: &str = "llm-autoscale.io/";
/// Written by the webhook on the pod template: what it injected and the hash of it.
pub const STATUS: &str = "llm-autoscale.io/status";
/// KServe's metrics port annotation, the fallback for `metrics-port`.
pub const KSERVE_PORT: &str = "prometheus.kserve.io/port";
/// KServe's metrics path annotation, the fallback for `metrics-path`.
pub const KSERVE_PATH: &str = "prometheus.kserve.io/path";
/// The OTel operator's injection annotation; with our sidecar it would double the series.
pub const OTEL_OPERATOR_INJECT: &str = "sidecar.opentelemetry.io/inject";

/// The annotation keys (without the prefix) that users set, besides the trigger keys
/// ([`TRIGGER_KEYS`]: preset, metric, target, ...) and the HTTP wake keys ([`HTTP_WAKE_KEYS`]).
pub const KEYS: [&str; 21] = [
    "enabled",
    "backend",
    "triggers",
    "min-replicas",
    "max-replicas",
    "polling-interval",
    "cooldown-period",
    "initial-cooldown-period",
    "fallback-replicas",
    "scale-up-stabilization",
    "scale-down-stabilization",
    "metrics-port",
    "metrics-path",
    "scrape-interval",
    "scaler-address",
    "prometheus-address",
    "scaler-metadata",
    "sidecar",
    "vllm-version",
    "hpa-name",
    "fallback-failure-threshold",
];

/// Every annotation key users set (without the prefix).
fn known_keys() -> impl Iterator<Item = &'static str> {
    KEYS.into_iter().chain(TRIGGER_KEYS).chain(HTTP_WAKE_KEYS)
}

/// Where the metrics go and who computes the scaling value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Sidecar collector → KEDA OTel add-on; `external` trigger at its scaler.
    Otel,
    /// An existing Prometheus; `prometheus` trigger, no sidecar.
    Prometheus,
    /// Any KEDA external scaler with free-form metadata; no sidecar.
    External,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Otel => "otel",
            Backend::Prometheus => "prometheus",
            Backend::External => "external",
        }
    }
}

/// The value a trigger is computed from.
#[derive(Clone, Debug, PartialEq)]
pub enum TriggerQuery {
    /// An add-on `metricQuery`, already scoped to the Deployment and namespace.
    Otel(AddonQuery),
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
    pub polling_interval: Option<i32>,
    pub cooldown_period: Option<i32>,
    pub initial_cooldown_period: Option<i32>,
    pub fallback: Option<Fallback>,
    pub scale_up_stabilization: Option<i32>,
    pub scale_down_stabilization: Option<i32>,
    /// `advanced.horizontalPodAutoscalerConfig.name`, when set by the user.
    pub hpa_name: Option<String>,
    pub scrape: Scrape,
    /// `scalerAddress` (otel and external backends).
    pub scaler_address: String,
    /// `serverAddress` (prometheus backend).
    pub prometheus_address: String,
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
    pub fn sidecar_metrics(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for t in &self.triggers {
            let TriggerQuery::Otel(q) = &t.query else {
                continue;
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

/// `vllm:e2e_request_latency_seconds_count` → `vllm:e2e_request_latency_seconds`.
pub fn histogram_base(metric: &str) -> Option<&str> {
    metric
        .strip_suffix("_count")
        .or_else(|| metric.strip_suffix("_sum"))
        .filter(|b| !b.is_empty())
}

/// KEDA's fallback: replicas to run while the scaler fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fallback {
    pub replicas: i32,
    pub failure_threshold: i32,
}

/// The Deployment an object's ScaledObject targets.
pub fn target_deployment(w: &Workload) -> String {
    match w.kind {
        WorkloadKind::Deployment => w.name.clone(),
        WorkloadKind::InferenceService => format!("{}-predictor", w.name),
    }
}

/// `Ok(None)` when the object is not opted in (`enabled` absent or `"false"`).
pub fn parse(
    w: &Workload,
    cfg: &WebhookConfig,
) -> Result<(Option<AutoscalingSpec>, Vec<String>), Invalid> {
    let mut r = Reader {
        w,
        f: Findings::default(),
    };
    match r.get("enabled", values::boolean) {
        Some(true) => {}
        Some(false) => return Ok((None, Vec::new())),
        None if r.raw("enabled").is_none() => return Ok((None, Vec::new())),
        None => {}
    }
    r.unknown_keys();
    if w.name.is_empty() {
        r.f.problem(Problem::new(
            "metadata.name",
            None,
            "the object has no name (generateName alone cannot be scoped)",
            "give the object a fixed metadata.name",
        ));
    }
    let spec = r.spec(cfg);
    r.f.finish(spec).map(|(s, w)| (Some(s), w))
}

struct Reader<'a> {
    w: &'a Workload,
    f: Findings,
}

fn key(short: &str) -> String {
    format!("{PREFIX}{short}")
}

impl<'a> Reader<'a> {
    fn raw(&self, short: &str) -> Option<&'a str> {
        self.w.annotations.get(&key(short)).map(String::as_str)
    }

    /// Parses an annotation; records a problem and returns `None` when it is invalid.
    fn get<T>(&mut self, short: &str, p: impl Fn(&str) -> Result<T, Refusal>) -> Option<T> {
        let v = self.raw(short)?;
        match p(v) {
            Ok(t) => Some(t),
            Err(r) => {
                self.f
                    .problem(Problem::new(key(short), Some(v), r.reason, r.fix));
                None
            }
        }
    }

    fn bad(&mut self, short: &str, reason: impl Into<String>, fix: impl Into<String>) {
        let v = self.raw(short);
        self.f.problem(Problem::new(key(short), v, reason, fix));
    }

    fn unknown_keys(&mut self) {
        let unknown: Vec<(String, String)> = self
            .w
            .annotations
            .iter()
            .filter_map(|(k, v)| {
                let short = k.strip_prefix(PREFIX)?;
                (k != STATUS && !known_keys().any(|known| known == short))
                    .then(|| (k.clone(), v.clone()))
            })
            .collect();
        for (k, v) in unknown {
            let short = k.strip_prefix(PREFIX).unwrap_or(&k);
            let fix = match closest(short) {
                Some(s) => format!("did you mean {PREFIX}{s}?"),
                None => format!(
                    "remove it; known keys: {}",
                    known_keys().collect::<Vec<_>>().join(", ")
                ),
            };
            self.f
                .problem(Problem::new(k.clone(), Some(&v), "unknown annotation", fix));
        }
    }

    fn spec(&mut self, cfg: &WebhookConfig) -> AutoscalingSpec {
        let w = self.w;
        let backend = match self.raw("backend") {
            None | Some("otel") => Backend::Otel,
            Some("prometheus") => Backend::Prometheus,
            Some("external") => Backend::External,
            Some(_) => {
                self.bad(
                    "backend",
                    "unknown backend",
                    "write \"otel\" (sidecar → KEDA OTel scaler), \"prometheus\" or \"external\"",
                );
                Backend::Otel
            }
        };
        let target_deployment = target_deployment(w);
        let vllm_version = self.vllm_version();

        let min_replicas = self.get("min-replicas", values::count).unwrap_or(1);
        let max_replicas = match self.raw("max-replicas") {
            None => {
                self.f.problem(Problem::new(
                    key("max-replicas"),
                    None,
                    "required: the most replicas (GPUs) this model may use",
                    format!("add {PREFIX}max-replicas: \"4\" (any whole number ≥ 1)"),
                ));
                1
            }
            Some(_) => match self.get("max-replicas", values::count) {
                Some(0) => {
                    self.bad("max-replicas", "must be at least 1", "write \"1\" or more");
                    0
                }
                Some(n) => n,
                None => 1,
            },
        };
        if min_replicas > max_replicas && max_replicas >= 1 {
            self.bad(
                "min-replicas",
                format!("greater than max-replicas ({max_replicas})"),
                format!(
                    "write a number between 0 and {max_replicas}, or raise {PREFIX}max-replicas"
                ),
            );
        }

        let scale_to_zero = min_replicas == 0;
        // KEDA's scale loop polls every pollingInterval at any replica count; the cooldowns
        // only delay the step to zero (kedacore/keda pkg/scaling/scale_handler.go
        // startScaleLoop; pkg/scaling/executor/scale_scaledobjects.go scaleToZeroOrIdle).
        let zero_only = |r: &mut Self, short: &str| -> Option<i32> {
            let v = r.get(short, values::seconds)?;
            if scale_to_zero {
                Some(v)
            } else {
                r.f.warn(format!(
                    "{PREFIX}{short} is ignored: KEDA only uses it when {PREFIX}min-replicas is \"0\""
                ));
                None
            }
        };
        let polling_interval = self.get("polling-interval", values::seconds);
        let cooldown_period = zero_only(self, "cooldown-period");
        let initial_cooldown_period = zero_only(self, "initial-cooldown-period");
        if polling_interval == Some(0) {
            self.bad(
                "polling-interval",
                "must be at least 1 second",
                "write \"30\" or \"30s\"",
            );
        }

        let scale_up_stabilization = self.stabilization("scale-up-stabilization");
        let scale_down_stabilization = self.stabilization("scale-down-stabilization");

        let hpa_name = self.get("hpa-name", |v| {
            if is_dns_label(v) {
                Ok(v.to_string())
            } else {
                Err(Refusal {
                    reason: "not a valid HPA name".into(),
                    fix: "write a lowercase DNS label of at most 63 characters".into(),
                })
            }
        });

        let scrape = self.scrape();
        let scaler_address = match backend {
            Backend::Prometheus => String::new(),
            Backend::Otel => self
                .get("scaler-address", values::grpc_address)
                .unwrap_or_else(|| cfg.scaler_address.clone()),
            Backend::External => {
                match self.get("scaler-address", values::grpc_address) {
                    Some(a) => a,
                    None if !cfg.external_scaler_address.is_empty() => {
                        cfg.external_scaler_address.clone()
                    }
                    None => {
                        if self.raw("scaler-address").is_none() {
                            self.f.problem(Problem::new(
                            key("scaler-address"),
                            None,
                            "required for the external backend",
                            format!("add {PREFIX}scaler-address: \"my-scaler.my-namespace.svc:9090\""),
                        ));
                        }
                        String::new()
                    }
                }
            }
        };
        let prometheus_address = if backend == Backend::Prometheus {
            self.get("prometheus-address", values::http_url)
                .unwrap_or_else(|| cfg.prometheus_address.clone())
        } else {
            String::new()
        };
        if backend != Backend::Otel
            && self.raw("scaler-address").is_some()
            && backend == Backend::Prometheus
        {
            self.f.warn(format!(
                "{PREFIX}scaler-address is ignored by the prometheus backend"
            ));
        }
        if backend != Backend::Prometheus && self.raw("prometheus-address").is_some() {
            self.f.warn(format!(
                "{PREFIX}prometheus-address is ignored by the {} backend",
                backend.as_str()
            ));
        }

        let sidecar = self.sidecar(backend, cfg);

        let ctx = TriggerContext {
            backend,
            deployment: target_deployment.clone(),
            namespace: w.namespace.clone(),
            vllm_version,
        };
        let triggers = self.triggers(&ctx);

        let fallback = self.fallback(&triggers, max_replicas, backend, cfg);
        let http_wake = self.http_wake(cfg, min_replicas, &triggers);

        let spec = AutoscalingSpec {
            backend,
            target_deployment,
            namespace: w.namespace.clone(),
            triggers,
            min_replicas,
            max_replicas,
            polling_interval,
            cooldown_period,
            initial_cooldown_period,
            fallback,
            scale_up_stabilization,
            scale_down_stabilization,
            hpa_name,
            scrape,
            scaler_address,
            prometheus_address,
            sidecar,
            http_wake,
        };
        self.scale_to_zero_wakes(&spec);
        spec
    }

    /// At zero replicas there is no pod, so no sidecar and no data: the KEDA OTel add-on then
    /// answers 0 (its store's default, kedify/otel-add-on scaler/handlers.go getMetric) and its
    /// `IsActive` is `value > 0`, so a workload whose triggers all read its own pods stays at
    /// zero for ever. Refused unless some trigger exists without the pods.
    fn scale_to_zero_wakes(&mut self, spec: &AutoscalingSpec) {
        // An HTTP wake that does not parse has its own problems reported already.
        let wake_attempted = HTTP_WAKE_KEYS.iter().any(|k| self.raw(k).is_some());
        if spec.min_replicas != 0
            || spec.triggers.is_empty()
            || spec.wakes_from_zero()
            || wake_attempted
        {
            return;
        }
        self.bad(
            "min-replicas",
            "with scale to zero every trigger reads this workload's own pods, which do not exist at zero replicas: it would never wake up",
            format!(
                "keep {PREFIX}min-replicas \"1\", or add a wake path: HTTP wake through the KEDA HTTP add-on ({PREFIX}http-wake-service, -port and -hosts), or a trigger whose source exists at zero pods: {PREFIX}source: \"gateway\" (or \"source\": \"gateway\" in a triggers entry) with a query on a router, gateway or queue metric (on any backend), or the external backend"
            ),
        );
    }

    fn vllm_version(&mut self) -> Option<Version> {
        if self.raw("vllm-version").is_some() {
            return self.get("vllm-version", |v| {
                Version::parse(v).ok_or(Refusal {
                    reason: "not a version".into(),
                    fix: "write the vLLM version such as \"0.11.0\"".into(),
                })
            });
        }
        self.w
            .images
            .iter()
            .find_map(|i| presets::version_from_image(i))
    }

    fn stabilization(&mut self, short: &str) -> Option<i32> {
        let v = self.get(short, values::seconds)?;
        if v > 3600 {
            self.bad(
                short,
                "the HPA accepts at most 3600 seconds",
                "write a duration up to \"1h\"",
            );
            return None;
        }
        Some(v)
    }

    fn scrape(&mut self) -> Scrape {
        let w = self.w;
        let port = if self.raw("metrics-port").is_some() {
            self.get("metrics-port", values::port).unwrap_or(8000)
        } else if let Some(p) = w.annotations.get(KSERVE_PORT) {
            match values::port(p) {
                Ok(p) => p,
                Err(r) => {
                    self.f
                        .problem(Problem::new(KSERVE_PORT, Some(p), r.reason, r.fix));
                    8000
                }
            }
        } else if w.kind == WorkloadKind::InferenceService || w.kserve_predictor {
            8080
        } else {
            8000
        };
        let path = if self.raw("metrics-path").is_some() {
            self.get("metrics-path", values::http_path)
                .unwrap_or_else(|| "/metrics".into())
        } else {
            match w.annotations.get(KSERVE_PATH).map(|p| values::http_path(p)) {
                Some(Ok(p)) => p,
                _ => "/metrics".to_string(),
            }
        };
        let interval_seconds = match self.get("scrape-interval", values::seconds) {
            Some(0) => {
                self.bad(
                    "scrape-interval",
                    "must be at least 1 second",
                    "write \"5s\"",
                );
                5
            }
            Some(s) => s,
            None => 5,
        };
        Scrape {
            port,
            path,
            interval_seconds,
        }
    }

    fn sidecar(&mut self, backend: Backend, cfg: &WebhookConfig) -> SidecarMode {
        let asked = match self.raw("sidecar") {
            None => SidecarMode::Auto,
            Some(v) => match SidecarMode::ALL.iter().find(|(s, _)| *s == v) {
                Some((_, m)) => *m,
                None => {
                    self.bad(
                        "sidecar",
                        "unknown sidecar mode",
                        "write \"auto\", \"native\", \"container\" or \"none\"",
                    );
                    SidecarMode::Auto
                }
            },
        };
        if backend != Backend::Otel {
            if matches!(asked, SidecarMode::Native | SidecarMode::Container) {
                self.f.warn(format!(
                    "{PREFIX}sidecar is ignored: the {} backend needs no collector sidecar",
                    backend.as_str()
                ));
            }
            return SidecarMode::None;
        }
        let mode = match asked {
            SidecarMode::Auto => cfg.sidecar_mode,
            m => m,
        };
        let mode = match mode {
            SidecarMode::Auto if cfg.native_sidecars => SidecarMode::Native,
            SidecarMode::Auto => SidecarMode::Container,
            m => m,
        };
        if mode != SidecarMode::None && self.w.annotations.contains_key(OTEL_OPERATOR_INJECT) {
            self.f.warn(format!(
                "{OTEL_OPERATOR_INJECT} is also set: the OpenTelemetry operator would inject a second collector and every series would be counted twice; remove it, or set {PREFIX}sidecar: \"none\" to keep the operator's collector"
            ));
        }
        mode
    }

    fn fallback(
        &mut self,
        triggers: &[TriggerSpec],
        max_replicas: i32,
        backend: Backend,
        cfg: &WebhookConfig,
    ) -> Option<Fallback> {
        let replicas = self.get("fallback-replicas", values::count);
        let threshold = self.get("fallback-failure-threshold", values::count);
        if replicas.is_none() {
            if threshold.is_some() {
                self.f.warn(format!(
                    "{PREFIX}fallback-failure-threshold is ignored without {PREFIX}fallback-replicas"
                ));
            }
            return None;
        }
        let replicas = replicas?;
        if threshold == Some(0) {
            self.bad(
                "fallback-failure-threshold",
                "must be at least 1",
                "write \"3\"",
            );
        }
        // Before KEDA 2.18 fallback needed an AverageValue trigger; from 2.18 any non-cpu/memory
        // trigger will do (kedacore/keda CHANGELOG v2.18.0 #6655; CheckFallbackValid in
        // apis/keda/v1alpha1/scaledobject_types.go).
        let any_metric_type = cfg.keda_version >= crate::keda::FALLBACK_ON_VALUE_SINCE;
        if !any_metric_type
            && !triggers.is_empty()
            && !triggers
                .iter()
                .any(|t| t.metric_type == MetricType::AverageValue)
        {
            self.bad(
                "fallback-replicas",
                format!(
                    "KEDA {} only falls back for triggers with metricType AverageValue (sum or count), and every trigger here is a mean (avg/min/max); KEDA {} lifted this",
                    cfg.keda_version,
                    crate::keda::FALLBACK_ON_VALUE_SINCE
                ),
                "add a sum-aggregated trigger such as the queue-depth preset, upgrade KEDA, or remove the annotation",
            );
        }
        if backend == Backend::Otel {
            self.f.warn(format!(
                "{PREFIX}fallback-replicas: the KEDA OTel add-on answers 0 for a metric it has no data for, so KEDA falls back only when the add-on itself fails; to fall back when the sidecars stop reporting, run the add-on with METRIC_STORE_ERROR_IF_NOT_FOUND=true (Helm: settings.metricStore.errIfNotFound), a global switch that also errors for triggers whose metric legitimately has no data"
            ));
        }
        if replicas > max_replicas {
            self.f.warn(format!(
                "{PREFIX}fallback-replicas ({replicas}) is above max-replicas ({max_replicas})"
            ));
        }
        Some(Fallback {
            replicas,
            failure_threshold: threshold.unwrap_or(3),
        })
    }

    fn triggers(&mut self, ctx: &TriggerContext) -> Vec<TriggerSpec> {
        let singles = TRIGGER_KEYS;
        let mut inputs: Vec<TriggerInput> = Vec::new();
        if let Some(raw) = self.raw("triggers") {
            let clash: Vec<&str> = singles
                .iter()
                .copied()
                .filter(|s| self.raw(s).is_some())
                .collect();
            if !clash.is_empty() {
                self.bad(
                    "triggers",
                    format!(
                        "set together with {}",
                        clash
                            .iter()
                            .map(|s| key(s))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    "put every metric inside the triggers list, or use the single-metric annotations without it",
                );
            }
            match parse_trigger_list(raw) {
                Ok(list) => inputs = list,
                Err(r) => self.bad("triggers", r.reason, r.fix),
            }
        } else if ctx.backend == Backend::External {
            let metadata = match self.raw("scaler-metadata") {
                None => BTreeMap::new(),
                Some(raw) => match parse_string_map(raw) {
                    Ok(m) => m,
                    Err(r) => {
                        self.bad("scaler-metadata", r.reason, r.fix);
                        BTreeMap::new()
                    }
                },
            };
            if metadata.contains_key("scalerAddress") {
                self.bad(
                    "scaler-metadata",
                    "scalerAddress belongs in its own annotation",
                    format!("move it to {PREFIX}scaler-address"),
                );
            }
            for s in singles {
                if self.raw(s).is_some() {
                    self.f.warn(format!(
                        "{PREFIX}{s} is ignored by the external backend: put the scaler's settings in {PREFIX}scaler-metadata"
                    ));
                }
            }
            return vec![TriggerSpec {
                name: "external".into(),
                query: TriggerQuery::External(metadata),
                // The scaler runs on its own; what it reads is its business.
                source: TriggerSource::Gateway,
                metric_type: MetricType::AverageValue,
                target: None,
                activation_target: None,
                operation_over_time: None,
            }];
        } else {
            let mut input = TriggerInput {
                label: |f: &str| key(f),
                ..TriggerInput::default()
            };
            for s in singles {
                if let Some(v) = self.raw(s) {
                    input.fields.insert(s.to_string(), v.to_string());
                }
            }
            inputs.push(input);
        }
        if self.raw("scaler-metadata").is_some() && ctx.backend != Backend::External {
            self.f.warn(format!(
                "{PREFIX}scaler-metadata is ignored by the {} backend",
                ctx.backend.as_str()
            ));
        }
        let mut out: Vec<TriggerSpec> = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            if let Some(mut t) = resolve_trigger(input, i, ctx, &mut self.f) {
                let explicit = input.fields.contains_key("name");
                if out.iter().any(|o| o.name == t.name) {
                    if explicit {
                        self.f.problem(Problem::new(
                            input.key(i, "name"),
                            Some(&t.name),
                            "another trigger has the same name (KEDA requires unique names)",
                            "give each trigger its own name",
                        ));
                    } else {
                        let base = t.name.clone();
                        let mut n = 2;
                        while out.iter().any(|o| o.name == t.name) {
                            t.name = format!("{base}_{n}");
                            n += 1;
                        }
                    }
                }
                out.push(t);
            }
        }
        out
    }
}

fn is_dns_label(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-')
}

/// The closest known key, for "did you mean".
fn closest(short: &str) -> Option<&'static str> {
    known_keys()
        .map(|k| (strsim::levenshtein(short, k), k))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}
