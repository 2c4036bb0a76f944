//! A query's answer from the series the replicas hold: the value KEDA's `GetMetrics` returns,
//! whether the trigger is active, or an error (which KEDA counts towards its fallback).
//!
//! - **Missing data is an error.** No series matches the query (no pod ever reported it, or
//!   every one was forgotten): error. Series match but none was received within the
//!   staleness window (the sidecars stopped reporting: dead pods, a broken sidecar, a network
//!   cut): error. Series not received within the window are left out while others report (a
//!   pod that is gone ages out).
//! - **An idle window is "no demand".** A percentile whose window holds fewer requests than
//!   its minimum, from pods that do report (a lull, an idle model), has no latency to tell:
//!   the answer is 0 and inactive, so the other triggers decide, as a latency trigger with no
//!   requests decides nothing. It is not an error: the pods are there.
//! - **Active** means the value is above the trigger's activation target (0 by default),
//!   as KEDA's own scalers compare it (kedacore/keda v2.21.0
//!   pkg/scalers/prometheus_scaler.go, `GetMetricsAndActivity`: `val > ActivationThreshold`).

use super::histogram::{DeltaHistogram, HistogramError};
use super::partial::SeriesWindow;
use super::query::{Query, Reading};
use super::series::{At, Delta, Samples};
use crate::keda::OperationOverTime;
use crate::query::Aggregation;

/// What the answer rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Demand {
    /// A value computed from the series.
    Measured,
    /// A percentile over too few requests (`requests` in the window): no demand, value 0.
    NoDemand { requests: u64 },
}

/// A trigger's answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Answer {
    pub value: f64,
    pub active: bool,
    pub demand: Demand,
    /// Series that answered (received within the staleness window).
    pub series: usize,
}

/// Why there is no answer; KEDA counts it as a failed read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AnswerError {
    #[error(
        "no series of {metric} matches {selector}: no pod has reported it since this scaler started, or every one was forgotten"
    )]
    NoSeries { metric: String, selector: String },
    #[error(
        "stale: the {series} series of {metric} matching {selector} were last received {age_seconds} s ago, longer than the staleness window ({staleness_seconds} s): their pods stopped reporting"
    )]
    Stale {
        metric: String,
        selector: String,
        series: usize,
        age_seconds: i64,
        staleness_seconds: i64,
    },
    #[error("no sample of {metric} matching {selector} in the last {window_seconds} s")]
    EmptyWindow {
        metric: String,
        selector: String,
        window_seconds: i64,
    },
    #[error(
        "{metric} is a histogram: ask for a percentile of it, or for {metric}_count or {metric}_sum"
    )]
    HistogramAsValue { metric: String },
    #[error("{metric} is not a histogram: a percentile needs one (vLLM's latency histograms)")]
    NotAHistogram { metric: String },
    #[error(
        "the window ({window_seconds} s) is longer than this scaler keeps samples ({retention_seconds} s, --max-window)"
    )]
    WindowTooLong {
        window_seconds: i64,
        retention_seconds: i64,
    },
    #[error("{metric}: {source}")]
    Histogram {
        metric: String,
        source: HistogramError,
    },
}

fn selector_text(q: &Query) -> String {
    let labels: Vec<String> = q
        .selection
        .selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{{{}}}", labels.join(","))
}

/// The answer to `q` from `series` (the union of the replicas' partial states) at `now_ms`.
pub fn evaluate(
    q: &Query,
    series: &[SeriesWindow],
    now_ms: i64,
    staleness_ms: i64,
) -> Result<Answer, AnswerError> {
    let metric = q.selection.metric.clone();
    if series.is_empty() {
        return Err(AnswerError::NoSeries {
            metric,
            selector: selector_text(q),
        });
    }
    let fresh: Vec<&SeriesWindow> = series
        .iter()
        .filter(|s| s.last_seen_ms >= now_ms - staleness_ms)
        .collect();
    if fresh.is_empty() {
        let newest = series.iter().map(|s| s.last_seen_ms).max().unwrap_or(0);
        return Err(AnswerError::Stale {
            metric,
            selector: selector_text(q),
            series: series.len(),
            age_seconds: (now_ms - newest) / 1000,
            staleness_seconds: staleness_ms / 1000,
        });
    }
    let (value, demand) = match &q.reading {
        Reading::Value {
            over_time,
            aggregation,
        } => (
            value(q, &fresh, *over_time, *aggregation)?,
            Demand::Measured,
        ),
        Reading::Percentile {
            percentile,
            min_requests,
            per_series,
        } => {
            let p: f64 = percentile.as_str().parse().unwrap_or(50.0);
            match latency(q, &fresh, p, *min_requests, *per_series)? {
                Ok(v) => (v, Demand::Measured),
                Err(requests) => (0.0, Demand::NoDemand { requests }),
            }
        }
    };
    Ok(Answer {
        value,
        active: demand == Demand::Measured && value > q.activation,
        demand,
        series: fresh.len(),
    })
}

