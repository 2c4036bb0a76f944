//! One trigger at a time: the single-metric annotations or an entry of `triggers`, resolved
//! against presets, aliases and the backend into a validated [`TriggerSpec`].

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Backend, PREFIX, TriggerQuery, TriggerSource, TriggerSpec};
use crate::keda::OperationOverTime;
use crate::presets::{self, Version};
use crate::problem::{Findings, Problem};
use crate::query::{self, AddonQuery, Aggregation};
use crate::values::{self, Refusal};

pub(super) struct TriggerContext {
    pub(super) backend: Backend,
    pub(super) deployment: String,
    pub(super) namespace: String,
    pub(super) vllm_version: Option<Version>,
}

/// One trigger as written: either the single-metric annotations or one entry of `triggers`.
pub(super) struct TriggerInput {
    /// How to name a field in messages (single annotations: the annotation key).
    pub(super) label: fn(&str) -> String,
    /// Whether this came from the `triggers` list (then keys are `triggers[i].field`).
    pub(super) listed: bool,
    pub(super) fields: BTreeMap<String, String>,
}

impl Default for TriggerInput {
    fn default() -> Self {
        TriggerInput {
            label: |f: &str| f.to_string(),
            listed: false,
            fields: BTreeMap::new(),
        }
    }
}

impl TriggerInput {
    pub(super) fn key(&self, index: usize, field: &str) -> String {
        if self.listed {
            format!("{PREFIX}triggers[{index}].{field}")
        } else {
            (self.label)(field)
        }
    }

    fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }
}

/// What describes one trigger: the single-metric annotations, and (with `name`) the fields
/// of a `triggers` entry.
pub const TRIGGER_KEYS: [&str; 8] = [
    "preset",
    "metric",
    "target",
    "query",
    "aggregation",
    "operation-over-time",
    "activation-target",
    "source",
];

fn json_scalar_to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn parse_trigger_list(raw: &str) -> Result<Vec<TriggerInput>, Refusal> {
    let example = r#"write a JSON list such as [{"preset":"queue-depth","target":"5"},{"metric":"vllm:kv_cache_usage_perc","target":"0.8","aggregation":"avg"}]"#;
    let v: Value = serde_json::from_str(raw).map_err(|e| Refusal {
        reason: format!("not valid JSON ({e})"),
        fix: example.into(),
    })?;
    let Some(list) = v.as_array() else {
        return Err(Refusal {
            reason: "not a JSON list".into(),
            fix: example.into(),
        });
    };
    if list.is_empty() {
        return Err(Refusal {
            reason: "the list is empty".into(),
            fix: example.into(),
        });
    }
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            return Err(Refusal {
                reason: format!("entry {i} is not a JSON object"),
                fix: example.into(),
            });
        };
        let mut fields = BTreeMap::new();
        for (k, v) in obj {
            // camelCase spellings are accepted too.
            let field = match k.as_str() {
                "operationOverTime" => "operation-over-time",
                "activationTarget" => "activation-target",
                other => other,
            };
            if field != "name" && !TRIGGER_KEYS.contains(&field) {
                return Err(Refusal {
                    reason: format!("entry {i} has an unknown field {k:?}"),
                    fix: format!("use only name, {}", TRIGGER_KEYS.join(", ")),
                });
            }
            let Some(s) = json_scalar_to_string(v) else {
                return Err(Refusal {
                    reason: format!("entry {i}: field {k:?} must be a string"),
                    fix: format!("write \"{field}\": \"...\""),
                });
            };
            fields.insert(field.to_string(), s);
        }
        out.push(TriggerInput {
            listed: true,
            fields,
            ..TriggerInput::default()
        });
    }
    Ok(out)
}

