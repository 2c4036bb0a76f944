//! A latency trigger: a percentile of one of the model server's histograms, per window (see
//! [`crate::latency`]), resolved into a [`TriggerSpec`] with every problem collected.
//!
//! On `otel` the sidecar computes the percentile of each scrape window and the add-on reads
//! the worst pod's latest window (`max`, `last_one`); on `prometheus` `histogram_quantile`
//! merges the pods' buckets over a minute. The annotations are the same on both.

use super::{Resolver, identifier_from, workload_selector};
use crate::annotations::{Backend, TriggerQuery, TriggerSource, TriggerSpec, histogram_base};
use crate::keda::{MetricType, OperationOverTime};
use crate::latency::{self, Percentile, TargetPlace, WindowedPercentile};
use crate::presets::{self, Preset};
use crate::problem::Problem;
use crate::query::{AddonQuery, Aggregation};

/// Window requests above which a warning says the trigger may stay silent at low traffic.
const WARN_MIN_REQUESTS: u64 = 100;

impl Resolver<'_> {
    /// The trigger for a `percentile` (written, or a latency preset's); `None` when anything
    /// is wrong (every problem recorded).
    pub(in crate::annotations) fn latency_trigger(
        &mut self,
        preset: Option<&'static Preset>,
    ) -> Option<TriggerSpec> {
        let percentile = self.percentile(preset);
        self.refuse_old_collector(preset);
        self.refuse_written_query_and_gateway();
        let histogram = self.histogram(preset);
        let preset = match (&histogram, &percentile) {
            (Some(h), Some(p)) => {
                preset.or_else(|| presets::preset_for_metric(h, Some(p.as_str())))
            }
            _ => preset,
        };
        let target = self.latency_target(preset, histogram.as_deref());
        let aggregation = self.latency_aggregation(preset);
        let operation_over_time = self.latency_operation(preset);
        self.refuse_average_value();
        let activation_target = self.activation_target();
        let (histogram, percentile) = (histogram?, percentile?);
        self.warn_about_quiet_windows(&percentile);
        let window = WindowedPercentile {
            histogram,
            percentile,
        };
        let name = self.latency_name(preset, &window);
        let query = self.latency_query(&window, aggregation);
        Some(TriggerSpec {
            name,
            query,
            source: TriggerSource::Workload,
            metric_type: MetricType::Value,
            target,
            activation_target,
            operation_over_time,
            latency: Some(window),
        })
    }

    /// The written `percentile`, else the preset's.
    fn percentile(&mut self, preset: Option<&Preset>) -> Option<Percentile> {
        let Some(v) = self.get("percentile") else {
            return preset
                .and_then(|p| p.percentile)
                .map(Percentile::parse)?
                .ok();
        };
        if preset.is_some() {
            self.problem(
                "percentile",
                "set together with preset",
                "use either a latency preset or metric with percentile",
            );
        }
        Percentile::parse(v)
            .map_err(|r| self.problem("percentile", r.reason, r.fix))
            .ok()
    }

    /// On otel the sidecar's collector computes the percentile: it needs
    /// `extract_percentile_metric` ([`latency::PERCENTILE_FUNCTION_SINCE`]).
    fn refuse_old_collector(&mut self, preset: Option<&Preset>) {
        let (major, minor) = latency::PERCENTILE_FUNCTION_SINCE;
        match self.ctx.collector_version {
            Some(v) if self.ctx.backend == Backend::Otel && v < (major, minor) => {
                let field = if preset.is_some() {
                    "preset"
                } else {
                    "percentile"
                };
                self.problem(
                    field,
                    format!("the sidecar's collector image is v{}.{}: its transform processor has no extract_percentile_metric (added in v{major}.{minor}.0, collector-contrib processor/transformprocessor)", v.0, v.1),
                    format!("run the webhook with --collector-image at v{major}.{minor}.0 or later (the default is v0.161.0), or use the prometheus backend"),
                );
            }
            _ => {}
        }
    }

    /// The query and the source are the webhook's: the percentile is computed from this
    /// workload's pods.
    fn refuse_written_query_and_gateway(&mut self) {
        if self.get("query").is_some() {
            let fix = match self.ctx.backend {
                Backend::Prometheus => {
                    "remove percentile to use your own histogram_quantile query as written, or remove query"
                }
                _ => {
                    "remove query: the query reads the gauge the sidecar computes for metric and percentile"
                }
            };
            self.problem("query", "set together with percentile", fix);
        }
        if self.get("source").is_some_and(|s| s != "workload") {
            self.problem(
                "source",
                "a latency trigger reads this workload's pods",
                "remove source; for a gateway's latency use the prometheus backend with your own query and no percentile",
            );
        }
    }

    /// The histogram's name as this workload's vLLM exports it; `None` (with a problem) when
    /// missing, written with a series suffix, or not one of vLLM's latency histograms.
    fn histogram(&mut self, preset: Option<&Preset>) -> Option<String> {
        let written = preset.map(|p| p.metric).or_else(|| self.get("metric"));
        let Some(written) = written else {
            let key = self.key("metric");
            self.f.problem(Problem::new(
                key,
                None,
                "required with percentile: the histogram to take the percentile of",
                "add metric, e.g. vllm:time_to_first_token_seconds, or use a latency preset such as ttft-p90",
            ));
            return None;
        };
        if let Some(base) = histogram_base(written).or_else(|| written.strip_suffix("_bucket")) {
            self.problem(
                "metric",
                "a percentile is taken of the whole histogram, not one of its series",
                format!("write the histogram's name, {base}"),
            );
            return None;
        }
        let name = self.current_name(Some(written));
        self.known_histogram(&name).then_some(name)
    }

    /// vLLM's own metrics must be one of its latency histograms (present in this version);
    /// another server's histogram cannot be checked here, so it gets a warning.
    fn known_histogram(&mut self, name: &str) -> bool {
        let Some(h) = latency::vllm_histogram(name) else {
            if name.starts_with("vllm:") {
                let names: Vec<&str> = latency::VLLM_HISTOGRAMS.iter().map(|h| h.name).collect();
                self.problem(
                    "metric",
                    format!("{name} is not one of vLLM's latency histograms (vllm/v1/metrics/loggers.py)"),
                    format!("write one of {}", names.join(", ")),
                );
                return false;
            }
            self.f.warn(format!(
                "{}: {name} must be a Prometheus histogram (with _bucket series) that the model server exports; the sidecar computes nothing from another kind of metric and the trigger then reads 0",
                self.key("metric")
            ));
            return true;
        };
        match (h.since, self.ctx.vllm_version) {
            (Some(since), Some(v)) if v < since => {
                self.problem(
                    "metric",
                    format!("{name} does not exist before vLLM {since} (this is {v})"),
                    "use another latency histogram, or upgrade vLLM",
                );
                false
            }
            _ => true,
        }
    }

    /// Seconds: required unless a preset gives it, positive, and inside the buckets of a known
    /// histogram (a warning when between two bounds).
    fn latency_target(
        &mut self,
        preset: Option<&Preset>,
        histogram: Option<&str>,
    ) -> Option<String> {
        if self.get("target").is_none() && preset.is_none() {
            let key = self.key("target");
            self.f.problem(Problem::new(
                key.clone(),
                None,
                "required: the latency (seconds) above which to add replicas",
                format!("add {key}: \"0.5\" (best on one of the histogram's bucket bounds)"),
            ));
            return None;
        }
        let target = self.target(preset, histogram.unwrap_or("the histogram"))?;
        let h = histogram.and_then(latency::vllm_histogram)?;
        let seconds: f64 = target.parse().ok()?;
        let fix = format!(
            "write a target on one of its bucket bounds below the last: {}",
            bounds_text(h.bounds)
        );
        match h.place(seconds) {
            TargetPlace::OnBound => {}
            TargetPlace::Between(lo, hi) => self.f.warn(format!(
                "{}: {target} s lies between the bucket bounds {lo} and {hi} of {}: there the percentile is interpolated (latencies assumed evenly spread in the bucket); a target on a bound ({lo} or {hi}) makes the decision exact",
                self.key("target"),
                h.name
            )),
            TargetPlace::BelowFirst(first) => {
                self.problem(
                    "target",
                    format!("below the first bucket bound of {} ({first} s): a window whose percentile falls in the first bucket reads as a fraction of {first} s, so the trigger would fire without any slow request", h.name),
                    fix,
                );
                return None;
            }
            TargetPlace::AtOrAboveLast(last) => {
                self.problem(
                    "target",
                    format!("at or above the last finite bucket bound of {} ({last} s): a percentile beyond it reads as {last} s, so the trigger would never fire", h.name),
                    fix,
                );
                return None;
            }
        }
        Some(target)
    }

    /// `max` (the worst pod) on otel by default; on prometheus the default merges the pods'
    /// buckets (`None`). Summing or counting latencies means nothing.
    fn latency_aggregation(&mut self, preset: Option<&Preset>) -> Option<Aggregation> {
        let written = self.written_aggregation();
        if let Some(a @ (Aggregation::Sum | Aggregation::Count)) = written {
            self.problem(
                "aggregation",
                format!("{} of the pods' latencies is not a latency", a.as_str()),
                "write max (the worst pod, the default), avg or min",
            );
            return None;
        }
        match self.ctx.backend {
            Backend::Prometheus | Backend::Builtin => written,
            _ => written
                .or(preset.map(|p| p.aggregation))
                .or(Some(Aggregation::Max)),
        }
    }

    /// `last_one` by default (the add-on's latest window); `rate` and `count` mean nothing
    /// for a percentile. Otel only (the key table refuses it elsewhere).
    fn latency_operation(&mut self, preset: Option<&Preset>) -> Option<OperationOverTime> {
        if self.ctx.backend == Backend::Builtin && self.get("operation-over-time").is_some() {
            self.problem(
                "operation-over-time",
                "on builtin a latency trigger is the percentile of the window's requests, merged across pods, not an operation over values",
                "remove operation-over-time; set window for the span",
            );
        }
        if self.ctx.backend != Backend::Otel {
            return None;
        }
        let default = preset.map_or(OperationOverTime::LastOne, |p| p.operation_over_time);
        let Some(v) = self.get("operation-over-time") else {
            return Some(default);
        };
        match OperationOverTime::parse(v) {
            Some(OperationOverTime::Rate | OperationOverTime::Count) | None => {
                self.problem(
                    "operation-over-time",
                    "a latency percentile is read as last_one, avg, min or max over the add-on's retention",
                    "write last_one (the latest window, the default) or avg",
                );
                None
            }
            op => op,
        }
    }

    fn refuse_average_value(&mut self) {
        if self
            .metric_type()
            .is_some_and(|m| m == MetricType::AverageValue)
        {
            self.problem(
                "metric-type",
                "AverageValue divides the value by the replicas: a latency does not shrink per replica",
                "remove metric-type (a latency trigger is Value)",
            );
        }
    }

    fn warn_about_quiet_windows(&mut self, p: &Percentile) {
        let n = p.min_requests();
        if n >= WARN_MIN_REQUESTS && self.ctx.backend == Backend::Builtin {
            self.f.warn(format!(
                "{}: p{} needs at least {n} requests in the window (all pods merged) before a value is given (one must lie above the percentile); below that the trigger reads as no demand: lengthen window or use a lower percentile",
                self.key("percentile"),
                p.as_str()
            ));
            return;
        }
        if n >= WARN_MIN_REQUESTS {
            self.f.warn(format!(
                "{}: p{} needs windows of at least {n} requests per pod (one must lie above the percentile) before a value is sent; at lower traffic the trigger stays silent: lengthen scrape-interval or use a lower percentile",
                self.key("percentile"),
                p.as_str()
            ));
        }
    }

    fn latency_name(&mut self, preset: Option<&Preset>, w: &WindowedPercentile) -> String {
        if self.get("name").is_some() {
            return self.name(preset, &w.histogram);
        }
        match preset.filter(|p| p.percentile == Some(w.percentile.as_str())) {
            Some(p) => p.trigger_name.to_string(),
            None => identifier_from(&w.gauge_name()),
        }
    }

    fn latency_query(
        &mut self,
        w: &WindowedPercentile,
        aggregation: Option<Aggregation>,
    ) -> TriggerQuery {
        let ctx = self.ctx;
        match ctx.backend {
            Backend::Prometheus => TriggerQuery::Prometheus(
                BuiltLatency {
                    window: w,
                    aggregation,
                    deployment: &ctx.deployment,
                    namespace: &ctx.namespace,
                }
                .promql(),
            ),
            Backend::Builtin => {
                // No aggregation: the fleet's percentile of the merged windows.
                let mut q = AddonQuery {
                    aggregation,
                    metric: w.histogram.clone(),
                    labels: Vec::new(),
                };
                self.scope(&mut q);
                let window_seconds = self.window();
                TriggerQuery::Builtin {
                    query: q,
                    window_seconds,
                }
            }
            _ => {
                let mut q = AddonQuery {
                    aggregation: Some(aggregation.unwrap_or(Aggregation::Max)),
                    metric: w.gauge_name(),
                    labels: Vec::new(),
                };
                self.scope(&mut q);
                TriggerQuery::Otel(q)
            }
        }
    }

    /// On both backends: a known vLLM latency histogram read as a plain value has no series
    /// of that name (the add-on keeps `_count`/`_sum`, Prometheus `_bucket`/`_count`/`_sum`).
    pub(in crate::annotations) fn refuse_histogram_read_as_a_value(&mut self, metric: &str) {
        if self.get("query").is_some() || latency::vllm_histogram(metric).is_none() {
            return;
        }
        self.problem(
            "metric",
            format!("{metric} is a histogram: it has no value of its own, the trigger would read 0"),
            format!("add percentile (e.g. \"90\") for a latency trigger, or scale on {metric}_count (the request rate)"),
        );
    }
}