/// Each series' value over the window, then the aggregation across series.
fn value(
    q: &Query,
    fresh: &[&SeriesWindow],
    op: OperationOverTime,
    aggregation: Aggregation,
) -> Result<f64, AnswerError> {
    let mut values = Vec::with_capacity(fresh.len());
    for s in fresh {
        let v = match &s.samples {
            Samples::Gauge(g) => over_gauges(g.iter(), op),
            Samples::Delta(d) => over_deltas(d.iter(), op),
            Samples::Histogram { .. } => {
                return Err(AnswerError::HistogramAsValue {
                    metric: q.selection.metric.clone(),
                });
            }
        };
        values.extend(v);
    }
    if values.is_empty() {
        return Err(AnswerError::EmptyWindow {
            metric: q.selection.metric.clone(),
            selector: selector_text(q),
            window_seconds: q.selection.window_ms / 1000,
        });
    }
    Ok(aggregate(&values, aggregation))
}

fn aggregate(values: &[f64], aggregation: Aggregation) -> f64 {
    let n = values.len() as f64;
    match aggregation {
        Aggregation::Sum => values.iter().sum(),
        Aggregation::Avg => values.iter().sum::<f64>() / n,
        Aggregation::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        Aggregation::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Aggregation::Count => n,
    }
}

/// A gauge's samples over the window; `None` without samples. `rate` is the change per
/// second between the first and the last sample.
fn over_gauges<'a>(
    samples: impl Iterator<Item = &'a At<f64>>,
    op: OperationOverTime,
) -> Option<f64> {
    let points: Vec<&At<f64>> = samples.collect();
    let (first, last) = (points.first()?, points.last()?);
    let values = || points.iter().map(|a| a.value);
    Some(match op {
        OperationOverTime::LastOne => last.value,
        OperationOverTime::Avg => values().sum::<f64>() / points.len() as f64,
        OperationOverTime::Min => values().fold(f64::INFINITY, f64::min),
        OperationOverTime::Max => values().fold(f64::NEG_INFINITY, f64::max),
        OperationOverTime::Count => points.len() as f64,
        OperationOverTime::Rate => {
            let seconds = (last.at_ms - first.at_ms) as f64 / 1000.0;
            if seconds > 0.0 {
                (last.value - first.value) / seconds
            } else {
                0.0
            }
        }
    })
}

/// A counter's deltas over the window; `None` without samples. `rate` is what the counter
/// added over the time its deltas cover, per second (exact across a split of the series over
/// replicas); the other operations read the deltas themselves.
fn over_deltas<'a>(
    samples: impl Iterator<Item = &'a At<Delta>>,
    op: OperationOverTime,
) -> Option<f64> {
    let deltas: Vec<Delta> = samples.map(|a| a.value).collect();
    let last = deltas.last()?;
    let values = || deltas.iter().map(|d| d.value);
    Some(match op {
        OperationOverTime::Rate => {
            let seconds = deltas.iter().map(|d| d.interval_ms).sum::<i64>() as f64 / 1000.0;
            if seconds > 0.0 {
                values().sum::<f64>() / seconds
            } else {
                0.0
            }
        }
        OperationOverTime::LastOne => last.value,
        OperationOverTime::Avg => values().sum::<f64>() / deltas.len() as f64,
        OperationOverTime::Min => values().fold(f64::INFINITY, f64::min),
        OperationOverTime::Max => values().fold(f64::NEG_INFINITY, f64::max),
        OperationOverTime::Count => deltas.len() as f64,
    })
}

