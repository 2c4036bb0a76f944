//! The sidecar's latency pipeline: windowed percentiles of the model server's histograms.
//!
//! A second metrics pipeline from the same Prometheus receiver (the collector hands each
//! pipeline its own copy, so the main pipeline still forwards a cumulative histogram a
//! `_count`/`_sum` trigger reads):
//!
//! 1. `cumulative_to_delta/llm-autoscale` (`cumulativetodelta` before collector v0.157): each scrape's histogram becomes the delta since the
//!    previous scrape of the same series, the window (collector-contrib
//!    processor/cumulativetodeltaprocessor, `internal/tracking/tracker.go`). The first scrape of
//!    a series holds every request since the model server started, not a window:
//!    `initial_value: drop` keeps it only as the baseline. A model server restart shows as a
//!    new series when the histogram carries its start time (vLLM's `_created`); without one
//!    the tracker refuses the smaller counts and windows resume once they pass the old ones.
//! 2. `filter/llm-autoscale-windows`: only those histograms, and only windows with at least
//!    the percentile's minimum of requests ([`crate::latency::Percentile::min_requests`]): an
//!    idle window and a window of a few requests send nothing, rather than 0 (a false "fast")
//!    or one request's latency (a wild value).
//! 3. `transform/llm-autoscale-percentiles`: `extract_percentile_metric(p, "_pNN")` in the
//!    metric context, a gauge `<histogram>_pNN` per window (collector-contrib
//!    processor/transformprocessor `internal/metrics/func_extract_percentile_metric.go`: linear
//!    interpolation within the bucket, from 0 in the first bucket, the last finite bound in
//!    the `+Inf` bucket; a window of zero requests is skipped).
//! 4. `filter/llm-autoscale-percentiles`: only the gauges go on (the delta histograms would
//!    reach the add-on as `<name>_count`/`_sum` and clash with the cumulative ones).
//! 5. `transform/llm-autoscale`: the `pod`, `deployment` and `namespace` stamping every
//!    forwarded point gets, then the same exporter.
//!
//! All three processor types ship in the contrib image (open-telemetry/
//! opentelemetry-collector-releases `distributions/otelcol-contrib/manifest.yaml`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::collector_config::{Filter, FilterConditions, Pipeline, StatementGroup, Transform};
use crate::latency::WindowedPercentile;

/// Name of the pipeline in `service.pipelines`.
pub const PIPELINE: &str = "metrics/llm-autoscale-latency";

/// The `cumulativetodelta` processor's id for a collector version: its type became
/// `cumulative_to_delta` in collector-contrib v0.157.0 (processor/cumulativetodeltaprocessor
/// `metadata.yaml`: `type: cumulativetodelta` in v0.156.0; `type: cumulative_to_delta`,
/// `deprecated_type: cumulativetodelta` from v0.157.0, whose alias logs a deprecation warning).
pub fn cumulative_to_delta_id(version: Option<(u32, u32)>) -> &'static str {
    match version {
        Some((0, minor)) if minor < 157 => "cumulativetodelta/llm-autoscale",
        _ => "cumulative_to_delta/llm-autoscale",
    }
}

/// The latency pipeline's processors, flattened into `processors`.
#[derive(Serialize)]
pub struct PercentileProcessors {
    /// One entry, under [`cumulative_to_delta_id`].
    #[serde(flatten)]
    pub cumulative_to_delta: BTreeMap<&'static str, CumulativeToDelta>,
    #[serde(rename = "filter/llm-autoscale-windows")]
    pub windows: Filter,
    #[serde(rename = "transform/llm-autoscale-percentiles")]
    pub percentiles: Transform,
    #[serde(rename = "filter/llm-autoscale-percentiles")]
    pub gauges: Filter,
}

/// `cumulativetodelta` (collector-contrib processor/cumulativetodeltaprocessor `config.go`).
#[derive(Serialize)]
pub struct CumulativeToDelta {
    pub include: MatchMetrics,
    /// `drop`: the first point of a series is the baseline, never sent.
    pub initial_value: &'static str,
}

#[derive(Serialize)]
pub struct MatchMetrics {
    pub match_type: &'static str,
    pub metrics: Vec<String>,
}

/// `"name"` as an OTTL string literal.
fn ottl_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The processors for `windows` (none: no latency trigger, no pipeline) on a collector of
/// `version`.
pub fn processors(
    windows: &[WindowedPercentile],
    version: Option<(u32, u32)>,
) -> Option<PercentileProcessors> {
    if windows.is_empty() {
        return None;
    }
    let histograms = histograms(windows);
    let keep_only = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("name != {}", ottl_string(n)))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let gauges: Vec<String> = dedup(windows.iter().map(WindowedPercentile::gauge_name));
    Some(PercentileProcessors {
        cumulative_to_delta: BTreeMap::from([(
            cumulative_to_delta_id(version),
            CumulativeToDelta {
                include: MatchMetrics {
                    match_type: "strict",
                    metrics: histograms.keys().cloned().collect(),
                },
                initial_value: "drop",
            },
        )]),
        windows: Filter {
            error_mode: "ignore",
            metrics: FilterConditions {
                metric: vec![keep_only(&histograms.keys().cloned().collect::<Vec<_>>())],
                datapoint: histograms
                    .iter()
                    .map(|(h, n)| format!("metric.name == {} and count < {n}", ottl_string(h)))
                    .collect(),
            },
        },
        percentiles: Transform {
            error_mode: "ignore",
            metric_statements: vec![StatementGroup {
                context: "metric",
                statements: windows.iter().map(extract_statement).collect(),
            }],
        },
        gauges: Filter {
            error_mode: "ignore",
            metrics: FilterConditions {
                metric: vec![keep_only(&gauges)],
                datapoint: Vec::new(),
            },
        },
    })
}

