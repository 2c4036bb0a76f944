//! One trigger at a time: the single-metric annotations or an entry of `triggers`, resolved
//! against presets, aliases and the backend into a validated [`TriggerSpec`].

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Backend, PREFIX, TriggerQuery, TriggerSource, TriggerSpec};
use crate::keda::{MetricType, OperationOverTime};
use crate::presets::{self, Version};
use crate::problem::{Findings, Problem};
use crate::query::{self, AddonQuery, Aggregation};
use serde::Deserialize;

use super::keys::{self, Group};
use super::values::{self, Refusal};

mod latency;

pub(super) struct TriggerContext {
    pub(super) backend: Backend,
    pub(super) deployment: String,
    pub(super) namespace: String,
    pub(super) vllm_version: Option<Version>,
    /// The sidecar collector's version (from its image tag), when known.
    pub(super) collector_version: Option<(u32, u32)>,
}

/// One trigger as written: either the single-metric annotations or one entry of `triggers`.
pub(super) struct TriggerInput {
    /// Whether this came from the `triggers` list (then keys are `triggers[i].field`).
    pub(super) listed: bool,
    /// The entry's place in the `triggers` list.
    pub(super) position: usize,
    pub(super) fields: BTreeMap<String, String>,
}

impl TriggerInput {
    /// The single-metric annotations (fields filled by the caller).
    pub(super) fn single() -> TriggerInput {
        TriggerInput {
            listed: false,
            position: 0,
            fields: BTreeMap::new(),
        }
    }

    pub(super) fn key(&self, field: &str) -> String {
        if self.listed {
            format!("{PREFIX}triggers[{}].{field}", self.position)
        } else {
            format!("{PREFIX}{field}")
        }
    }

    fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }
}

/// A value in a `triggers` entry or `scaler-metadata`: a string, or a number or boolean taken
/// as its text.
#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    String(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl Text {
    fn into_string(self) -> String {
        match self {
            Text::String(s) => s,
            Text::Number(n) => n.to_string(),
            Text::Bool(b) => b.to_string(),
        }
    }
}

/// One entry of the `triggers` list: the trigger keys of the table plus `name`; the
/// camelCase spellings of KEDA's metadata are accepted too.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Entry {
    name: Option<Text>,
    preset: Option<Text>,
    metric: Option<Text>,
    percentile: Option<Text>,
    target: Option<Text>,
    query: Option<Text>,
    aggregation: Option<Text>,
    #[serde(alias = "operationOverTime")]
    operation_over_time: Option<Text>,
    window: Option<Text>,
    #[serde(alias = "activationTarget")]
    activation_target: Option<Text>,
    source: Option<Text>,
    #[serde(alias = "metricType")]
    metric_type: Option<Text>,
}

impl Entry {
    fn into_input(self, position: usize) -> TriggerInput {
        let fields = [
            ("name", self.name),
            ("preset", self.preset),
            ("metric", self.metric),
            ("percentile", self.percentile),
            ("target", self.target),
            ("query", self.query),
            ("aggregation", self.aggregation),
            ("operation-over-time", self.operation_over_time),
            ("window", self.window),
            ("activation-target", self.activation_target),
            ("source", self.source),
            ("metric-type", self.metric_type),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), v?.into_string())))
        .collect();
        TriggerInput {
            listed: true,
            position,
            fields,
        }
    }
}

const LIST_EXAMPLE: &str = r#"write a JSON list such as [{"preset":"queue-depth","target":"5"},{"metric":"vllm:kv_cache_usage_perc","target":"0.8","aggregation":"avg"}]"#;

