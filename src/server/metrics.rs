//! The server's Prometheus metrics (`prometheus-client`, OpenMetrics text on `/metrics`).
//!
//! - `llm_autoscale_admission_requests_total{route,decision}`: decision is the review's
//!   (`patched`, `allowed`, `denied`, `warned`) or `bad_request` / `too_large`;
//! - `llm_autoscale_admission_duration_seconds{route}`: from the body being read to the answer
//!   being encoded (buckets from 50 µs: the work is pure CPU);
//! - `llm_autoscale_certificate_expiry_timestamp_seconds`: notAfter of the served certificate;
//! - `llm_autoscale_certificate_reloads_total{result}`: `success` or `failure`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::metrics::{Buckets, HistogramFamily, ResultLabels, register, register_seconds};

/// Content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the admission duration histogram, in seconds.
pub const DURATION_BUCKETS: Buckets = Buckets(&[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
]);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

/// Handles on the server's metrics (cheap to clone).
#[derive(Clone, Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily<RouteLabels>,
    certificate_expiry: Gauge,
    certificate_reloads: Family<ResultLabels, Counter>,
}

impl Metrics {
    /// Registers the server's metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let r = registry;
        let m = Metrics {
            requests: register(
                r,
                "llm_autoscale_admission_requests",
                "Admission requests by route and decision (patched, allowed, denied, warned, bad_request, internal_error, too_large)",
                Family::default(),
            ),
            duration: register_seconds(
                r,
                "llm_autoscale_admission_duration",
                "Time to decode, decide and encode an admission review",
                DURATION_BUCKETS.family(),
            ),
            certificate_expiry: register_seconds(
                r,
                "llm_autoscale_certificate_expiry_timestamp",
                "notAfter of the served TLS certificate (Unix time)",
                Gauge::default(),
            ),
            certificate_reloads: register(
                r,
                "llm_autoscale_certificate_reloads",
                "Certificate reloads after the files changed, by result (success, failure)",
                Family::default(),
            ),
        };
        for route in ["mutate", "validate"] {
            let _ = m.duration.get_or_create(&RouteLabels { route });
        }
        for result in ["success", "failure"] {
            let _ = m
                .certificate_reloads
                .get_or_create(&ResultLabels { result });
        }
        m
    }

    /// Counts one admission request and records how long it took.
    pub fn admission(&self, route: &'static str, decision: &'static str, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { route, decision })
            .inc();
        self.duration
            .get_or_create(&RouteLabels { route })
            .observe(elapsed.as_secs_f64());
    }

    /// How many reviews of `route` were answered with each of `decisions` so far (0 for a
    /// decision not met yet).
    pub fn admission_counts<const N: usize>(
        &self,
        route: &'static str,
        decisions: [&'static str; N],
    ) -> [u64; N] {
        decisions.map(|decision| {
            let labels = RequestLabels { route, decision };
            self.requests.get(&labels).map_or(0, |c| c.get())
        })
    }

    /// The served certificate's notAfter.
    pub fn certificate_served(&self, not_after_unix: i64) {
        self.certificate_expiry.set(not_after_unix);
    }

    pub fn certificate_reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.certificate_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }
}

/// The registry in OpenMetrics text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::with_capacity(4096);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        m.admission("mutate", "patched", Duration::from_micros(120));
        m.certificate_served(1_900_000_000);
        m.certificate_reload(false);
        let text = encode(&registry);
        for needle in [
            "llm_autoscale_admission_requests_total{route=\"mutate\",decision=\"patched\"} 1",
            "llm_autoscale_admission_duration_seconds_bucket{le=\"0.00025\",route=\"mutate\"} 1",
            "llm_autoscale_certificate_expiry_timestamp_seconds 1900000000",
            "llm_autoscale_certificate_reloads_total{result=\"failure\"} 1",
            "llm_autoscale_certificate_reloads_total{result=\"success\"} 0",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
