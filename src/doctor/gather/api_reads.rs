//! What doctor asks the API server for, as RBAC names it. The chart's doctor ClusterRole
//! (charts/llm-autoscale-webhook/templates/rbac.yaml) grants exactly this list:
//! `cargo test --test chart` compares the two, and the end-to-end test (tests/e2e/doctor.rs)
//! compares the list with the requests doctor made, read from the API server's audit log.

/// The verbs doctor uses on one resource of one API group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiRead {
    /// The API group (`""` for the core group).
    pub group: &'static str,
    /// The resource, or `resource/subresource`.
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    /// The only objects asked for, by name (RBAC `resourceNames`); empty: any.
    pub names: &'static [&'static str],
    /// Made only for workloads on the built-in scaler; the chart grants it only with
    /// `scaler.enabled` (refused, doctor says it could not look).
    pub builtin_only: bool,
}

const fn read(
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
) -> ApiRead {
    ApiRead {
        group,
        resource,
        verbs,
        names: &[],
        builtin_only: false,
    }
}

const fn builtin_read(
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    names: &'static [&'static str],
) -> ApiRead {
    ApiRead {
        group,
        resource,
        verbs,
        names,
        builtin_only: true,
    }
}

/// Every request of [`super::gather`], by the file that makes it. `get` is kube's `get_opt`;
/// `list` its `list`; the service proxy is a GET, which RBAC checks as `get` on
/// `services/proxy`.
pub const API_READS: &[ApiRead] = &[
    // webhooks.rs: the product's webhooks; the EndpointSlices of a Service they call.
    read(
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        &["list"],
    ),
    read(
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        &["list"],
    ),
    read("discovery.k8s.io", "endpointslices", &["list"]),
    // keda.rs: the CRD scaledobjects.keda.sh, KEDA's operator Deployments (by label, in every
    // namespace), the APIService v1beta1.external.metrics.k8s.io. workloads.rs: the CRD
    // inferenceservices.serving.kserve.io.
    read(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        &["get"],
    ),
    read("apiregistration.k8s.io", "apiservices", &["get"]),
    // workloads.rs: the workloads (listed, or the one named; an InferenceService's predictor
    // Deployment, a predictor's InferenceService), their namespace's labels, the ScaledObjects
    // and HPAs of that namespace. addon.rs: the add-on's Deployments (listed in its namespace).
    read("apps", "deployments", &["get", "list"]),
    read("serving.kserve.io", "inferenceservices", &["get", "list"]),
    read("", "namespaces", &["get"]),
    read("keda.sh", "scaledobjects", &["list"]),
    read("autoscaling", "horizontalpodautoscalers", &["list"]),
    // addon.rs and builtin.rs: the add-on's and the built-in scaler's Services; addon.rs,
    // prometheus.rs and builtin.rs: GET through the service proxy (the add-on's /memstore/data,
    // Prometheus' /api/v1/query, the built-in scaler's /readyz).
    read("", "services", &["get"]),
    read("", "services/proxy", &["get"]),
    // builtin.rs: whether the namespace's token Secret of the built-in scaler exists (its
    // metadata) and, with --builtin-scaler-tls, what its ca.crt holds (the Secret read whole:
    // RBAC's `get` either way); no other Secret, and the role names this one. keda.rs reads
    // KEDA's operator's --ca-dir and mounts from the Deployments it lists.
    builtin_read(
        "",
        "secrets",
        &["get"],
        &[crate::scaler::trust::SECRET_NAME],
    ),
];
