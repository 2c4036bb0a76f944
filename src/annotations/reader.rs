//! Reads the workload-wide annotations into an [`AutoscalingSpec`], after checking every key
//! against the [`keys`] table.

use std::collections::BTreeSet;

use super::behavior::Direction;
use super::keys::{self, Group};
use super::spec;
use super::triggers::{
    TriggerContext, TriggerInput, parse_string_map, parse_trigger_list, resolve_trigger,
};
use super::values::{self, Refusal};
use super::{
    AutoscalingSpec, Backend, Fallback, KSERVE_PATH, KSERVE_PORT, OTEL_OPERATOR_INJECT, PREFIX,
    STATUS, Scrape, TriggerQuery, TriggerSource, TriggerSpec, key, target_deployment,
};
use crate::config::{SidecarMode, WebhookConfig};
use crate::keda::MetricType;
use crate::keda::scaled_object::FallbackBehavior;
use crate::presets::{self, Version};
use crate::problem::{Findings, Invalid, Problem};
use crate::workload::{Workload, WorkloadKind};

pub(super) fn read(
    w: &Workload,
    cfg: &WebhookConfig,
) -> Result<(Option<AutoscalingSpec>, Vec<String>), Invalid> {
    let mut r = Reader {
        w,
        f: Findings::default(),
        reported: BTreeSet::new(),
    };
    match r.get("enabled", values::boolean) {
        Some(true) => {}
        Some(false) => return Ok((None, Vec::new())),
        None if r.raw("enabled").is_none() => return Ok((None, Vec::new())),
        None => {}
    }
    let backend = r.backend(cfg);
    r.check_keys(backend);
    if w.name.is_empty() {
        r.f.problem(Problem::new(
            "metadata.name",
            None,
            "the object has no name (generateName alone cannot be scoped)",
            "give the object a fixed metadata.name",
        ));
    }
    let spec = r.spec(backend, cfg);
    r.f.finish(spec).map(|(s, w)| (Some(s), w))
}

pub(super) struct Reader<'a> {
    pub(super) w: &'a Workload,
    pub(super) f: Findings,
    /// Keys whose value was already refused: not reported twice.
    reported: BTreeSet<String>,
}

/// What the replica annotations say.
struct Replicas {
    min: i32,
    max: i32,
    idle: Option<i32>,
}

