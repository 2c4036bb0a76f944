//! The built-in scaler's own metrics (`/metrics`):
//!
//! - `llm_autoscale_scaler_series`, `llm_autoscale_scaler_workloads`: what the store holds;
//! - `llm_autoscale_scaler_points_total{result}`: data points received, by result: `accepted`,
//!   a refusal (`unidentified`, `cumulative`, `unsupported`, `not_finite`, `malformed`,
//!   `untrusted`) or a limit that dropped them (`series_per_workload`, `total_series`); the
//!   ingest rate is `rate(...{result="accepted"}[1m])`;
//! - `llm_autoscale_scaler_exports_total`: OTLP export requests;
//! - `llm_autoscale_scaler_series_forgotten_total`: series of pods that stopped reporting;
//! - `llm_autoscale_scaler_answers_total{rpc,outcome}`: KEDA's calls by outcome (`value`,
//!   `no_demand`, `error`, `invalid`);
//! - `llm_autoscale_scaler_query_duration_seconds{rpc}`: time to answer KEDA (peers included);
//! - `llm_autoscale_scaler_ingest_duration_seconds`: time to store one export;
//! - `llm_autoscale_scaler_peer_requests_total{result}`: holdings asked of peers (`ok`, `error`).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use crate::metrics::ResultLabels;
use crate::metrics::{Buckets, HistogramFamily, register, register_seconds};

/// Upper bounds of the duration histograms, in seconds (from 25 µs: answers are in memory).
const BUCKETS: Buckets = Buckets(&[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 1.0,
]);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnswerLabels {
    pub rpc: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub rpc: &'static str,
}

/// Handles on the scaler's metrics (cheap to clone).
#[derive(Clone, Debug)]
pub struct ScalerMetrics {
    pub series: Gauge,
    pub workloads: Gauge,
    points: Family<ResultLabels, Counter>,
    pub exports: Counter,
    pub forgotten: Counter,
    answers: Family<AnswerLabels, Counter>,
    query_duration: HistogramFamily<RpcLabels>,
    ingest_duration: Histogram,
    peer_requests: Family<ResultLabels, Counter>,
}

impl ScalerMetrics {
    pub fn register(registry: &mut Registry) -> ScalerMetrics {
        let r = registry;
        let m = ScalerMetrics {
            series: register(
                r,
                "llm_autoscale_scaler_series",
                "Series held",
                Gauge::default(),
            ),
            workloads: register(
                r,
                "llm_autoscale_scaler_workloads",
                "Workloads with series held",
                Gauge::default(),
            ),
            points: register(
                r,
                "llm_autoscale_scaler_points",
                "Data points received, by result (accepted, a refusal, or the limit that dropped them)",
                Family::default(),
            ),
            exports: register(
                r,
                "llm_autoscale_scaler_exports",
                "OTLP export requests received",
                Counter::default(),
            ),
            forgotten: register(
                r,
                "llm_autoscale_scaler_series_forgotten",
                "Series forgotten after their pods stopped reporting",
                Counter::default(),
            ),
            answers: register(
                r,
                "llm_autoscale_scaler_answers",
                "KEDA calls answered, by rpc and outcome (value, no_demand, error, invalid)",
                Family::default(),
            ),
            query_duration: register_seconds(
                r,
                "llm_autoscale_scaler_query_duration",
                "Time to answer a KEDA call, peers included",
                BUCKETS.family(),
            ),
            ingest_duration: register_seconds(
                r,
                "llm_autoscale_scaler_ingest_duration",
                "Time to check and store one OTLP export",
                BUCKETS.histogram(),
            ),
            peer_requests: register(
                r,
                "llm_autoscale_scaler_peer_requests",
                "Holdings asked of peer replicas, by result (ok, error)",
                Family::default(),
            ),
        };
        m.points(ACCEPTED, 0);
        m
    }

    pub fn points(&self, result: &'static str, n: usize) {
        self.points
            .get_or_create(&ResultLabels { result })
            .inc_by(n as u64);
    }

    pub fn answered(&self, rpc: &'static str, outcome: &'static str, elapsed: Duration) {
        self.answers
            .get_or_create(&AnswerLabels { rpc, outcome })
            .inc();
        self.query_duration
            .get_or_create(&RpcLabels { rpc })
            .observe(elapsed.as_secs_f64());
    }

    pub fn ingested(&self, elapsed: Duration) {
        self.exports.inc();
        self.ingest_duration.observe(elapsed.as_secs_f64());
    }

    pub fn peer_request(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.peer_requests
            .get_or_create(&ResultLabels { result })
            .inc();
    }
}

/// The `result` of stored points.
pub const ACCEPTED: &str = "accepted";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::metrics::encode;

    #[test]
    fn names_and_labels() {
        let mut registry = Registry::default();
        let m = ScalerMetrics::register(&mut registry);
        m.series.set(3);
        m.points(ACCEPTED, 5);
        m.points("untrusted", 2);
        m.answered("GetMetrics", "value", Duration::from_micros(40));
        m.ingested(Duration::from_micros(300));
        m.peer_request(false);
        let text = encode(&registry);
        for needle in [
            "llm_autoscale_scaler_series 3",
            "llm_autoscale_scaler_points_total{result=\"accepted\"} 5",
            "llm_autoscale_scaler_points_total{result=\"untrusted\"} 2",
            "llm_autoscale_scaler_answers_total{rpc=\"GetMetrics\",outcome=\"value\"} 1",
            "llm_autoscale_scaler_query_duration_seconds_bucket{le=\"0.00005\",rpc=\"GetMetrics\"} 1",
            "llm_autoscale_scaler_exports_total 1",
            "llm_autoscale_scaler_peer_requests_total{result=\"error\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