/// The percentile: `Ok(value)`, or `Err(requests)` when the window holds fewer than
/// `min_requests` (no demand).
fn latency(
    q: &Query,
    fresh: &[&SeriesWindow],
    p: f64,
    min_requests: u64,
    per_series: Option<Aggregation>,
) -> Result<Result<f64, u64>, AnswerError> {
    let metric = &q.selection.metric;
    let histograms: Vec<DeltaHistogram> = fresh
        .iter()
        .map(|s| merged_windows(metric, s))
        .collect::<Result<_, _>>()?;
    let fail = |source| AnswerError::Histogram {
        metric: metric.clone(),
        source,
    };
    match per_series {
        None => {
            let mut fleet: Option<DeltaHistogram> = None;
            for h in histograms {
                match &mut fleet {
                    None => fleet = Some(h),
                    Some(f) => f.merge(&h).map_err(fail)?,
                }
            }
            let fleet = fleet.map(|f| (f.count(), f.percentile(p)));
            Ok(match fleet {
                Some((n, Some(v))) if n >= min_requests => Ok(v),
                Some((n, _)) => Err(n),
                None => Err(0),
            })
        }
        Some(aggregation) => {
            let requests: u64 = histograms.iter().map(DeltaHistogram::count).sum();
            let values: Vec<f64> = histograms
                .iter()
                .filter(|h| h.count() >= min_requests)
                .filter_map(|h| h.percentile(p))
                .collect();
            Ok(if values.is_empty() {
                Err(requests)
            } else {
                Ok(aggregate(&values, aggregation))
            })
        }
    }
}