/// Each histogram once, with the strictest window minimum of its percentiles (its windows are
/// shared: a p99 trigger's minimum applies to a p90 trigger on the same histogram too).
fn histograms(windows: &[WindowedPercentile]) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for w in windows {
        let n = out.entry(w.histogram.clone()).or_default();
        *n = (*n).max(w.percentile.min_requests());
    }
    out
}

fn dedup(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// `extract_percentile_metric(90.0, "_p90") where name == "vllm:…"`.
fn extract_statement(w: &WindowedPercentile) -> String {
    format!(
        "extract_percentile_metric({}, {}) where name == {}",
        w.percentile.ottl_literal(),
        ottl_string(&w.percentile.suffix()),
        ottl_string(&w.histogram)
    )
}

/// The pipeline: the receiver, the memory limiter, the four processors above, then the
/// stamping transform and the exporter the main pipeline uses.
pub fn pipeline(
    memory_limiter: &'static str,
    stamping: &'static str,
    exporter: String,
    version: Option<(u32, u32)>,
) -> Pipeline {
    Pipeline {
        receivers: vec!["prometheus"],
        processors: vec![
            memory_limiter,
            cumulative_to_delta_id(version),
            "filter/llm-autoscale-windows",
            "transform/llm-autoscale-percentiles",
            "filter/llm-autoscale-percentiles",
            stamping,
        ],
        exporters: vec![exporter],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Percentile;

    fn window(h: &str, p: &str) -> WindowedPercentile {
        WindowedPercentile {
            histogram: h.into(),
            percentile: Percentile::parse(p).unwrap(),
        }
    }

    /// A sidecar for latency triggers only: the latency pipeline alone, no main pipeline and
    /// no main filter (whose condition would be empty).
    #[test]
    fn latency_only_sidecar_has_one_pipeline() {
        use crate::render::collector_config::{CollectorInputs, render, to_yaml};
        let inputs = CollectorInputs {
            scrape_port: 8000,
            scrape_path: "/metrics".into(),
            scrape_interval_seconds: 5,
            metrics: Vec::new(),
            percentiles: vec![window("vllm:time_to_first_token_seconds", "90")],
            collector_version: Some((0, 161)),
            deployment: "qwen".into(),
            otlp_endpoint: "keda-otel-scaler.keda.svc:4317".into(),
            exporter_type: "otlp_grpc",
            memory_limit_mib: 100,
            telemetry_port: 8888,
            health_port: 13133,
            builtin: None,
        };
        let v: serde_json::Value =
            serde_yaml_ng::from_str(&to_yaml(&render(&inputs)).unwrap()).unwrap();
        let pipelines = v["service"]["pipelines"].as_object().unwrap();
        assert_eq!(pipelines.keys().collect::<Vec<_>>(), [PIPELINE]);
        assert_eq!(
            pipelines[PIPELINE]["processors"],
            serde_json::json!([
                "memory_limiter",
                "cumulative_to_delta/llm-autoscale",
                "filter/llm-autoscale-windows",
                "transform/llm-autoscale-percentiles",
                "filter/llm-autoscale-percentiles",
                "transform/llm-autoscale"
            ])
        );
        let processors = v["processors"].as_object().unwrap();
        assert!(!processors.contains_key("filter/llm-autoscale"));
        for name in pipelines[PIPELINE]["processors"].as_array().unwrap() {
            assert!(processors.contains_key(name.as_str().unwrap()), "{name}");
        }
    }

    #[test]
    fn the_processor_type_follows_the_collector_version() {
        assert_eq!(
            cumulative_to_delta_id(Some((0, 156))),
            "cumulativetodelta/llm-autoscale"
        );
        assert_eq!(
            cumulative_to_delta_id(Some((0, 157))),
            "cumulative_to_delta/llm-autoscale"
        );
        assert_eq!(
            cumulative_to_delta_id(None),
            "cumulative_to_delta/llm-autoscale"
        );
    }

    #[test]
    fn no_window_no_processors() {
        assert!(processors(&[], None).is_none());
    }

    #[test]
    fn statements_name_each_histogram_and_share_its_strictest_window() {
        let ttft = "vllm:time_to_first_token_seconds";
        let p = processors(
            &[
                window(ttft, "90"),
                window(ttft, "99"),
                window("vllm:e2e_request_latency_seconds", "95"),
            ],
            Some((0, 161)),
        )
        .unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v["cumulative_to_delta/llm-autoscale"]["include"]["metrics"],
            serde_json::json!([
                "vllm:e2e_request_latency_seconds",
                "vllm:time_to_first_token_seconds"
            ])
        );
        assert_eq!(
            v["filter/llm-autoscale-windows"]["metrics"]["datapoint"],
            serde_json::json!([
                "metric.name == \"vllm:e2e_request_latency_seconds\" and count < 20",
                "metric.name == \"vllm:time_to_first_token_seconds\" and count < 100"
            ])
        );
        assert_eq!(
            v["transform/llm-autoscale-percentiles"]["metric_statements"][0]["statements"][1],
            "extract_percentile_metric(99.0, \"_p99\") where name == \"vllm:time_to_first_token_seconds\""
        );
        assert_eq!(
            v["filter/llm-autoscale-percentiles"]["metrics"]["metric"][0],
            "name != \"vllm:time_to_first_token_seconds_p90\" and name != \"vllm:time_to_first_token_seconds_p99\" and name != \"vllm:e2e_request_latency_seconds_p95\""
        );
    }
}
