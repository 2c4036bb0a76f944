//! What a trigger asks the built-in scaler, read from the trigger's metadata (KEDA passes it
//! as `ScaledObjectRef.scalerMetadata` on every call: kedacore/keda v2.21.0
//! pkg/scalers/external_scaler.go, `parseExternalScalerMetadata`).
//!
//! | key | meaning |
//! | --- | --- |
//! | `metricQuery` | `op(metric{label=value,...})`, the KEDA OTel add-on's grammar; `op` is `sum` (default), `avg`, `min`, `max` or `count` across series; a percentile query without `op` merges every series' requests |
//! | `operationOverTime` | per series over the window: `last_one` (default), `avg`, `min`, `max`, `rate` (per second), `count` (samples) |
//! | `window` | the span the operation (or the percentile) covers: seconds or `30s`, `1m`; default 60 s |
//! | `percentile` | makes the query a percentile of the histogram `metric` (0 < p < 100) |
//! | `minRequests` | a percentile needs at least this many requests in the window; default max(10, ⌈100 / (100 − p)⌉) |
//! | `targetValue` | the HPA's target (GetMetricSpec) |
//! | `activationTargetValue` | active when the value is above it; default 0 |
//!
//! Other keys (`scalerAddress`, KEDA's TLS keys) are KEDA's and ignored here.

use std::collections::BTreeMap;

use super::store::Selection;
use crate::annotations::values;
use crate::keda::OperationOverTime;
use crate::latency::Percentile;
use crate::problem::Problem;
use crate::query::{Aggregation, parse_addon_query};

pub const METRIC_QUERY: &str = "metricQuery";
pub const OPERATION_OVER_TIME: &str = "operationOverTime";
pub const WINDOW: &str = "window";
pub const PERCENTILE: &str = "percentile";
pub const MIN_REQUESTS: &str = "minRequests";
pub const TARGET_VALUE: &str = "targetValue";
pub const ACTIVATION_TARGET_VALUE: &str = "activationTargetValue";

/// The window when the metadata names none.
pub const DEFAULT_WINDOW_SECONDS: i32 = 60;

/// How the series' samples become one value.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    /// Each series' samples over the window by `over_time`, then `aggregation` across series.
    Value {
        over_time: OperationOverTime,
        aggregation: Aggregation,
    },
    /// A percentile of the requests the histogram counted in the window: of every series'
    /// requests merged (`per_series: None`, the fleet's percentile), or of each series'
    /// requests, then `avg`/`min`/`max` across series.
    Percentile {
        percentile: Percentile,
        min_requests: u64,
        per_series: Option<Aggregation>,
    },
}

/// A trigger's question, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub selection: Selection,
    pub reading: Reading,
    pub target: f64,
    pub activation: f64,
}

/// `spec.triggers[].metadata.<key>` for messages.
fn field(key: &str) -> String {
    format!("metadata.{key}")
}

impl Query {
    /// Reads a trigger's metadata; every problem, each naming its key.
    pub fn from_metadata(m: &BTreeMap<String, String>) -> Result<Query, Vec<Problem>> {
        let mut problems = Vec::new();
        let get = |k: &str| m.get(k).map(String::as_str);
        let parsed = match get(METRIC_QUERY) {
            None => {
                problems.push(Problem::new(
                    field(METRIC_QUERY),
                    None,
                    "missing: the built-in scaler needs a query",
                    "add metricQuery such as sum(vllm:num_requests_waiting{deployment=my-model,namespace=my-ns})",
                ));
                None
            }
            Some(q) => parse_addon_query(q)
                .map_err(|e| {
                    problems.push(Problem::new(
                        field(METRIC_QUERY),
                        Some(q),
                        e.to_string(),
                        "write op(metric{label=value,...}) with op one of sum|avg|min|max|count and only = matchers",
                    ))
                })
                .ok(),
        };
        let window = window_ms(get(WINDOW), &mut problems);
        let target = decimal(get(TARGET_VALUE), TARGET_VALUE, true, &mut problems);
        let activation = match get(ACTIVATION_TARGET_VALUE) {
            None => Some(0.0),
            v => decimal(v, ACTIVATION_TARGET_VALUE, false, &mut problems),
        };
        let aggregation = parsed.as_ref().and_then(|q| q.aggregation);
        let reading = match get(PERCENTILE) {
            Some(p) => percentile_reading(p, get, aggregation, &mut problems),
            None => value_reading(get, aggregation, &mut problems),
        };
        match (parsed, window, target, activation, reading) {
            (Some(q), Some(window_ms), Some(target), Some(activation), Some(reading))
                if problems.is_empty() =>
            {
                Ok(Query {
                    selection: Selection {
                        metric: q.metric,
                        selector: q.labels,
                        window_ms,
                    },
                    reading,
                    target,
                    activation,
                })
            }
            _ => Err(problems),
        }
    }
}

fn window_ms(v: Option<&str>, problems: &mut Vec<Problem>) -> Option<i64> {
    let Some(v) = v else {
        return Some(i64::from(DEFAULT_WINDOW_SECONDS) * 1000);
    };
    match values::seconds(v) {
        Ok(0) => {
            problems.push(Problem::new(
                field(WINDOW),
                Some(v),
                "must be at least 1 second",
                "write \"60s\"",
            ));
            None
        }
        Ok(s) => Some(i64::from(s) * 1000),
        Err(r) => {
            problems.push(Problem::new(field(WINDOW), Some(v), r.reason, r.fix));
            None
        }
    }
}