pub(super) fn parse_string_map(raw: &str) -> Result<BTreeMap<String, String>, Refusal> {
    let fix = r#"write a JSON object of strings such as {"metricName":"queue","targetValue":"5"}"#;
    let v: Value = serde_json::from_str(raw).map_err(|e| Refusal {
        reason: format!("not valid JSON ({e})"),
        fix: fix.into(),
    })?;
    let Some(obj) = v.as_object() else {
        return Err(Refusal {
            reason: "not a JSON object".into(),
            fix: fix.into(),
        });
    };
    obj.iter()
        .map(|(k, v)| {
            json_scalar_to_string(v)
                .map(|s| (k.clone(), s))
                .ok_or_else(|| Refusal {
                    reason: format!("the value of {k:?} is not a string"),
                    fix: fix.into(),
                })
        })
        .collect()
}

/// Turns one written trigger into a validated one, recording problems in `f`.
pub(super) fn resolve_trigger(
    input: &TriggerInput,
    index: usize,
    ctx: &TriggerContext,
    f: &mut Findings,
) -> Option<TriggerSpec> {
    let before = f.problems.len();
    let k = |field: &str| input.key(index, field);
    let problem = |f: &mut Findings, field: &str, reason: String, fix: String| {
        f.problem(Problem::new(k(field), input.get(field), reason, fix));
    };

    // preset or metric
    let preset = match input.get("preset") {
        None => None,
        Some(name) => match presets::preset_by_name(name) {
            Some(p) => Some(p),
            None => {
                problem(
                    f,
                    "preset",
                    "unknown preset".into(),
                    format!("write one of {}", presets::preset_names()),
                );
                None
            }
        },
    };
    if input.get("preset").is_some() && input.get("metric").is_some() {
        problem(
            f,
            "metric",
            "set together with preset".into(),
            "use either preset or metric".into(),
        );
    }
    if let Some(m) = input.get("metric") {
        if !query::is_metric_name(m) {
            problem(
                f,
                "metric",
                "not a metric name".into(),
                "write a name such as \"vllm:num_requests_waiting\" (letters, digits, _ and :)"
                    .into(),
            );
        }
    }
    let aggregation_given = match input.get("aggregation") {
        None => None,
        Some(a) => match Aggregation::parse(a) {
            Some(a) => Some(a),
            None => {
                problem(
                    f,
                    "aggregation",
                    "unknown aggregation".into(),
                    "write sum, avg, min, max or count".into(),
                );
                None
            }
        },
    };

    // a user query
    let mut user_otel_query: Option<AddonQuery> = None;
    let mut user_promql: Option<String> = None;
    if let Some(q) = input.get("query") {
        match ctx.backend {
            Backend::Otel => match query::parse_addon_query(q) {
                Ok(parsed) => user_otel_query = Some(parsed),
                Err(e) => problem(
                    f,
                    "query",
                    e.to_string(),
                    "write op(metric{label=value,...}) with op one of sum|avg|min|max|count and only = matchers, e.g. sum(vllm:num_requests_waiting{model_name=llama})".into(),
                ),
            },
            Backend::Prometheus => match query::check_promql(q) {
                Ok(()) => user_promql = Some(q.to_string()),
                Err(e) => problem(
                    f,
                    "query",
                    e.to_string(),
                    "write a PromQL query returning one value, e.g. sum(vllm:num_requests_waiting{namespace=\"ns\"})".into(),
                ),
            },
            Backend::External => {}
        }
    }
    if let (Some(q), Some(m)) = (&user_otel_query, input.get("metric")) {
        if q.metric != m {
            problem(
                f,
                "metric",
                format!("differs from the metric in the query ({})", q.metric),
                "drop metric, the query names it".into(),
            );
        }
    }
    if let (Some(q), Some(a)) = (&user_otel_query, aggregation_given) {
        if q.aggregation.is_some_and(|qa| qa != a) {
            problem(
                f,
                "aggregation",
                "differs from the aggregation in the query".into(),
                "drop aggregation, the query says it".into(),
            );
        }
    }

    let written_metric: Option<String> = preset
        .map(|p| p.metric.to_string())
        .or_else(|| input.get("metric").map(str::to_string))
        .or_else(|| user_otel_query.as_ref().map(|q| q.metric.clone()));
    let (metric, warning) = presets::resolve_alias(
        written_metric.as_deref().unwrap_or(presets::DEFAULT_METRIC),
        ctx.vllm_version,
    );
    if let Some(w) = warning {
        f.warn(format!(
            "{}: {w}",
            k(if input.get("query").is_some() {
                "query"
            } else {
                "metric"
            })
        ));
    }
    let preset = preset.or_else(|| presets::preset_for_metric(&metric));

    let aggregation = user_otel_query
        .as_ref()
        .and_then(|q| q.aggregation)
        .or(aggregation_given)
        .or(preset.map(|p| p.aggregation))
        .unwrap_or(Aggregation::Sum);

    let target = match input.get("target") {
        Some(t) => match values::decimal(t) {
            Ok(d) if values::is_zero(&d) => {
                problem(
                    f,
                    "target",
                    "must be greater than 0 (the HPA divides by it)".into(),
                    "write a positive decimal such as \"5\"".into(),
                );
                None
            }
            Ok(d) => Some(d),
            Err(r) => {
                problem(f, "target", r.reason, r.fix);
                None
            }
        },
        None => match preset {
            Some(p) => Some(p.target.to_string()),
            None => {
                f.problem(Problem::new(
                    k("target"),
                    None,
                    format!("required: {metric} has no preset target"),
                    format!(
                        "add {} with the value per replica at which to scale out, e.g. \"10\"",
                        k("target")
                    ),
                ));
                None
            }
        },
    };
    let activation_target = activation_target(input, ctx.backend, &k, f);
    if ctx.backend == Backend::Otel && metric.ends_with("_bucket") {
        problem(
            f,
            if input.get("query").is_some() { "query" } else { "metric" },
            format!("{metric}: the KEDA OTel add-on keeps only a histogram's _count and _sum and drops its buckets (kedify/otel-add-on receiver/receiver.go)"),
            "scale on the request rate (<histogram>_count) or the mean (<histogram>_sum), or use the prometheus backend for a histogram_quantile query".into(),
        );
    }
    let source = trigger_source(input, ctx.backend, &k, f);

    // Cumulative series are scaled on their rate: counters, and a histogram's _count/_sum.
    let counter = preset.is_some_and(|p| p.counter)
        || metric.ends_with("_total")
        || super::histogram_base(&metric).is_some();
    let operation_over_time = match (ctx.backend, input.get("operation-over-time")) {
        (Backend::Otel, Some(op)) => match OperationOverTime::parse(op) {
            Some(op) => Some(op),
            None => {
                problem(
                    f,
                    "operation-over-time",
                    "unknown operation".into(),
                    format!("write one of {}", OperationOverTime::names()),
                );
                None
            }
        },
        (Backend::Otel, None) => {
            Some(preset.map(|p| p.operation_over_time).unwrap_or(if counter {
                OperationOverTime::Rate
            } else {
                OperationOverTime::Avg
            }))
        }
        (_, Some(_)) => {
            f.warn(format!(
                "{} is ignored by the {} backend",
                k("operation-over-time"),
                ctx.backend.as_str()
            ));
            None
        }
        (_, None) => None,
    };

    let name = match input.get("name") {
        Some(n) if values::is_identifier(n) => n.to_string(),
        Some(_) => {
            problem(
                f,
                "name",
                "not an identifier".into(),
                "use letters, digits and _ (e.g. \"queue_depth\")".into(),
            );
            String::new()
        }
        None => preset
            .map(|p| p.trigger_name.to_string())
            .unwrap_or_else(|| identifier_from(&metric)),
    };

    let query = match ctx.backend {
        Backend::Otel => {
            let mut q = user_otel_query.unwrap_or(AddonQuery {
                aggregation: None,
                metric: metric.clone(),
                labels: Vec::new(),
            });
            q.metric = metric.clone();
            q.aggregation = Some(aggregation);
            // A gateway query is read as written: its series come from a router or gateway,
            // not this workload's sidecar, so they carry no deployment label of ours.
            let scope: &[(&str, &String)] = match source {
                TriggerSource::Workload => &[
                    ("deployment", &ctx.deployment),
                    ("namespace", &ctx.namespace),
                ],
                TriggerSource::Gateway => &[],
            };
            for (label, value) in scope {
                if let Some(existing) = q.scope(label, value) {
                    if &&existing != value {
                        f.warn(format!(
                            "{}: the query matches {label}={existing}, not this workload's {value}",
                            k("query")
                        ));
                    }
                }
            }
            TriggerQuery::Otel(q)
        }
        Backend::Prometheus => TriggerQuery::Prometheus(user_promql.unwrap_or_else(|| {
            default_promql(
                &metric,
                aggregation,
                counter,
                &ctx.deployment,
                &ctx.namespace,
            )
        })),
        Backend::External => TriggerQuery::External(BTreeMap::new()),
    };

    finish(
        f,
        before,
        TriggerSpec {
            name,
            query,
            source,
            metric_type: aggregation.metric_type(),
            target,
            activation_target,
            operation_over_time,
        },
    )
}

