//! What `doctor` read from the cluster, as plain data: every finding is a pure function of
//! this (filled by [`super::gather`], built by hand in the tests).

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use super::address::ServiceRef;
use crate::reconcile::plan::KserveOwner;
use crate::workload::WorkloadKind;

/// Everything read, cluster-wide and per workload.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The product's webhooks found in the cluster's webhook configurations.
    pub webhooks: Vec<WebhookSeen>,
    pub keda: KedaSeen,
    /// The KEDA OTel add-on, looked at when a workload's trigger goes to it.
    pub addon: Option<AddonSeen>,
    /// The built-in scaler, looked at when a workload's trigger goes to it.
    pub builtin: Option<BuiltinSeen>,
    pub workloads: Vec<WorkloadSeen>,
}

/// The outcome of asking something over the network.
#[derive(Clone, Debug, PartialEq)]
pub enum Probe<T> {
    /// It answered.
    Answered(T),
    /// It was asked and did not answer (or answered an error): why.
    Failed(String),
    /// It was not asked: why.
    NotTried(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    Mutating,
    Validating,
}

impl HookKind {
    pub fn configuration_kind(self) -> &'static str {
        match self {
            HookKind::Mutating => "MutatingWebhookConfiguration",
            HookKind::Validating => "ValidatingWebhookConfiguration",
        }
    }
}

/// Where the API server sends the webhook's requests (`clientConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookTarget {
    Url(String),
    Service { service: ServiceRef, path: String },
}

/// One of the product's webhooks as registered.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSeen {
    /// Name of the webhook configuration holding it.
    pub configuration: String,
    pub kind: HookKind,
    /// The webhook's name, e.g. `deployments.llm-autoscale.io`.
    pub name: String,
    pub target: WebhookTarget,
    /// `clientConfig.caBundle`, decoded (PEM); empty when unset.
    pub ca_bundle: Vec<u8>,
    /// `failurePolicy` (`Fail` when unset, the API's default).
    pub failure_policy: String,
    pub namespace_selector: Option<LabelSelector>,
    pub object_selector: Option<LabelSelector>,
    /// Ready endpoints of a Service target (`None` for a URL target).
    pub ready_endpoints: Option<usize>,
    /// A TLS handshake with the endpoint, trusting only the caBundle.
    pub tls: Probe<ServedCertificate>,
}

/// The certificate the webhook served, verified against the caBundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedCertificate {
    /// Seconds until it expires (negative: expired).
    pub expires_in_seconds: i64,
}

/// KEDA as installed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KedaSeen {
    /// The `scaledobjects.keda.sh` CRD exists.
    pub crd: bool,
    /// Deployments labelled as KEDA's operator (`app.kubernetes.io/name=keda-operator`).
    pub operators: Vec<DeploymentReadiness>,
    /// The APIService `v1beta1.external.metrics.k8s.io` (KEDA's metrics adapter).
    pub metrics_api: ApiServiceSeen,
    /// The CA directories of the same operator Deployments (`--ca-dir`).
    pub operator_ca: Vec<OperatorCaDirs>,
}

