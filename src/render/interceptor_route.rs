//! The KEDA HTTP add-on's `InterceptorRoute` (http.keda.sh/v1beta1) for HTTP wake.
//!
//! Targets kedacore/http-add-on v0.15.0. Since v0.14.0 the InterceptorRoute carries the routing
//! and the user's own ScaledObject carries the scaling; the older `HTTPScaledObject` (v1alpha1)
//! is deprecated: its controller logs "HTTPScaledObject is deprecated ... migrate to
//! InterceptorRoute + ScaledObject" (`operator/controllers/http/httpscaledobject_controller.go`).
//! The InterceptorRoute controller only sets a Ready condition and creates no ScaledObject
//! (`operator/controllers/http/interceptorroute_controller.go`), so nothing competes with ours.
//! Fields: `operator/apis/http/v1beta1/interceptorroute_types.go`; the CRD is
//! `tests/fixtures/crds/keda-http-interceptorroutes.yaml`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::annotations::{AutoscalingSpec, HttpWake};
use crate::keda::names::{MAX_NAME, bounded_name, managed_metadata};

pub const API_VERSION: &str = "http.keda.sh/v1beta1";
pub const KIND: &str = "InterceptorRoute";
/// `scalingMetric` is required by the CRD. Its concurrency metric joins the vLLM triggers in
/// KEDA's HPA (the highest replica count wins), so it is set high enough to leave 1→N to them:
/// 100 is what the add-on itself assumes for an HTTPScaledObject without a target
/// (`ptr.Deref(httpso.Spec.TargetPendingRequests, 100)` in `scaler/handlers.go`).
pub const CONCURRENCY_TARGET: i32 = 100;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterceptorRoute {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: InterceptorRouteSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterceptorRouteSpec {
    pub target: TargetRef,
    pub rules: Vec<RoutingRule>,
    pub scaling_metric: ScalingMetric,
}

/// The Service the interceptor forwards to (`port`, never `portName`: exactly one is allowed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    pub service: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutingRule {
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathMatch>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathMatch {
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingMetric {
    pub concurrency: ConcurrencyTarget,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConcurrencyTarget {
    pub target_value: i32,
}

/// The route's name: the ScaledObject's, so the two are found together.
pub fn name_for(deployment: &str) -> String {
    bounded_name(deployment, MAX_NAME)
}

/// Renders the InterceptorRoute, or `None` without HTTP wake. `extra_labels` as for the
/// ScaledObject.
pub fn render(
    spec: &AutoscalingSpec,
    extra_labels: &BTreeMap<String, String>,
) -> Option<InterceptorRoute> {
    let wake: &HttpWake = spec.http_wake.as_ref()?;
    Some(InterceptorRoute {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: managed_metadata(
            name_for(&spec.target_deployment),
            &spec.namespace,
            extra_labels,
        ),
        spec: InterceptorRouteSpec {
            target: TargetRef {
                service: wake.service.clone(),
                port: wake.port,
            },
            rules: vec![RoutingRule {
                hosts: wake.hosts.clone(),
                paths: wake
                    .path_prefixes
                    .iter()
                    .map(|p| PathMatch { value: p.clone() })
                    .collect(),
            }],
            scaling_metric: ScalingMetric {
                concurrency: ConcurrencyTarget {
                    target_value: CONCURRENCY_TARGET,
                },
            },
        },
    })
}
