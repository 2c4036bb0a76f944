//! Reconciler metrics: sidecar state per opted-in Deployment, reconcile outcomes, leadership.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::plan::SidecarState;
pub use crate::metrics::ResultLabels;
use crate::metrics::register;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkloadLabels {
    pub namespace: String,
    pub deployment: String,
}

#[derive(Clone, Default)]
pub struct ReconcileMetrics {
    /// 1 for each Deployment whose sidecar is missing, stale or left over.
    pub sidecar_missing: Family<WorkloadLabels, Gauge>,
    pub reconciles: Family<ResultLabels, Counter>,
    /// 1 while this replica holds the reconciler lease.
    pub leader: Gauge,
}

impl ReconcileMetrics {
    pub fn register(registry: &mut Registry) -> ReconcileMetrics {
        let r = registry;
        ReconcileMetrics {
            sidecar_missing: register(
                r,
                "llm_autoscale_sidecar_missing",
                "Opted-in Deployments whose collector sidecar is missing, stale or left over (1 each)",
                Family::default(),
            ),
            reconciles: register(
                r,
                "llm_autoscale_reconcile",
                "Reconciliations by result",
                Family::default(),
            ),
            leader: register(
                r,
                "llm_autoscale_reconciler_leader",
                "1 while this replica holds the reconciler lease",
                Gauge::default(),
            ),
        }
    }

    pub fn record_sidecar(&self, namespace: &str, deployment: &str, state: SidecarState) {
        let labels = WorkloadLabels {
            namespace: namespace.into(),
            deployment: deployment.into(),
        };
        match state {
            SidecarState::Missing | SidecarState::Stale(_) | SidecarState::Leftover => {
                self.sidecar_missing.get_or_create(&labels).set(1);
            }
            SidecarState::UpToDate | SidecarState::NotExpected => {
                self.sidecar_missing.remove(&labels);
            }
        }
    }

    /// Whether a sidecar state is reported for this Deployment.
    pub fn is_reported(&self, namespace: &str, deployment: &str) -> bool {
        let labels = WorkloadLabels {
            namespace: namespace.into(),
            deployment: deployment.into(),
        };
        self.sidecar_missing.get(&labels).is_some()
    }

    pub fn record_result(&self, result: &'static str) {
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
    }
}
