//! Registering Prometheus metrics (`prometheus-client`), the one way the server
//! ([`crate::server::metrics`]), the reconciler ([`crate::reconcile::metrics`]) and the built-in
//! scaler (`crate::scaler::service::metrics`) do it: each metric is made, registered under its
//! name and help, and its handle kept; duration histograms have fixed bucket bounds.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};

/// Registers `metric` as `name` and gives back its handle.
pub fn register<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// Registers `metric` as `name` in seconds (the exposition appends `_seconds`) and gives back
/// its handle.
pub fn register_seconds<M: Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register_with_unit(name, help, Unit::Seconds, metric.clone());
    metric
}

/// Upper bounds of a histogram's buckets, in seconds; makes the histograms of a family.
#[derive(Clone, Copy, Debug)]
pub struct Buckets(pub &'static [f64]);

impl Buckets {
    pub fn histogram(self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }

    /// A family whose histograms have these buckets.
    pub fn family<L: Clone + std::hash::Hash + Eq>(self) -> HistogramFamily<L> {
        Family::new_with_constructor(self)
    }
}

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        self.histogram()
    }
}

/// Histograms by label set, all with the same [`Buckets`].
pub type HistogramFamily<L> = Family<L, Histogram, Buckets>;

/// The one label `result`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::metrics::encode;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn registered_handles_are_the_exposed_metrics() {
        let mut registry = Registry::default();
        let c: Family<ResultLabels, Counter> =
            register(&mut registry, "demo_things", "Things", Family::default());
        let h: HistogramFamily<ResultLabels> = register_seconds(
            &mut registry,
            "demo_wait",
            "Waits",
            Buckets(&[0.5, 1.0]).family(),
        );
        c.get_or_create(&ResultLabels { result: "ok" }).inc();
        h.get_or_create(&ResultLabels { result: "ok" }).observe(0.7);
        let text = encode(&registry);
        for needle in [
            "# HELP demo_things Things",
            "demo_things_total{result=\"ok\"} 1",
            "# UNIT demo_wait_seconds seconds",
            "demo_wait_seconds_bucket{le=\"0.5\",result=\"ok\"} 0",
            "demo_wait_seconds_bucket{le=\"1.0\",result=\"ok\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