/// The trigger, unless resolving it recorded a problem.
fn finish(f: &Findings, problems_before: usize, t: TriggerSpec) -> Option<TriggerSpec> {
    (f.problems.len() == problems_before).then_some(t)
}

/// `activation-target`: KEDA's activation threshold, where the scaler reads one.
fn activation_target(
    input: &TriggerInput,
    backend: Backend,
    k: &dyn Fn(&str) -> String,
    f: &mut Findings,
) -> Option<String> {
    let v = input.get("activation-target")?;
    if backend == Backend::Otel {
        // The add-on's IsActive is `value > 0` and nothing reads activationTargetValue
        // (kedify/otel-add-on scaler/handlers.go, util/handler_specific.go).
        f.problem(Problem::new(
            k("activation-target"),
            Some(v),
            "the KEDA OTel add-on never reads an activation target: it is active whenever the value is above 0",
            "remove it; for a wake-up threshold use the prometheus backend (activationThreshold)",
        ));
        return None;
    }
    values::decimal(v)
        .map_err(|r| {
            f.problem(Problem::new(
                k("activation-target"),
                Some(v),
                r.reason,
                r.fix,
            ))
        })
        .ok()
}

/// `source`: whether the trigger's data exists while the workload has no pods. Default:
/// `gateway` for a hand-written PromQL query (used as written) unless it reads vLLM's own
/// `vllm:` metrics, which only the model's pods export; `workload` otherwise.
fn trigger_source(
    input: &TriggerInput,
    backend: Backend,
    k: &dyn Fn(&str) -> String,
    f: &mut Findings,
) -> TriggerSource {
    let query = input.get("query");
    let has_query = query.is_some();
    let default = match backend {
        Backend::Prometheus if query.is_some_and(|q| !q.contains("vllm:")) => {
            TriggerSource::Gateway
        }
        Backend::External => TriggerSource::Gateway,
        _ => TriggerSource::Workload,
    };
    let Some(v) = input.get("source") else {
        return default;
    };
    let Some(source) = TriggerSource::parse(v) else {
        f.problem(Problem::new(
            k("source"),
            Some(v),
            "unknown source",
            "write \"workload\" (this workload's pods) or \"gateway\" (a metric that exists at zero pods: a router, gateway or queue)",
        ));
        return default;
    };
    if source == TriggerSource::Gateway && !has_query {
        f.problem(Problem::new(
            k("source"),
            Some(v),
            "a gateway trigger needs its own query: the built one reads this workload's pods",
            format!(
                "add {} naming the router or gateway series, e.g. sum(router_queue_depth{{model=llama}})",
                k("query")
            ),
        ));
    }
    source
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
    let pod_regex = format!(
        "{}-[a-z0-9]+-[a-z0-9]{{5}}",
        deployment.replace('.', "\\\\.")
    );
    let selector = format!("{metric}{{namespace=\"{namespace}\",pod=~\"{pod_regex}\"}}");
    let inner = if counter {
        format!("rate({selector}[1m])")
    } else {
        selector
    };
    format!("{}({inner})", aggregation.as_str())
}
