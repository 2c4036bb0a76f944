//! An OTLP metrics export as the sidecar sends it, read into store points, and what was
//! refused in it.
//!
//! What the built-in sidecar sends (its pipeline: prometheus receiver → filter →
//! `cumulative_to_delta` → the `pod`/`deployment`/`namespace` stamping): gauges as they are
//! scraped, counters and histograms as deltas per scrape. Accepted: gauges and
//! non-monotonic sums (values), monotonic delta sums (counters), delta histograms with
//! explicit bounds. Refused and counted: points without the three identity attributes,
//! cumulative counters and histograms (the sidecar converts them; a cumulative value cannot
//! be merged across replicas), exponential histograms and summaries, non-finite values,
//! malformed histograms. Points flagged "no recorded value" (the Prometheus receiver's
//! staleness markers, sent when a scrape target disappears) are skipped: they say the series
//! stopped, which its staleness says too.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, DataPointFlags, HistogramDataPoint, NumberDataPoint, metric,
    number_data_point,
};

use super::series::{Delta, Incoming, SeriesKey, Window};
use super::store::Point;

/// Why a data point was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rejection {
    /// Without `pod`, `deployment` and `namespace` attributes: not a sidecar's point.
    Unidentified,
    /// A cumulative counter or histogram.
    Cumulative,
    /// An exponential histogram or a summary.
    Unsupported,
    /// NaN or infinite.
    NotFinite,
    /// Bucket counts that do not fit the bounds, or bounds that do not increase.
    Malformed,
    /// The namespace's credential is missing or wrong ([`super::trust`]).
    Untrusted,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Unidentified => "unidentified",
            Rejection::Cumulative => "cumulative",
            Rejection::Unsupported => "unsupported",
            Rejection::NotFinite => "not_finite",
            Rejection::Malformed => "malformed",
            Rejection::Untrusted => "untrusted",
        }
    }
}

/// The points of one export, and how many were refused for which reason.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decoded {
    pub points: Vec<Point>,
    pub rejected: Vec<(Rejection, usize)>,
}

impl Decoded {
    pub fn reject(&mut self, why: Rejection, n: usize) {
        if n == 0 {
            return;
        }
        match self.rejected.iter_mut().find(|(r, _)| *r == why) {
            Some((_, count)) => *count += n,
            None => self.rejected.push((why, n)),
        }
    }

    pub fn rejected_points(&self) -> usize {
        self.rejected.iter().map(|(_, n)| n).sum()
    }
}

/// Reads every data point of `request`.
pub fn decode(request: &ExportMetricsServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    let metrics = request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics);
    for m in metrics {
        match &m.data {
            Some(metric::Data::Gauge(g)) => {
                for dp in &g.data_points {
                    number(&m.name, dp, NumberKind::Gauge, &mut out);
                }
            }
            Some(metric::Data::Sum(s)) => {
                let kind = match (s.is_monotonic, s.aggregation_temporality) {
                    (false, _) => NumberKind::Gauge,
                    (true, t) if t == AggregationTemporality::Delta as i32 => NumberKind::Delta,
                    (true, _) => {
                        out.reject(Rejection::Cumulative, s.data_points.len());
                        continue;
                    }
                };
                for dp in &s.data_points {
                    number(&m.name, dp, kind, &mut out);
                }
            }
            Some(metric::Data::Histogram(h)) => {
                if h.aggregation_temporality != AggregationTemporality::Delta as i32 {
                    out.reject(Rejection::Cumulative, h.data_points.len());
                    continue;
                }
                for dp in &h.data_points {
                    histogram(&m.name, dp, &mut out);
                }
            }
            Some(metric::Data::ExponentialHistogram(h)) => {
                out.reject(Rejection::Unsupported, h.data_points.len());
            }
            Some(metric::Data::Summary(s)) => {
                out.reject(Rejection::Unsupported, s.data_points.len())
            }
            None => {}
        }
    }
    out
}

#[derive(Clone, Copy)]
enum NumberKind {
    Gauge,
    Delta,
}

fn no_recorded_value(flags: u32) -> bool {
    flags & DataPointFlags::NoRecordedValueMask as u32 != 0
}

fn number(name: &str, dp: &NumberDataPoint, kind: NumberKind, out: &mut Decoded) {
    if no_recorded_value(dp.flags) {
        return;
    }
    let v = match dp.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => return,
    };
    if !v.is_finite() {
        return out.reject(Rejection::NotFinite, 1);
    }
    let value = match kind {
        NumberKind::Gauge => Incoming::Gauge(v),
        NumberKind::Delta => Incoming::Delta(Delta {
            value: v,
            interval_ms: interval_ms(dp.start_time_unix_nano, dp.time_unix_nano),
        }),
    };
    push(name, &dp.attributes, dp.time_unix_nano, value, out);
}

fn histogram(name: &str, dp: &HistogramDataPoint, out: &mut Decoded) {
    if no_recorded_value(dp.flags) {
        return;
    }
    let shaped = dp.bucket_counts.len() == dp.explicit_bounds.len() + 1;
    let increasing = dp
        .explicit_bounds
        .windows(2)
        .all(|w| matches!(w, [a, b] if a < b));
    if !shaped || !increasing || dp.explicit_bounds.iter().any(|b| !b.is_finite()) {
        return out.reject(Rejection::Malformed, 1);
    }
    let value = Incoming::Histogram {
        bounds: dp.explicit_bounds.clone(),
        window: Window {
            counts: dp.bucket_counts.clone().into_boxed_slice(),
            sum: dp.sum.filter(|s| s.is_finite()).unwrap_or(0.0),
            interval_ms: interval_ms(dp.start_time_unix_nano, dp.time_unix_nano),
        },
    };
    push(name, &dp.attributes, dp.time_unix_nano, value, out);
}