impl<'a> Reader<'a> {
    pub(super) fn raw(&self, short: &str) -> Option<&'a str> {
        self.w.annotations.get(&key(short)).map(String::as_str)
    }

    /// Parses an annotation; records a problem (once per key) and returns `None` when it is
    /// invalid.
    pub(super) fn get<T>(
        &mut self,
        short: &str,
        p: impl Fn(&str) -> Result<T, Refusal>,
    ) -> Option<T> {
        let v = self.raw(short)?;
        match p(v) {
            Ok(t) => Some(t),
            Err(r) => {
                if self.reported.insert(short.to_string()) {
                    self.f
                        .problem(Problem::new(key(short), Some(v), r.reason, r.fix));
                }
                None
            }
        }
    }

    pub(super) fn bad(&mut self, short: &str, reason: impl Into<String>, fix: impl Into<String>) {
        let v = self.raw(short);
        self.f.problem(Problem::new(key(short), v, reason, fix));
    }

    /// The written backend, else the webhook's default.
    fn backend(&mut self, cfg: &WebhookConfig) -> Backend {
        let syntax = keys::Syntax::Backend;
        self.get("backend", |v| {
            syntax.check(v)?;
            Backend::parse(v).ok_or(Refusal {
                reason: "unknown backend".into(),
                fix: "write \"otel\", \"builtin\", \"prometheus\" or \"external\"".into(),
            })
        })
        .unwrap_or(cfg.default_backend)
    }

    /// Every `llm-autoscale.io/` key against the table: unknown keys (with "did you mean"),
    /// keys the backend never reads, and the syntax of the rest (trigger fields are checked
    /// per trigger, where a `triggers` entry is checked the same way).
    fn check_keys(&mut self, backend: Backend) {
        let set: Vec<(&'a str, &'a str)> = self
            .w
            .annotations
            .iter()
            .filter(|(k, _)| k.as_str() != STATUS)
            .filter_map(|(k, v)| Some((k.strip_prefix(PREFIX)?, v.as_str())))
            .collect();
        for (short, v) in set {
            let Some(k) = keys::find(short) else {
                let fix = match keys::closest(short) {
                    Some(s) => format!("did you mean {PREFIX}{s}?"),
                    None => format!("remove it; known keys: {}", keys::names()),
                };
                self.f
                    .problem(Problem::new(key(short), Some(v), "unknown annotation", fix));
                continue;
            };
            if !k.read_by.reads(backend) {
                self.reported.insert(short.to_string());
                self.f.problem(unread(k, &key(short), v, backend));
                continue;
            }
            if k.group != Group::Trigger {
                let syntax = k.syntax;
                self.get(short, |v| syntax.check(v));
            }
        }
    }

    fn spec(&mut self, backend: Backend, cfg: &WebhookConfig) -> AutoscalingSpec {
        let w = self.w;
        let target_deployment = target_deployment(w);
        let replicas = self.replicas(backend);
        let loop_scales = spec::keda_loop_scales(replicas.min, replicas.idle);
        let (scaler_address, prometheus_address) = self.addresses(backend, cfg);
        let ctx = TriggerContext {
            backend,
            deployment: target_deployment.clone(),
            namespace: w.namespace.clone(),
            vllm_version: self.vllm_version(),
            collector_version: crate::render::collector_config::collector_version(
                &cfg.collector_image,
            ),
        };
        let triggers = self.triggers(&ctx);
        let mut spec = AutoscalingSpec {
            backend,
            target_deployment,
            namespace: w.namespace.clone(),
            min_replicas: replicas.min,
            max_replicas: replicas.max,
            idle_replicas: replicas.idle,
            restore_to_original_replicas: self
                .get("restore-to-original-replica-count", values::boolean),
            polling_interval: self.loop_only("polling-interval", loop_scales),
            cooldown_period: self.loop_only("cooldown-period", loop_scales),
            initial_cooldown_period: self.loop_only("initial-cooldown-period", loop_scales),
            fallback: self.fallback(&triggers, replicas.max, backend, cfg),
            scale_up: self.scaling_rules(Direction::Up),
            scale_down: self.scaling_rules(Direction::Down),
            hpa_name: self.get("hpa-name", values::dns_label),
            scrape: self.scrape(),
            scaler_address,
            scaler_tls: backend == Backend::Builtin && cfg.builtin_scaler_tls,
            prometheus_address,
            prometheus: self.prometheus_options(backend),
            external_push: self.get("scaler-push", values::boolean).unwrap_or(false),
            sidecar: self.sidecar(backend, cfg),
            http_wake: self.http_wake(
                cfg,
                spec::scales_to_zero(replicas.min, replicas.idle),
                &triggers,
            ),
            triggers,
        };
        if backend == Backend::Wva {
            super::wva::apply_defaults(&mut spec);
        }
        self.scale_to_zero_wakes(&spec);
        self.percentiles_without_sidecar(&spec);
        self.nothing_to_forward(&mut spec);
        spec
    }

    /// A sidecar forwards this workload's own metrics; when every trigger reads a gateway
    /// (`source: gateway`), it would forward nothing (and a collector whose filter keeps no
    /// metric is not a valid configuration), so none is injected.
    fn nothing_to_forward(&mut self, spec: &mut AutoscalingSpec) {
        if spec.sidecar == SidecarMode::None
            || !spec.sidecar_metrics().is_empty()
            || !spec.sidecar_percentiles().is_empty()
        {
            return;
        }
        spec.sidecar = SidecarMode::None;
        self.f.warn(format!(
            "no sidecar is injected: every trigger reads a gateway ({PREFIX}source: \"gateway\"), none reads this workload's pods"
        ));
    }

    /// With `sidecar: "none"` nothing computes the gauges the latency triggers read.
    fn percentiles_without_sidecar(&mut self, spec: &AutoscalingSpec) {
        let gauges: Vec<String> = spec
            .sidecar_percentiles()
            .iter()
            .map(|w| w.gauge_name())
            .collect();
        if spec.sidecar == SidecarMode::None && spec.sidecar_deltas() {
            self.f.warn(format!(
                "{PREFIX}sidecar: \"none\": your own collector must send the triggers' metrics to the built-in scaler with pod, deployment and namespace attributes, counters and histograms as deltas (cumulative_to_delta), and the namespace's token (Secret {}) in the authorization header{}, or the triggers report errors",
                crate::scaler::trust::SECRET_NAME,
                if spec.scaler_tls {
                    ", over TLS verified with the CA in that Secret's ca.crt"
                } else {
                    ""
                }
            ));
        }
        if spec.sidecar == SidecarMode::None && !gauges.is_empty() {
            self.f.warn(format!(
                "{PREFIX}sidecar: \"none\": the latency triggers read {}, which the sidecar would compute per scrape window; your own collector must send them (cumulative_to_delta, then extract_percentile_metric), or they read 0",
                gauges.join(", ")
            ));
        }
    }

    fn replicas(&mut self, backend: Backend) -> Replicas {
        // WVA scales variants to zero itself; its integration leaves KEDA's default, 0.
        let default_min = if backend == Backend::Wva { 0 } else { 1 };
        let min = self
            .get("min-replicas", values::count)
            .unwrap_or(default_min);
        let max = match self.raw("max-replicas") {
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
        if min > max && max >= 1 {
            self.bad(
                "min-replicas",
                format!("greater than max-replicas ({max})"),
                format!("write a number between 0 and {max}, or raise {PREFIX}max-replicas"),
            );
        }
        let idle = self.idle_replicas(min);
        Replicas { min, max, idle }
    }

    /// `idleReplicaCount`: below min-replicas (KEDA `CheckReplicaCountBoundsAreValid`, same
    /// file); with min-replicas 0 it would change nothing.
    fn idle_replicas(&mut self, min: i32) -> Option<i32> {
        let idle = self.get("idle-replica-count", values::count)?;
        if min == 0 {
            self.bad(
                "idle-replica-count",
                format!(
                    "with {PREFIX}min-replicas \"0\" the workload already goes to zero when idle"
                ),
                format!(
                    "remove it, or raise {PREFIX}min-replicas to the replicas to run while active"
                ),
            );
            return None;
        }
        if idle >= min {
            self.bad(
                "idle-replica-count",
                format!("KEDA requires it below min-replicas ({min})"),
                format!("write a number below {min}, usually \"0\""),
            );
            return None;
        }
        Some(idle)
    }

    /// The polling interval and the cooldowns act only through KEDA's own scale loop, which
    /// decides only the steps to and from zero (or the idle count): kedacore/keda v2.21.0
    /// `IsPollingIntervalRelevant` and the webhook's warnings that both are "not relevant"
    /// otherwise (apis/keda/v1alpha1/scaledobject_webhook.go); the cooldowns delay
    /// `scaleToZeroOrIdle` (pkg/scaling/executor/scale_scaledobjects.go). Elsewhere the HPA
    /// drives every step, so they are refused.
    fn loop_only(&mut self, short: &str, loop_scales: bool) -> Option<i32> {
        let v = self.get(short, values::seconds)?;
        if !loop_scales {
            self.bad(
                short,
                format!("KEDA only uses it when {PREFIX}min-replicas is \"0\" or {PREFIX}idle-replica-count is set; otherwise the HPA scales"),
                format!("remove it, or set {PREFIX}min-replicas: \"0\" with a wake path"),
            );
            return None;
        }
        if short == "polling-interval" && v == 0 {
            self.bad(
                short,
                "must be at least 1 second",
                "write \"30\" or \"30s\"",
            );
        }
        Some(v)
    }

    /// `scalerAddress` (otel, external) and `serverAddress` (prometheus); the table has
    /// already refused either on a backend that does not read it.
    fn addresses(&mut self, backend: Backend, cfg: &WebhookConfig) -> (String, String) {
        match backend {
            Backend::Prometheus | Backend::Wva => (
                String::new(),
                self.get("prometheus-address", values::http_url)
                    .unwrap_or_else(|| cfg.prometheus_address.clone()),
            ),
            Backend::Otel => (
                self.get("scaler-address", values::grpc_address)
                    .unwrap_or_else(|| cfg.scaler_address.clone()),
                String::new(),
            ),
            Backend::Builtin => (
                self.get("scaler-address", values::grpc_address)
                    .unwrap_or_else(|| cfg.builtin_scaler_address.clone()),
                String::new(),
            ),
            Backend::External => (self.external_scaler_address(cfg), String::new()),
        }
    }

    fn external_scaler_address(&mut self, cfg: &WebhookConfig) -> String {
        if let Some(a) = self.get("scaler-address", values::grpc_address) {
            return a;
        }
        if !cfg.external_scaler_address.is_empty() {
            return cfg.external_scaler_address.clone();
        }
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

    /// At zero replicas there is no pod, so no sidecar and no data: the KEDA OTel add-on then
    /// answers 0 (its store's default, kedify/otel-add-on scaler/handlers.go getMetric) and its
    /// `IsActive` is `value > 0`, so a workload whose triggers all read its own pods stays at
    /// zero for ever. Refused unless some trigger exists without the pods.
    fn scale_to_zero_wakes(&mut self, spec: &AutoscalingSpec) {
        // An HTTP wake that does not parse has its own problems reported already.
        let wake_attempted = keys::of(Group::HttpWake).any(|k| self.raw(k.name).is_some());
        if !spec.scales_to_zero()
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

    /// The sidecar mode; `None` for backends without a sidecar (the table refuses the key
    /// there).
    fn sidecar(&mut self, backend: Backend, cfg: &WebhookConfig) -> SidecarMode {
        if !matches!(backend, Backend::Otel | Backend::Builtin) {
            return SidecarMode::None;
        }
        let asked = self
            .get("sidecar", |v| {
                SidecarMode::ALL
                    .iter()
                    .find(|(s, _)| *s == v)
                    .map(|(_, m)| *m)
                    .ok_or(Refusal {
                        reason: "unknown sidecar mode".into(),
                        fix: "write \"auto\", \"native\", \"container\" or \"none\"".into(),
                    })
            })
            .unwrap_or(SidecarMode::Auto);
        let mode = match (asked, cfg.sidecar_mode) {
            (SidecarMode::Auto, configured) => configured,
            (m, _) => m,
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
        let threshold = self.get("fallback-failure-threshold", values::count);
        let Some(replicas) = self.get("fallback-replicas", values::count) else {
            if self.raw("fallback-replicas").is_none() {
                for k in ["fallback-failure-threshold", "fallback-behavior"] {
                    if self.raw(k).is_some() {
                        self.bad(
                            k,
                            format!("KEDA only reads it with {PREFIX}fallback-replicas"),
                            format!("add {PREFIX}fallback-replicas, or remove it"),
                        );
                    }
                }
            }
            return None;
        };
        if threshold == Some(0) {
            self.bad(
                "fallback-failure-threshold",
                "must be at least 1",
                "write \"3\"",
            );
        }
        self.fallback_trigger_rule(triggers, cfg);
        if backend == Backend::Prometheus && self.raw("ignore-null-values").is_none() {
            self.f.warn(format!(
                "{PREFIX}fallback-replicas: KEDA's prometheus scaler reads an empty result (a lost scrape target, a series that is gone) as 0 unless ignoreNullValues is false (kedacore/keda pkg/scalers/prometheus_scaler.go, default true), so it falls back only when Prometheus itself fails; set {PREFIX}ignore-null-values: \"false\" to fall back on an empty result too"
            ));
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
            behavior: self.fallback_behavior(cfg),
        })
    }

    /// `fallback.behavior`, as far as the configured KEDA knows it (`scalingModifiers` needs a
    /// formula this product does not render).
    fn fallback_behavior(&mut self, cfg: &WebhookConfig) -> Option<FallbackBehavior> {
        let b = self.get("fallback-behavior", |v| {
            match FallbackBehavior::from(v.to_string()) {
                FallbackBehavior::Other(_) => Err(Refusal {
                    reason: "unknown fallback behavior".into(),
                    fix: "write static, currentReplicas, currentReplicasIfHigher or currentReplicasIfLower".into(),
                }),
                b => Ok(b),
            }
        })?;
        if cfg.keda_version < crate::keda::FALLBACK_BEHAVIOR_SINCE {
            self.bad(
                "fallback-behavior",
                format!(
                    "KEDA {} has no fallback behavior (it arrived in {})",
                    cfg.keda_version,
                    crate::keda::FALLBACK_BEHAVIOR_SINCE
                ),
                "remove it, or upgrade KEDA and set --keda-version",
            );
            return None;
        }
        Some(b)
    }

    /// Before KEDA 2.18 fallback needed an AverageValue trigger; from 2.18 any non-cpu/memory
    /// trigger will do (kedacore/keda CHANGELOG v2.18.0 #6655; CheckFallbackValid in
    /// apis/keda/v1alpha1/scaledobject_types.go).
    fn fallback_trigger_rule(&mut self, triggers: &[TriggerSpec], cfg: &WebhookConfig) {
        let any_metric_type = cfg.keda_version >= crate::keda::FALLBACK_ON_VALUE_SINCE;
        if any_metric_type
            || triggers.is_empty()
            || triggers
                .iter()
                .any(|t| t.metric_type == MetricType::AverageValue)
        {
            return;
        }
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

    /// The triggers: a `triggers` list, the external backend's one trigger, or the
    /// single-metric keys.
    fn triggers(&mut self, ctx: &TriggerContext) -> Vec<TriggerSpec> {
        let inputs = if let Some(raw) = self.raw("triggers") {
            self.refuse_single_keys_beside_the_list();
            let (inputs, problems) = parse_trigger_list(raw);
            for p in problems {
                self.f.problem(p);
            }
            inputs
        } else if ctx.backend == Backend::External {
            return vec![self.external_trigger()];
        } else if ctx.backend == Backend::Wva {
            return self
                .wva_trigger(&ctx.deployment, &ctx.namespace)
                .into_iter()
                .collect();
        } else {
            let mut input = TriggerInput::single();
            for k in keys::of(Group::Trigger) {
                if let Some(v) = self.raw(k.name) {
                    input.fields.insert(k.name.to_string(), v.to_string());
                }
            }
            vec![input]
        };
        let mut out: Vec<TriggerSpec> = Vec::new();
        for input in &inputs {
            if let Some(t) = resolve_trigger(input, ctx, &mut self.f) {
                let t = self.unique_name(t, input, &out);
                out.push(t);
            }
        }
        out
    }

    fn refuse_single_keys_beside_the_list(&mut self) {
        let clash: Vec<String> = keys::of(Group::Trigger)
            .filter(|k| self.raw(k.name).is_some())
            .map(|k| key(k.name))
            .collect();
        if !clash.is_empty() {
            self.bad(
                "triggers",
                format!("set together with {}", clash.join(", ")),
                "put every metric inside the triggers list, or use the single-metric annotations without it",
            );
        }
    }

    /// KEDA requires unique trigger names: a derived name gets a suffix, a written one is
    /// refused.
    fn unique_name(
        &mut self,
        mut t: TriggerSpec,
        input: &TriggerInput,
        taken: &[TriggerSpec],
    ) -> TriggerSpec {
        if !taken.iter().any(|o| o.name == t.name) {
            return t;
        }
        if input.fields.contains_key("name") {
            self.f.problem(Problem::new(
                input.key("name"),
                Some(&t.name),
                "another trigger has the same name (KEDA requires unique names)",
                "give each trigger its own name",
            ));
            return t;
        }
        let base = t.name.clone();
        let mut n = 2;
        while taken.iter().any(|o| o.name == t.name) {
            t.name = format!("{base}_{n}");
            n += 1;
        }
        t
    }

    /// The external backend's trigger: `scaler-metadata` passed to the scaler as it is.
    fn external_trigger(&mut self) -> TriggerSpec {
        let metadata = self
            .get("scaler-metadata", parse_string_map)
            .unwrap_or_default();
        if metadata.contains_key("scalerAddress") {
            self.bad(
                "scaler-metadata",
                "scalerAddress belongs in its own annotation",
                format!("move it to {PREFIX}scaler-address"),
            );
        }
        TriggerSpec {
            name: "external".into(),
            query: TriggerQuery::External(metadata),
            // The scaler runs on its own; what it reads is its business.
            source: TriggerSource::Gateway,
            metric_type: self
                .get("metric-type", super::triggers::metric_type_of)
                .unwrap_or(MetricType::AverageValue),
            target: None,
            activation_target: None,
            operation_over_time: None,
            latency: None,
        }
    }
}

/// The refusal of a key the backend never reads.
pub(super) fn unread(k: &keys::Key, full_key: &str, v: &str, backend: Backend) -> Problem {
    let reason = if k.unread_because.is_empty() {
        format!("the {} backend never reads it", backend.as_str())
    } else {
        k.unread_because.to_string()
    };
    let readers: Vec<&str> = Backend::ALL
        .into_iter()
        .filter(|b| k.read_by.reads(*b))
        .map(Backend::as_str)
        .collect();
    Problem::new(
        full_key,
        Some(v),
        reason,
        format!(
            "remove it (it is read by the {} backend{})",
            readers.join(" and "),
            if readers.len() == 1 { "" } else { "s" }
        ),
    )
}