/// A plain decimal (`positive`: above 0).
fn decimal(v: Option<&str>, key: &str, positive: bool, problems: &mut Vec<Problem>) -> Option<f64> {
    let Some(v) = v else {
        problems.push(Problem::new(
            field(key),
            None,
            "missing",
            format!("add {key} such as \"5\""),
        ));
        return None;
    };
    match values::decimal(v).map(|d| d.parse::<f64>()) {
        Ok(Ok(x)) if positive && x <= 0.0 => {
            problems.push(Problem::new(
                field(key),
                Some(v),
                "must be greater than 0 (the HPA divides by it)",
                "write a positive decimal such as \"5\"",
            ));
            None
        }
        Ok(Ok(x)) => Some(x),
        Ok(Err(_)) => None,
        Err(r) => {
            problems.push(Problem::new(field(key), Some(v), r.reason, r.fix));
            None
        }
    }
}

fn value_reading<'m>(
    get: impl Fn(&str) -> Option<&'m str>,
    aggregation: Option<Aggregation>,
    problems: &mut Vec<Problem>,
) -> Option<Reading> {
    if let Some(v) = get(MIN_REQUESTS) {
        problems.push(Problem::new(
            field(MIN_REQUESTS),
            Some(v),
            "only a percentile query reads it",
            "remove it, or add percentile",
        ));
    }
    let over_time = match get(OPERATION_OVER_TIME) {
        None => OperationOverTime::LastOne,
        Some(v) => match OperationOverTime::parse(v) {
            Some(op) => op,
            None => {
                problems.push(Problem::new(
                    field(OPERATION_OVER_TIME),
                    Some(v),
                    "unknown operation",
                    format!("write one of {}", OperationOverTime::names()),
                ));
                return None;
            }
        },
    };
    Some(Reading::Value {
        over_time,
        aggregation: aggregation.unwrap_or(Aggregation::Sum),
    })
}

fn percentile_reading<'m>(
    p: &str,
    get: impl Fn(&str) -> Option<&'m str>,
    aggregation: Option<Aggregation>,
    problems: &mut Vec<Problem>,
) -> Option<Reading> {
    let percentile = Percentile::parse(p)
        .map_err(|r| problems.push(Problem::new(field(PERCENTILE), Some(p), r.reason, r.fix)))
        .ok();
    if let Some(v) = get(OPERATION_OVER_TIME) {
        problems.push(Problem::new(
            field(OPERATION_OVER_TIME),
            Some(v),
            "a percentile is taken of the window's requests merged, not of values over time",
            "remove it; set window for the span",
        ));
    }
    if let Some(a @ (Aggregation::Sum | Aggregation::Count)) = aggregation {
        problems.push(Problem::new(
            field(METRIC_QUERY),
            get(METRIC_QUERY),
            format!("{} of latencies is not a latency", a.as_str()),
            "write the histogram without op for the fleet's percentile, or max, avg or min of each series' percentile",
        ));
    }
    let percentile = percentile?;
    let min_requests = match get(MIN_REQUESTS) {
        None => percentile.min_requests(),
        Some(v) => match values::count(v) {
            Ok(n) if n > 0 => u64::try_from(n).unwrap_or(1),
            _ => {
                problems.push(Problem::new(
                    field(MIN_REQUESTS),
                    Some(v),
                    "not a whole number of requests above 0",
                    format!("write \"{}\"", percentile.min_requests()),
                ));
                return None;
            }
        },
    };
    Some(Reading::Percentile {
        percentile,
        min_requests,
        per_series: aggregation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_value_query() {
        let q = Query::from_metadata(&meta(&[
            ("scalerAddress", "s:1"),
            (
                "metricQuery",
                "sum(vllm:num_requests_waiting{deployment=d,namespace=ns})",
            ),
            ("operationOverTime", "avg"),
            ("window", "2m"),
            ("targetValue", "5"),
            ("activationTargetValue", "0.5"),
        ]))
        .unwrap();
        assert_eq!(q.selection.metric, "vllm:num_requests_waiting");
        assert_eq!(q.selection.window_ms, 120_000);
        assert_eq!(q.target, 5.0);
        assert_eq!(q.activation, 0.5);
        assert_eq!(
            q.reading,
            Reading::Value {
                over_time: OperationOverTime::Avg,
                aggregation: Aggregation::Sum
            }
        );
    }

    #[test]
    fn a_percentile_query_and_its_defaults() {
        let q = Query::from_metadata(&meta(&[
            (
                "metricQuery",
                "vllm:time_to_first_token_seconds{deployment=d,namespace=ns}",
            ),
            ("percentile", "95"),
            ("targetValue", "1"),
        ]))
        .unwrap();
        assert_eq!(q.selection.window_ms, 60_000);
        assert_eq!(q.activation, 0.0);
        assert_eq!(
            q.reading,
            Reading::Percentile {
                percentile: Percentile::parse("95").unwrap(),
                min_requests: 20,
                per_series: None
            }
        );
    }

    #[test]
    fn every_problem_names_its_key() {
        let problems = Query::from_metadata(&meta(&[
            ("metricQuery", "sum(x{a!=b})"),
            ("window", "0"),
            ("targetValue", "600m"),
            ("percentile", "100"),
            ("operationOverTime", "avg"),
        ]))
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "metadata.metricQuery",
                "metadata.window",
                "metadata.targetValue",
                "metadata.percentile",
                "metadata.operationOverTime"
            ]
        );
        let problems =
            Query::from_metadata(&meta(&[("metricQuery", "sum(x)"), ("minRequests", "5")]))
                .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["metadata.targetValue", "metadata.minRequests"]);
        let problems = Query::from_metadata(&meta(&[
            ("metricQuery", "sum(h)"),
            ("percentile", "90"),
            ("targetValue", "1"),
        ]))
        .unwrap_err();
        assert!(problems[0].reason.contains("not a latency"), "{problems:?}");
    }
}
