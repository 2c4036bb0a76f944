//! What the reconciler watches and keeps in memory, and where one reconcile reads its
//! Deployment from. Pure: selectors, the trimming applied before objects enter a store, and
//! the decision taken from a Deployment's metadata alone.
//!
//! The watches, so that memory grows with the opted-in workloads, not with the cluster, and an
//! idle cluster costs no request but the Lease's renewal:
//!
//! - Deployments labelled [`MANAGED_LABEL`] (the webhook sets it on every Deployment it admits
//!   opted in): in full, by label selector.
//! - Every Deployment, metadata only, trimmed while decoding ([`DeploymentMeta`]). This is what
//!   catches Deployments the webhook never saw: created before it was installed, or while it
//!   was unreachable (`failurePolicy: Ignore`).
//! - ScaledObjects labelled `app.kubernetes.io/managed-by: llm-autoscale-webhook`: the ones
//!   this product made, read from the store instead of a GET per reconcile.
//! - InterceptorRoutes with the same label (HTTP wake), when the KEDA HTTP add-on's CRD is
//!   installed: the same for them.
//! - InferenceServices, metadata only ([`super::metadata::InferenceServiceMeta`]: uid and
//!   autoscaler class), when KServe's CRD is installed: a predictor's reconcile reads its
//!   InferenceService from there instead of a GET.
//!
//! What is not found in a store (not delivered yet, or a resource whose CRD was not installed
//! when the watches started) is read with a GET, as before there were stores.
//!
//! What the metadata watch cannot see: the pod template. A Deployment whose opt-in sits only
//! on `spec.template.metadata.annotations` (where KServe copies an InferenceService's
//! annotations) and that the webhook never admitted carries nothing in its metadata that says
//! so; it is reconciled from the first admission on (KServe updates its predictor Deployments
//! whenever the InferenceService changes). An opt-in on `metadata.annotations` is seen, and so
//! is a Deployment that lost the label while a ScaledObject managed for it still exists (the
//! opt-out).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

#[cfg(doc)]
use super::metadata::DeploymentMeta;
use crate::keda::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::workload::{MANAGED_LABEL, MANAGED_LABEL_VALUE};

/// The annotation whose presence on a Deployment's metadata means "opted in" (its value is
/// judged by the full parse, once the Deployment is read).
const ENABLED: &str = "llm-autoscale.io/enabled";

/// Label selector of the Deployments watched in full.
pub fn labelled_deployments() -> String {
    format!("{MANAGED_LABEL}={MANAGED_LABEL_VALUE}")
}

/// Label selector of the ScaledObjects and InterceptorRoutes this product manages.
pub fn managed_by_us() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY}")
}

/// Where one reconcile gets the full Deployment it plans for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Labelled by the webhook: from the store of labelled Deployments.
    Store,
    /// Not labelled, but its metadata opts in (never admitted by the webhook), or a
    /// ScaledObject managed for it still exists (opted out): read it from the API.
    Read,
    /// Neither: nothing to do, and no request.
    Nothing,
}

/// Decides from the (trimmed) metadata and whether a ScaledObject managed for this
/// Deployment is in the store.
pub fn source_of(meta: &ObjectMeta, has_managed_scaled_object: bool) -> Source {
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_LABEL))
        .is_some_and(|v| v == MANAGED_LABEL_VALUE);
    let opted_in = meta
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ENABLED));
    if labelled {
        Source::Store
    } else if opted_in || has_managed_scaled_object {
        Source::Read
    } else {
        Source::Nothing
    }
}

/// Whether a change seen in a Deployment's metadata is passed on to the controller. Not when
/// nothing in its metadata involves this product ([`Source::Nothing`]) and no sidecar state is
/// reported for it (`reported`): that reconcile would do nothing. Left out, such Deployments
/// (most of a cluster) are never queued. Otherwise every Deployment is queued at start: the
/// controller runs nothing until the first list is complete (kube-runtime
/// `src/controller/mod.rs`, `delay_tasks_until` the store is ready) and meanwhile moves each
/// request into its scheduler's `pending` set (`src/scheduler.rs`,
/// `pop_queue_message_into_pending`), a `HashSet` that keeps the capacity it reached: 1.9 MiB
/// at 10,000 Deployments, measured with heaptrack.
///
/// A Deployment left out here is still reconciled when something else points at it: the
/// watch of labelled Deployments (one that loses the label leaves it), and a ScaledObject or
/// InterceptorRoute it owns.
pub fn passes_on(meta: &ObjectMeta, has_managed_scaled_object: bool, reported: bool) -> bool {
    reported || source_of(meta, has_managed_scaled_object) != Source::Nothing
}

/// What the stores of full objects (labelled Deployments, managed ScaledObjects and
/// InterceptorRoutes) drop: managedFields, which the reconciler never reads and which can be
/// as large as the object.
pub fn trim_managed_fields(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn meta(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
        let map = |kv: &[(&str, &str)]| {
            (!kv.is_empty()).then(|| {
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>()
            })
        };
        ObjectMeta {
            name: Some("m".into()),
            namespace: Some("llm".into()),
            uid: Some("u-1".into()),
            resource_version: Some("7".into()),
            labels: map(labels),
            annotations: map(annotations),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn only_deployments_with_something_to_reconcile_are_passed_on() {
        let plain = meta(
            &[("app", "x")],
            &[("kubectl.kubernetes.io/last-applied-configuration", "{}")],
        );
        assert!(!passes_on(&plain, false, false));
        // Its sidecar was reported (it was opted in): the reconcile clears the report.
        assert!(passes_on(&plain, false, true));
        // A ScaledObject is managed for it: the reconcile deletes it (the opt-out).
        assert!(passes_on(&plain, true, false));
        assert!(passes_on(
            &meta(&[(MANAGED_LABEL, "true")], &[]),
            false,
            false
        ));
        assert!(passes_on(&meta(&[], &[(ENABLED, "true")]), false, false));
    }

    #[test]
    fn labelled_deployments_come_from_the_store() {
        let m = meta(&[(MANAGED_LABEL, "true")], &[]);
        assert_eq!(source_of(&m, false), Source::Store);
        assert_eq!(source_of(&m, true), Source::Store);
    }

    #[test]
    fn unlabelled_ones_are_read_only_when_opted_in_or_still_owning_a_scaled_object() {
        let never_admitted = meta(&[], &[(ENABLED, "true")]);
        assert_eq!(source_of(&never_admitted, false), Source::Read);
        let opted_out = meta(&[("app", "x")], &[]);
        assert_eq!(source_of(&opted_out, true), Source::Read);
        assert_eq!(source_of(&opted_out, false), Source::Nothing);
        // Another value of the label is not the webhook's.
        let other = meta(&[(MANAGED_LABEL, "false")], &[]);
        assert_eq!(source_of(&other, false), Source::Nothing);
        // A disabled opt-in is still read: the full parse decides (and deletes what exists).
        let disabled = meta(&[], &[(ENABLED, "false")]);
        assert_eq!(source_of(&disabled, false), Source::Read);
    }
}