/// The `triggers` list: every entry that reads, and a problem for each one that does not
/// (all of them, not only the first).
pub(super) fn parse_trigger_list(raw: &str) -> (Vec<TriggerInput>, Vec<Problem>) {
    let list_problem = |reason: String| {
        let p = Problem::new(format!("{PREFIX}triggers"), Some(raw), reason, LIST_EXAMPLE);
        (Vec::new(), vec![p])
    };
    let entries: Vec<Value> = match serde_json::from_str::<Value>(raw) {
        Err(e) => return list_problem(format!("not valid JSON ({e})")),
        Ok(Value::Array(list)) if list.is_empty() => {
            return list_problem("the list is empty".into());
        }
        Ok(Value::Array(list)) => list,
        Ok(_) => return list_problem("not a JSON list".into()),
    };
    let mut inputs = Vec::new();
    let mut problems = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        match Entry::deserialize(entry) {
            Ok(e) => inputs.push(e.into_input(i)),
            Err(e) => problems.push(Problem::new(
                format!("{PREFIX}triggers[{i}]"),
                None,
                entry_error(&e.to_string()),
                format!(
                    "write an object of strings with the fields name, {}",
                    keys::of(Group::Trigger)
                        .map(|k| k.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
    (inputs, problems)
}

/// serde's message about an entry, in this product's words where serde's are unclear.
fn entry_error(message: &str) -> String {
    if message.contains("untagged enum Text") {
        "a field is not a string (nor a number or boolean)".into()
    } else if message.starts_with("invalid type") {
        format!("not a JSON object ({message})")
    } else {
        message.to_string()
    }
}

/// `scaler-metadata`: a JSON object of strings.
pub(super) fn parse_string_map(raw: &str) -> Result<BTreeMap<String, String>, Refusal> {
    let fix = r#"write a JSON object of strings such as {"metricName":"queue","targetValue":"5"}"#;
    let map: BTreeMap<String, Text> = serde_json::from_str(raw).map_err(|e| Refusal {
        reason: if e.to_string().contains("untagged enum Text") {
            "a value is not a string".into()
        } else {
            format!("not a JSON object of strings ({e})")
        },
        fix: fix.into(),
    })?;
    Ok(map.into_iter().map(|(k, v)| (k, v.into_string())).collect())
}

/// Turns one written trigger into a validated one, recording problems in `f`.
pub(super) fn resolve_trigger(
    input: &TriggerInput,
    ctx: &TriggerContext,
    f: &mut Findings,
) -> Option<TriggerSpec> {
    let before = f.problems.len();
    let mut r = Resolver { input, ctx, f };
    r.refuse_unread_fields();
    let preset = r.written_preset();
    if input.get("percentile").is_some() || preset.is_some_and(|p| p.percentile.is_some()) {
        let t = r.latency_trigger(preset);
        return t.filter(|_| r.f.problems.len() == before);
    }
    let aggregation_given = r.written_aggregation();
    let written = r.written_query();
    let written_metric = preset
        .map(|p| p.metric.to_string())
        .or_else(|| input.get("metric").map(str::to_string))
        .or_else(|| written.otel.as_ref().map(|q| q.metric.clone()));
    let metric = r.current_name(written_metric.as_deref());
    let preset = preset.or_else(|| presets::preset_for_metric(&metric, None));
    let aggregation = written
        .otel
        .as_ref()
        .and_then(|q| q.aggregation)
        .or(aggregation_given)
        .or(preset.map(|p| p.aggregation))
        .unwrap_or(Aggregation::Sum);
    let target = r.target(preset, &metric);
    let activation_target = r.activation_target();
    r.refuse_buckets_on_otel(&metric);
    r.refuse_histogram_read_as_a_value(&metric);
    let source = r.source();
    // Cumulative series are scaled on their rate: counters, and a histogram's _count/_sum.
    let counter = preset.is_some_and(|p| p.counter)
        || metric.ends_with("_total")
        || super::histogram_base(&metric).is_some();
    let operation_over_time = r.operation_over_time(preset, counter);
    let name = r.name(preset, &metric);
    let built = BuiltQuery {
        metric: &metric,
        aggregation,
        counter,
        source,
    };
    let query = r.query(written, built);
    let t = TriggerSpec {
        name,
        query,
        source,
        metric_type: r.metric_type().unwrap_or_else(|| aggregation.metric_type()),
        target,
        activation_target,
        operation_over_time,
        latency: None,
    };
    (r.f.problems.len() == before).then_some(t)
}

/// A query the user wrote, parsed for the backend.
#[derive(Default)]
struct WrittenQuery {
    otel: Option<AddonQuery>,
    promql: Option<String>,
}

/// What the query the webhook builds is made of.
struct BuiltQuery<'m> {
    metric: &'m str,
    aggregation: Aggregation,
    counter: bool,
    source: TriggerSource,
}

struct Resolver<'a> {
    input: &'a TriggerInput,
    ctx: &'a TriggerContext,
    f: &'a mut Findings,
}

impl<'a> Resolver<'a> {
    fn key(&self, field: &str) -> String {
        self.input.key(field)
    }

    fn get(&self, field: &str) -> Option<&'a str> {
        self.input.get(field)
    }

    fn problem(&mut self, field: &str, reason: impl Into<String>, fix: impl Into<String>) {
        let p = Problem::new(self.key(field), self.get(field), reason, fix);
        self.f.problem(p);
    }

    /// Fields of a `triggers` entry the backend never reads (the single-metric annotations
    /// were checked against the same table with the other keys).
    fn refuse_unread_fields(&mut self) {
        if !self.input.listed {
            return;
        }
        let backend = self.ctx.backend;
        for (field, value) in &self.input.fields {
            if let Some(k) = keys::find(field).filter(|k| !k.read_by.reads(backend)) {
                let p = super::reader::unread(k, &self.key(field), value, backend);
                self.f.problem(p);
            }
        }
    }

    fn written_preset(&mut self) -> Option<&'static presets::Preset> {
        let preset = match self.get("preset") {
            None => None,
            Some(name) => {
                let p = presets::preset_by_name(name);
                if p.is_none() {
                    self.problem(
                        "preset",
                        "unknown preset",
                        format!("write one of {}", presets::preset_names()),
                    );
                }
                p
            }
        };
        if self.get("preset").is_some() && self.get("metric").is_some() {
            self.problem(
                "metric",
                "set together with preset",
                "use either preset or metric",
            );
        }
        if let Some(Err(r)) = self.get("metric").map(values::metric_name) {
            self.problem("metric", r.reason, r.fix);
        }
        preset
    }

    fn written_aggregation(&mut self) -> Option<Aggregation> {
        let a = self.get("aggregation")?;
        let parsed = Aggregation::parse(a);
        if parsed.is_none() {
            self.problem(
                "aggregation",
                "unknown aggregation",
                "write sum, avg, min, max or count",
            );
        }
        parsed
    }

    /// The user's `query`, parsed for the backend, and checked against `metric` and
    /// `aggregation` when both are written.
    fn written_query(&mut self) -> WrittenQuery {
        let Some(q) = self.get("query") else {
            return WrittenQuery::default();
        };
        let mut written = WrittenQuery::default();
        match self.ctx.backend {
            Backend::Otel | Backend::Builtin => match query::parse_addon_query(q) {
                Ok(parsed) => written.otel = Some(parsed),
                Err(e) => self.problem(
                    "query",
                    e.to_string(),
                    "write op(metric{label=value,...}) with op one of sum|avg|min|max|count and only = matchers, e.g. sum(vllm:num_requests_waiting{model_name=llama})",
                ),
            },
            Backend::Prometheus => match query::check_promql(q) {
                Ok(()) => written.promql = Some(q.to_string()),
                Err(e) => self.problem(
                    "query",
                    e.to_string(),
                    "write a PromQL query returning one value, e.g. sum(vllm:num_requests_waiting{namespace=\"ns\"})",
                ),
            },
            Backend::External | Backend::Wva => {}
        }
        if let Some(parsed) = &written.otel {
            self.query_agrees(parsed);
        }
        written
    }

    fn query_agrees(&mut self, q: &AddonQuery) {
        if self.get("metric").is_some_and(|m| m != q.metric) {
            self.problem(
                "metric",
                format!("differs from the metric in the query ({})", q.metric),
                "drop metric, the query names it",
            );
        }
        let given = self.get("aggregation").and_then(Aggregation::parse);
        if let (Some(qa), Some(a)) = (q.aggregation, given) {
            if qa != a {
                self.problem(
                    "aggregation",
                    "differs from the aggregation in the query",
                    "drop aggregation, the query says it",
                );
            }
        }
    }

    /// The name the workload's vLLM exports for the written metric (renames by version).
    fn current_name(&mut self, written: Option<&str>) -> String {
        let (metric, warning) = presets::resolve_alias(
            written.unwrap_or(presets::DEFAULT_METRIC),
            self.ctx.vllm_version,
        );
        if let Some(w) = warning {
            let field = if self.get("query").is_some() {
                "query"
            } else {
                "metric"
            };
            self.f.warn(format!("{}: {w}", self.key(field)));
        }
        metric
    }

    fn target(&mut self, preset: Option<&presets::Preset>, metric: &str) -> Option<String> {
        let Some(t) = self.get("target") else {
            if let Some(p) = preset {
                return Some(p.target.to_string());
            }
            let key = self.key("target");
            self.f.problem(Problem::new(
                key.clone(),
                None,
                format!("required: {metric} has no preset target"),
                format!("add {key} with the value per replica at which to scale out, e.g. \"10\""),
            ));
            return None;
        };
        match values::decimal(t) {
            Ok(d) if values::is_zero(&d) => {
                self.problem(
                    "target",
                    "must be greater than 0 (the HPA divides by it)",
                    "write a positive decimal such as \"5\"",
                );
                None
            }
            Ok(d) => Some(d),
            Err(r) => {
                self.problem("target", r.reason, r.fix);
                None
            }
        }
    }

    /// `activation-target`: KEDA's activation threshold (the table refuses it where the scaler
    /// never reads one).
    fn activation_target(&mut self) -> Option<String> {
        let v = self.get("activation-target")?;
        if !keys::find("activation-target").is_some_and(|k| k.read_by.reads(self.ctx.backend)) {
            return None;
        }
        match values::decimal(v) {
            Ok(d) => Some(d),
            Err(r) => {
                self.problem("activation-target", r.reason, r.fix);
                None
            }
        }
    }

    fn refuse_buckets_on_otel(&mut self, metric: &str) {
        if !metric.ends_with("_bucket") {
            return;
        }
        let field = if self.get("query").is_some() {
            "query"
        } else {
            "metric"
        };
        match self.ctx.backend {
            Backend::Otel => self.problem(
                field,
                format!("{metric}: the KEDA OTel add-on keeps only a histogram's _count and _sum and drops its buckets (kedify/otel-add-on receiver/receiver.go)"),
                "scale on the request rate (<histogram>_count) or the mean (<histogram>_sum), or use the prometheus backend for a histogram_quantile query",
            ),
            Backend::Builtin => self.problem(
                field,
                format!("{metric}: the built-in scaler keeps the histogram whole, not its _bucket series"),
                "add percentile for a latency trigger on the histogram, or scale on <histogram>_count (the request rate)",
            ),
            _ => {}
        }
    }

    /// `source`: whether the trigger's data exists while the workload has no pods. Default:
    /// `gateway` for a hand-written PromQL query (used as written) unless it reads vLLM's own
    /// `vllm:` metrics, which only the model's pods export; `workload` otherwise.
    fn source(&mut self) -> TriggerSource {
        let query = self.get("query");
        let default = match self.ctx.backend {
            Backend::Prometheus if query.is_some_and(|q| !q.contains("vllm:")) => {
                TriggerSource::Gateway
            }
            Backend::External | Backend::Wva => TriggerSource::Gateway,
            _ => TriggerSource::Workload,
        };
        let Some(v) = self.get("source") else {
            return default;
        };
        if self.ctx.backend == Backend::Builtin && v == "gateway" {
            self.problem(
                "source",
                "the built-in scaler stores only this product's sidecars' series (each namespace writes its own): a router's or gateway's series do not reach it",
                "remove source; for a trigger that exists at zero pods use HTTP wake (http-wake-service) or the prometheus backend with your own query",
            );
            return default;
        }
        let Some(source) = TriggerSource::parse(v) else {
            self.problem(
                "source",
                "unknown source",
                "write \"workload\" (this workload's pods) or \"gateway\" (a metric that exists at zero pods: a router, gateway or queue)",
            );
            return default;
        };
        if source == TriggerSource::Gateway && query.is_none() {
            let fix = format!(
                "add {} naming the router or gateway series, e.g. sum(router_queue_depth{{model=llama}})",
                self.key("query")
            );
            self.problem(
                "source",
                "a gateway trigger needs its own query: the built one reads this workload's pods",
                fix,
            );
        }
        source
    }

    /// `operationOverTime` (the add-on only; the table refuses it elsewhere).
    fn operation_over_time(
        &mut self,
        preset: Option<&presets::Preset>,
        counter: bool,
    ) -> Option<OperationOverTime> {
        if !matches!(self.ctx.backend, Backend::Otel | Backend::Builtin) {
            return None;
        }
        let Some(op) = self.get("operation-over-time") else {
            let default = if counter {
                OperationOverTime::Rate
            } else {
                OperationOverTime::Avg
            };
            return Some(preset.map_or(default, |p| p.operation_over_time));
        };
        let parsed = OperationOverTime::parse(op);
        if parsed.is_none() {
            self.problem(
                "operation-over-time",
                "unknown operation",
                format!("write one of {}", OperationOverTime::names()),
            );
        }
        parsed
    }

    /// `window` (builtin; the table refuses it elsewhere): seconds, at least 1, default
    /// [`crate::scaler::query::DEFAULT_WINDOW_SECONDS`].
    fn window(&mut self) -> i32 {
        let default = crate::scaler::query::DEFAULT_WINDOW_SECONDS;
        let Some(v) = self.get("window") else {
            return default;
        };
        match values::seconds(v) {
            Ok(0) => {
                self.problem("window", "must be at least 1 second", "write \"60s\"");
                default
            }
            Ok(s) => s,
            Err(r) => {
                self.problem("window", r.reason, r.fix);
                default
            }
        }
    }

    /// `metric-type`: overrides the one the aggregation implies.
    fn metric_type(&mut self) -> Option<MetricType> {
        metric_type_of(self.get("metric-type")?)
            .map_err(|r| self.problem("metric-type", r.reason, r.fix))
            .ok()
    }

    fn name(&mut self, preset: Option<&presets::Preset>, metric: &str) -> String {
        match self.get("name") {
            Some(n) if values::is_identifier(n) => n.to_string(),
            Some(_) => {
                self.problem(
                    "name",
                    "not an identifier",
                    "use letters, digits and _ (e.g. \"queue_depth\")",
                );
                String::new()
            }
            None => preset
                .map(|p| p.trigger_name.to_string())
                .unwrap_or_else(|| identifier_from(metric)),
        }
    }

    /// The query KEDA asks: the user's (scoped to this workload unless it reads a gateway), or
    /// one built from the metric.
    fn query(&mut self, written: WrittenQuery, b: BuiltQuery<'_>) -> TriggerQuery {
        let ctx = self.ctx;
        match ctx.backend {
            Backend::Otel | Backend::Builtin => {
                let mut q = written.otel.unwrap_or(AddonQuery {
                    aggregation: None,
                    metric: b.metric.to_string(),
                    labels: Vec::new(),
                });
                q.metric = b.metric.to_string();
                q.aggregation = Some(b.aggregation);
                if b.source == TriggerSource::Workload {
                    self.scope(&mut q);
                }
                if ctx.backend == Backend::Builtin {
                    let window_seconds = self.window();
                    return TriggerQuery::Builtin {
                        query: q,
                        window_seconds,
                    };
                }
                TriggerQuery::Otel(q)
            }
            Backend::Prometheus => TriggerQuery::Prometheus(written.promql.unwrap_or_else(|| {
                default_promql(
                    b.metric,
                    b.aggregation,
                    b.counter,
                    &ctx.deployment,
                    &ctx.namespace,
                )
            })),
            Backend::External | Backend::Wva => TriggerQuery::External(BTreeMap::new()),
        }
    }

    /// Scopes an add-on query to this workload's series. (A gateway query is read as
    /// written: its series come from a router or gateway, not this workload's sidecar, so
    /// they carry no deployment label of ours.)
    fn scope(&mut self, q: &mut AddonQuery) {
        let ctx = self.ctx;
        for (label, value, field) in [
            ("deployment", &ctx.deployment, "metadata.name"),
            ("namespace", &ctx.namespace, "metadata.namespace"),
        ] {
            // The apiserver refuses such names, but a mutating webhook sees them first.
            if !query::is_matchable_value(value) {
                self.f.problem(Problem::new(
                    field,
                    Some(value),
                    "the KEDA OTel add-on cannot match a label value with `,`, `=`, quotes or spaces at its ends",
                    "use a Kubernetes name (lowercase letters, digits, - and .)",
                ));
                continue;
            }
            if let Some(existing) = q.scope(label, value).filter(|e| e != value) {
                self.f.warn(format!(
                    "{}: the query matches {label}={existing}, not this workload's {value}",
                    self.key("query")
                ));
            }
        }
    }
}

/// A trigger's `metricType` as written (`Utilization` is for cpu/memory triggers only).
pub(super) fn metric_type_of(v: &str) -> Result<MetricType, Refusal> {
    match MetricType::from(v.to_string()) {
        m @ (MetricType::AverageValue | MetricType::Value) => Ok(m),
        _ => Err(Refusal {
            reason: "unknown metric type".into(),
            fix: "write AverageValue (the value is divided by the replicas) or Value (compared as it is)".into(),
        }),
    }
}

/// `vllm:num_requests_waiting` → `vllm_num_requests_waiting`.
fn identifier_from(metric: &str) -> String {
    let mut s: String = metric
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) || s.is_empty() {
        s.insert(0, '_');
    }
    s.truncate(63);
    s
}

/// The PromQL of a trigger when the user wrote none: this Deployment's pods only.
pub fn default_promql(
    metric: &str,
    aggregation: Aggregation,
    counter: bool,
    deployment: &str,
    namespace: &str,
) -> String {
    let selector = workload_selector(metric, deployment, namespace);
    let inner = if counter {
        format!("rate({selector}[1m])")
    } else {
        selector
    };
    format!("{}({inner})", aggregation.as_str())
}

/// `metric{namespace="ns",pod=~"<deployment>-<hash>-<id>"}`: the series of this Deployment's
/// pods (names as the ReplicaSet controller makes them).
fn workload_selector(metric: &str, deployment: &str, namespace: &str) -> String {
    let pod_regex = format!(
        "{}-[a-z0-9]+-[a-z0-9]{{5}}",
        deployment.replace('.', "\\\\.")
    );
    format!("{metric}{{namespace=\"{namespace}\",pod=~\"{pod_regex}\"}}")
}