/// Where one KEDA operator Deployment reads the CA files it trusts for scalers' TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorCaDirs {
    pub namespace: String,
    pub name: String,
    pub dirs: CaDirs,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaDirs {
    /// Each directory (its `--ca-dir` flags, else KEDA's default) and what is mounted there.
    Known(Vec<CaDir>),
    /// The Deployment does not tell: why.
    Unknown(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaDir {
    pub path: String,
    pub mount: DirMount,
}

/// What the operator's container has mounted at a CA directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirMount {
    /// A volume at the directory or inside it: its source (`Secret NAME`, `ConfigMap NAME`, ...).
    Volume(String),
    /// Only a volume at a directory above it.
    Above { path: String, source: String },
    /// Nothing: the image's own directory, if any.
    Nothing,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentReadiness {
    pub namespace: String,
    pub name: String,
    pub ready: i32,
    pub wanted: i32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ApiServiceSeen {
    #[default]
    Missing,
    Available,
    /// Its `Available` condition is not True: reason and message.
    Unavailable(String),
}

/// The KEDA OTel add-on.
#[derive(Clone, Debug, PartialEq)]
pub struct AddonSeen {
    /// Its Service, from the configured scaler address.
    pub service: Option<ServiceRef>,
    /// How its REST API was reached (the `--addon-url`, or the API server's service proxy).
    pub via: String,
    /// Its Deployment's `METRIC_STORE_ERROR_IF_NOT_FOUND`.
    pub error_if_not_found: EnvSetting,
    /// Its metric store (`GET /memstore/data`).
    pub store: Probe<AddonStore>,
}

/// One environment variable of a container, as far as the Deployment tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvSetting {
    /// Set to this value.
    Value(String),
    /// Not set (the program's default applies).
    Unset,
    /// Not set by value, but the container takes variables from elsewhere (`envFrom`,
    /// `valueFrom`): unknown here.
    Elsewhere,
    /// The Deployment was not found.
    NoDeployment,
}

/// The add-on's store: each metric name and the label sets of its series.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddonStore {
    pub series: BTreeMap<String, Vec<BTreeMap<String, String>>>,
}

/// One workload as stored, with what surrounds it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadSeen {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// The object as stored (Deployment or InferenceService).
    pub object: Value,
    /// Labels of its namespace (with `kubernetes.io/metadata.name`).
    pub namespace_labels: BTreeMap<String, String>,
    /// The Deployment that scales: the object itself, or the InferenceService's predictor.
    pub deployment: Option<Value>,
    /// What KServe says about that Deployment.
    pub kserve: KserveOwner,
    /// Every ScaledObject in the namespace, as stored (with status).
    pub scaled_objects: Vec<Value>,
    /// Every HPA in the namespace.
    pub hpas: Vec<HorizontalPodAutoscaler>,
    /// The prometheus triggers' queries, by trigger name.
    pub prometheus: BTreeMap<String, Probe<PrometheusAnswer>>,
    /// The built-in scaler's answers to the builtin triggers, by trigger name.
    pub builtin: BTreeMap<String, Probe<BuiltinReading>>,
    /// The namespace's token Secret for the built-in scaler; `None` when not looked at (no
    /// builtin trigger, or the sidecars present no token).
    pub token_secret: Option<TokenSecret>,
    /// Key `ca.crt` of that Secret; `None` when not looked at (no builtin trigger, or no
    /// `--builtin-scaler-tls`).
    pub scaler_ca: Option<SecretCa>,
}

/// The built-in scaler (`llm-autoscale-webhook scaler`).
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltinSeen {
    /// Its Service, from the webhook's `--builtin-scaler-address`.
    pub service: Option<ServiceRef>,
    /// How it was reached: `--builtin-scaler-url`, its address in the cluster, or the API
    /// server's service proxy.
    pub via: String,
    /// Whether it answers: a gRPC connection to its scaler port, or `GET /readyz` on its
    /// metrics port through the service proxy.
    pub health: Probe<()>,
}

/// What the built-in scaler answered to KEDA's `GetMetrics` for one trigger.
#[derive(Clone, Debug, PartialEq)]
pub enum BuiltinReading {
    /// A value: it holds fresh series for the trigger.
    Value(f64),
    /// An error, as KEDA would get it: the gRPC code and the scaler's reason.
    Refused { code: String, reason: String },
}

/// The namespace's `llm-autoscale-scaler-token` Secret (src/scaler/trust.rs), by its metadata
/// (the whole Secret with `--builtin-scaler-tls`, for its `ca.crt`): doctor never looks at the
/// token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSecret {
    Present,
    Missing,
    /// The API server refused the read (doctor's role holds it only where the chart installs
    /// the scaler).
    Forbidden,
}

/// Key `ca.crt` of the namespace's `llm-autoscale-scaler-token` Secret, which the sidecars
/// verify the built-in scaler with under `--builtin-scaler-tls`. Reading it reads the whole
/// Secret; only this key is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretCa {
    /// It holds this many PEM certificates.
    Certificates(usize),
    /// The Secret has no such key.
    NoKey,
    /// It holds no PEM certificate.
    NotPem,
    /// The Secret does not exist.
    NoSecret,
    /// The API server refused the read.
    Forbidden,
}

/// What Prometheus answered to a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrometheusAnswer {
    /// How many series the result holds.
    pub series: usize,
    /// Where it was asked.
    pub via: String,
}