/// One series' windows merged.
fn merged_windows(metric: &str, s: &SeriesWindow) -> Result<DeltaHistogram, AnswerError> {
    let Samples::Histogram { bounds, windows } = &s.samples else {
        return Err(AnswerError::NotAHistogram {
            metric: metric.to_string(),
        });
    };
    let fail = |source| AnswerError::Histogram {
        metric: metric.to_string(),
        source,
    };
    let mut h = DeltaHistogram::empty(bounds.clone());
    for w in windows {
        h.merge(&Samples::histogram(bounds, &w.value).map_err(fail)?)
            .map_err(fail)?;
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, VecDeque};
    use std::sync::Arc;

    use super::*;
    use crate::scaler::series::{SeriesKey, Window};

    fn query(pairs: &[(&str, &str)]) -> Query {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Query::from_metadata(&m).unwrap()
    }

    const BOUNDS: [f64; 3] = [0.5, 1.0, 2.0];

    fn histogram(pod: &str, windows: &[[u64; 4]]) -> SeriesWindow {
        SeriesWindow {
            key: SeriesKey::new("h", vec![("pod".into(), pod.into())]),
            last_seen_ms: 100_000,
            samples: Samples::Histogram {
                bounds: Arc::from(&BOUNDS[..]),
                windows: windows
                    .iter()
                    .enumerate()
                    .map(|(i, c)| At {
                        at_ms: 50_000 + i as i64 * 5_000,
                        value: Window {
                            counts: c.to_vec().into_boxed_slice(),
                            sum: 0.0,
                            interval_ms: 5_000,
                        },
                    })
                    .collect::<VecDeque<_>>(),
            },
        }
    }

    #[test]
    fn missing_data_is_an_error_and_stale_pods_age_out() {
        let q = query(&[
            ("metricQuery", "sum(m{deployment=d})"),
            ("targetValue", "5"),
        ]);
        assert!(matches!(
            evaluate(&q, &[], 100_000, 60_000),
            Err(AnswerError::NoSeries { .. })
        ));
        let old = SeriesWindow::gauge("gone", 10_000, &[(10_000, 7.0)]);
        let err = evaluate(&q, std::slice::from_ref(&old), 100_000, 60_000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stale: the 1 series of m matching {deployment=d} were last received 90 s ago, longer than the staleness window (60 s): their pods stopped reporting"
        );
        // With a pod still reporting, the gone one is left out.
        let live = SeriesWindow::gauge("live", 95_000, &[(95_000, 3.0)]);
        let a = evaluate(&q, &[old, live], 100_000, 60_000).unwrap();
        assert_eq!((a.value, a.series, a.active), (3.0, 1, true));
    }

    #[test]
    fn operations_over_time_and_aggregations() {
        let series = [
            SeriesWindow::gauge(
                "a",
                100_000,
                &[(40_000, 2.0), (70_000, 4.0), (100_000, 6.0)],
            ),
            SeriesWindow::gauge("b", 100_000, &[(100_000, 10.0)]),
        ];
        let cases = [
            ("sum", "last_one", 16.0),
            ("avg", "last_one", 8.0),
            ("max", "avg", 10.0),
            ("min", "min", 2.0),
            ("count", "last_one", 2.0),
            ("sum", "count", 4.0),
            // a: (6 - 2) over 60 s; b: one sample, no change.
            ("sum", "rate", 4.0 / 60.0),
        ];
        for (agg, op, want) in cases {
            let q = query(&[
                ("metricQuery", &format!("{agg}(m)")),
                ("operationOverTime", op),
                ("targetValue", "1"),
            ]);
            let a = evaluate(&q, &series, 100_000, 60_000).unwrap();
            assert!(
                (a.value - want).abs() < 1e-9,
                "{agg}/{op}: {} != {want}",
                a.value
            );
        }
        // The window: the sample at 40 s is out of a 30 s window of a.
        let q = query(&[
            ("metricQuery", "avg(m)"),
            ("operationOverTime", "avg"),
            ("window", "30s"),
            ("targetValue", "1"),
        ]);
        let windowed: Vec<SeriesWindow> = series
            .iter()
            .map(|s| SeriesWindow {
                samples: s.samples.since(70_000),
                ..s.clone()
            })
            .collect();
        assert_eq!(evaluate(&q, &windowed, 100_000, 60_000).unwrap().value, 7.5);
    }

    #[test]
    fn counters_read_as_rates_over_the_covered_time() {
        let deltas = SeriesWindow {
            key: SeriesKey::new("c", vec![]),
            last_seen_ms: 100_000,
            samples: Samples::Delta(
                [(90_000, 50.0), (95_000, 25.0), (100_000, 25.0)]
                    .iter()
                    .map(|&(at_ms, value)| At {
                        at_ms,
                        value: Delta {
                            value,
                            interval_ms: 5_000,
                        },
                    })
                    .collect(),
            ),
        };
        let q = query(&[
            ("metricQuery", "sum(c)"),
            ("operationOverTime", "rate"),
            ("targetValue", "1"),
        ]);
        assert_eq!(
            evaluate(&q, &[deltas], 100_000, 60_000).unwrap().value,
            100.0 / 15.0
        );
    }

    #[test]
    fn fleet_percentile_merges_and_idle_windows_are_no_demand() {
        let q = query(&[
            ("metricQuery", "h{deployment=d}"),
            ("percentile", "90"),
            ("targetValue", "1"),
            ("activationTargetValue", "0.9"),
        ]);
        // Pod a: 10 fast; pod b: 10 slow in (1, 2]. Merged: rank 18 of 20 is the 8th of b's 10.
        let series = [
            histogram("a", &[[5, 0, 0, 0], [5, 0, 0, 0]]),
            histogram("b", &[[0, 0, 10, 0]]),
        ];
        let a = evaluate(&q, &series, 100_000, 60_000).unwrap();
        assert_eq!(a.demand, Demand::Measured);
        assert!((a.value - 1.8).abs() < 1e-9, "{}", a.value);
        assert!(a.active);
        // The worst pod's own percentile instead.
        let worst = query(&[
            ("metricQuery", "max(h{deployment=d})"),
            ("percentile", "90"),
            ("targetValue", "1"),
        ]);
        assert!((evaluate(&worst, &series, 100_000, 60_000).unwrap().value - 1.9).abs() < 1e-9);
        // Pods that report but served 4 requests in the window: no demand, not an error.
        let idle = [
            histogram("a", &[[2, 0, 0, 0], [0, 0, 0, 0]]),
            histogram("b", &[[0, 2, 0, 0]]),
        ];
        let a = evaluate(&q, &idle, 100_000, 60_000).unwrap();
        assert_eq!(a.demand, Demand::NoDemand { requests: 4 });
        assert_eq!((a.value, a.active), (0.0, false));
        let a = evaluate(&worst, &idle, 100_000, 60_000).unwrap();
        assert_eq!(a.demand, Demand::NoDemand { requests: 4 });
        // A gauge read as a percentile, and a histogram read as a value, are errors.
        assert!(matches!(
            evaluate(
                &q,
                &[SeriesWindow::gauge("a", 100_000, &[(1, 1.0)])],
                100_000,
                60_000
            ),
            Err(AnswerError::NotAHistogram { .. })
        ));
        let as_value = query(&[("metricQuery", "sum(h)"), ("targetValue", "1")]);
        assert!(matches!(
            evaluate(&as_value, &series, 100_000, 60_000),
            Err(AnswerError::HistogramAsValue { .. })
        ));
    }

    #[test]
    fn activation_compares_with_the_threshold() {
        let series = [SeriesWindow::gauge("a", 100_000, &[(100_000, 2.0)])];
        for (activation, active) in [("0", true), ("1.99", true), ("2", false), ("3", false)] {
            let q = query(&[
                ("metricQuery", "sum(m)"),
                ("targetValue", "1"),
                ("activationTargetValue", activation),
            ]);
            assert_eq!(
                evaluate(&q, &series, 100_000, 60_000).unwrap().active,
                active
            );
        }
    }
}