/// The bounds below the last, as text.
fn bounds_text(bounds: &[f64]) -> String {
    let below_last = bounds.len().saturating_sub(1);
    bounds
        .iter()
        .take(below_last)
        .map(f64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The PromQL of a latency trigger on the prometheus backend.
struct BuiltLatency<'a> {
    window: &'a WindowedPercentile,
    /// `None`: the pods' buckets merged (the fleet's percentile); else that aggregation of
    /// each pod's percentile.
    aggregation: Option<Aggregation>,
    deployment: &'a str,
    namespace: &'a str,
}

impl BuiltLatency<'_> {
    /// `histogram_quantile` of the bucket rates over a minute, kept only where the minute
    /// holds at least the window's minimum of requests (else the result is empty, which KEDA
    /// reads as 0 with its default `ignoreNullValues`, as it reads a minute with no request).
    fn promql(&self) -> String {
        let h = &self.window.histogram;
        let p = &self.window.percentile;
        let buckets = workload_selector(&format!("{h}_bucket"), self.deployment, self.namespace);
        let count = workload_selector(&format!("{h}_count"), self.deployment, self.namespace);
        let n = p.min_requests();
        let q = p.quantile();
        match self.aggregation {
            None => format!(
                "histogram_quantile({q}, sum by (le) (rate({buckets}[1m]))) and (sum(increase({count}[1m])) >= {n})"
            ),
            Some(a) => format!(
                "{}(histogram_quantile({q}, sum by (le, pod) (rate({buckets}[1m]))) and (sum by (pod) (increase({count}[1m])) >= {n}))",
                a.as_str()
            ),
        }
    }
}