fn interval_ms(start_ns: u64, end_ns: u64) -> i64 {
    i64::try_from(end_ns.saturating_sub(start_ns) / 1_000_000).unwrap_or(0)
}

fn push(name: &str, attributes: &[KeyValue], time_ns: u64, value: Incoming, out: &mut Decoded) {
    let labels: Vec<(String, String)> = attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref()?)?)))
        .collect();
    let key = SeriesKey::new(name, labels);
    let (Some(workload), Some(_)) = (key.workload(), key.label(super::series::POD)) else {
        return out.reject(Rejection::Unidentified, 1);
    };
    out.points.push(Point {
        key,
        workload,
        at_ms: i64::try_from(time_ns / 1_000_000).unwrap_or(i64::MAX),
        value,
    });
}

/// An attribute's value as a label value (strings, numbers and booleans).
fn text(v: &AnyValue) -> Option<String> {
    match v.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, Metric, ResourceMetrics, ScopeMetrics, Sum,
    };

    pub fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    pub fn identity(pod: &str) -> Vec<KeyValue> {
        vec![
            kv("pod", pod),
            kv("deployment", "d"),
            kv("namespace", "ns"),
            kv("model_name", "m"),
        ]
    }

    pub fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    pub fn gauge_metric(name: &str, attrs: Vec<KeyValue>, v: f64, time_ns: u64) -> Metric {
        Metric {
            name: name.into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    attributes: attrs,
                    time_unix_nano: time_ns,
                    value: Some(number_data_point::Value::AsDouble(v)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        }
    }

    fn sum(temporality: AggregationTemporality, monotonic: bool) -> Metric {
        Metric {
            name: "vllm:generation_tokens_total".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    attributes: identity("p"),
                    start_time_unix_nano: 5_000_000_000,
                    time_unix_nano: 10_000_000_000,
                    value: Some(number_data_point::Value::AsInt(42)),
                    ..Default::default()
                }],
                aggregation_temporality: temporality as i32,
                is_monotonic: monotonic,
            })),
            ..Default::default()
        }
    }

    pub fn histogram_metric(
        name: &str,
        attrs: Vec<KeyValue>,
        bounds: &[f64],
        counts: &[u64],
        time_ns: u64,
    ) -> Metric {
        Metric {
            name: name.into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: attrs,
                    start_time_unix_nano: time_ns.saturating_sub(5_000_000_000),
                    time_unix_nano: time_ns,
                    count: counts.iter().sum(),
                    sum: Some(1.0),
                    bucket_counts: counts.to_vec(),
                    explicit_bounds: bounds.to_vec(),
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Delta as i32,
            })),
            ..Default::default()
        }
    }

    #[test]
    fn the_sidecars_points_are_read() {
        let d = decode(&request(vec![
            gauge_metric(
                "vllm:num_requests_waiting",
                identity("p"),
                3.0,
                7_000_000_000,
            ),
            sum(AggregationTemporality::Delta, true),
            sum(AggregationTemporality::Cumulative, false),
            histogram_metric("h", identity("p"), &[1.0], &[2, 1], 9_000_000_000),
        ]));
        assert_eq!(d.rejected, vec![]);
        assert_eq!(d.points.len(), 4);
        let p = &d.points[0];
        assert_eq!(p.key.label("model_name"), Some("m"));
        assert_eq!(p.workload.to_string(), "ns/d");
        assert_eq!((p.at_ms, &p.value), (7_000, &Incoming::Gauge(3.0)));
        assert_eq!(
            d.points[1].value,
            Incoming::Delta(Delta {
                value: 42.0,
                interval_ms: 5_000
            })
        );
        assert_eq!(
            d.points[2].value,
            Incoming::Gauge(42.0),
            "an up-down counter"
        );
        assert!(
            matches!(&d.points[3].value, Incoming::Histogram { window, .. } if window.interval_ms == 5_000)
        );
    }

    #[test]
    fn what_is_refused_is_counted() {
        let mut stale = gauge_metric("g", identity("p"), 1.0, 1);
        if let Some(metric::Data::Gauge(g)) = &mut stale.data {
            g.data_points[0].flags = DataPointFlags::NoRecordedValueMask as u32;
        }
        let mut cumulative_histogram = histogram_metric("h", identity("p"), &[1.0], &[1, 1], 1);
        if let Some(metric::Data::Histogram(h)) = &mut cumulative_histogram.data {
            h.aggregation_temporality = AggregationTemporality::Cumulative as i32;
        }
        let d = decode(&request(vec![
            gauge_metric("g", vec![kv("pod", "p"), kv("namespace", "ns")], 1.0, 1),
            gauge_metric("g", identity("p"), f64::NAN, 1),
            sum(AggregationTemporality::Cumulative, true),
            cumulative_histogram,
            histogram_metric("h", identity("p"), &[1.0], &[1], 1),
            histogram_metric("h", identity("p"), &[2.0, 1.0], &[1, 1, 1], 1),
            stale,
        ]));
        assert!(d.points.is_empty());
        assert_eq!(
            d.rejected,
            vec![
                (Rejection::Unidentified, 1),
                (Rejection::NotFinite, 1),
                (Rejection::Cumulative, 2),
                (Rejection::Malformed, 2)
            ]
        );
        assert_eq!(d.rejected_points(), 6);
    }
}
