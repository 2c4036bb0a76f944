//! The webhook's own configuration: the model here ([`WebhookConfig`], the defaults that
//! annotations may override, and what the core is told), its loading in [`loading`].
//!
//! Loaded by the CLI from (lowest to highest precedence) built-in defaults, an optional YAML
//! file, `LLM_AUTOSCALE_*` environment variables and flags. The core only ever sees the merged
//! [`WebhookConfig`].

pub mod flag_files;
pub mod loading;

use serde::{Deserialize, Serialize};

use crate::annotations::Backend;
use crate::keda;
use crate::version::Version;

/// Collector image used for the sidecar unless configured otherwise. The release tag is pinned:
/// the rendered config is tested against this collector version.
pub const DEFAULT_COLLECTOR_IMAGE: &str = "otel/opentelemetry-collector-contrib:0.161.0";
/// Where the sidecar sends OTLP (gRPC): the KEDA OTel add-on's receiver.
pub const DEFAULT_OTLP_ENDPOINT: &str = "keda-otel-scaler.keda.svc:4317";
/// Where KEDA asks for metric values: the KEDA OTel add-on's external scaler (gRPC).
pub const DEFAULT_SCALER_ADDRESS: &str = "keda-otel-scaler.keda.svc:4318";
/// Where KEDA asks whether an HTTP-woken workload has traffic: the KEDA HTTP add-on's external
/// scaler (gRPC). Service `keda-add-ons-http-external-scaler`, port 9090, namespace `keda`, as in
/// kedacore/http-add-on v0.15.0 `config/scaler/service.yaml` and `test/helpers/env.go`.
pub const DEFAULT_HTTP_SCALER_ADDRESS: &str = "keda-add-ons-http-external-scaler.keda:9090";
/// Where the sidecar sends OTLP (gRPC) on the `builtin` backend: the built-in scaler's
/// Service (deploy/scaler/), one name whatever its replicas.
pub const DEFAULT_BUILTIN_OTLP_ENDPOINT: &str =
    "llm-autoscale-scaler.llm-autoscale-system.svc:4317";
/// Where KEDA asks the built-in scaler (gRPC).
pub const DEFAULT_BUILTIN_SCALER_ADDRESS: &str =
    "llm-autoscale-scaler.llm-autoscale-system.svc:4318";
/// Prometheus used by the `prometheus` backend.
pub const DEFAULT_PROMETHEUS_ADDRESS: &str = "http://prometheus-operated.monitoring.svc:9090";

/// How the collector sidecar is attached to the pod.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SidecarMode {
    /// Native sidecar where the cluster supports it (see [`WebhookConfig::native_sidecars`]),
    /// classic container otherwise.
    #[default]
    Auto,
    /// An init container with `restartPolicy: Always` (Kubernetes ≥ 1.29).
    Native,
    /// A classic container next to the model server.
    Container,
    /// No sidecar: metrics reach the scaler some other way.
    None,
}

impl SidecarMode {
    pub const ALL: [(&'static str, SidecarMode); 4] = [
        ("auto", SidecarMode::Auto),
        ("native", SidecarMode::Native),
        ("container", SidecarMode::Container),
        ("none", SidecarMode::None),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SidecarMode::Auto => "auto",
            SidecarMode::Native => "native",
            SidecarMode::Container => "container",
            SidecarMode::None => "none",
        }
    }
}

/// What the mutating webhook does with invalid annotations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnInvalid {
    /// Refuse the object, listing every problem.
    #[default]
    Deny,
    /// Admit the object untouched and return every problem as a warning.
    Warn,
}

/// Defaults applied when an annotation is absent, and cluster facts the core cannot see.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct WebhookConfig {
    /// Image of the collector sidecar.
    pub collector_image: String,
    /// OTLP gRPC endpoint the sidecar exports to.
    pub otlp_endpoint: String,
    /// `scalerAddress` of `otel` triggers.
    pub scaler_address: String,
    /// The backend of workloads without the `backend` annotation.
    pub default_backend: Backend,
    /// OTLP gRPC endpoint the sidecar exports to on the `builtin` backend.
    pub builtin_otlp_endpoint: String,
    /// `scalerAddress` of `builtin` triggers.
    pub builtin_scaler_address: String,
    /// Whether `builtin` sidecars present their namespace's token (the Secret the reconciler
    /// provisions); the scaler then refuses points without it (`src/scaler/trust.rs`).
    pub builtin_scaler_auth: bool,
    /// Whether `builtin` sidecars and triggers reach the scaler over TLS: the sidecar's
    /// exporter verifies the scaler's certificate against `ca.crt` of the namespace's Secret
    /// (the reconciler writes it from `--scaler-tls-ca`), the triggers set KEDA's
    /// `enableTLS` (`src/render/scaler_tls.rs`). Left out of the serialised configuration
    /// while off, so the sidecars' recorded inputs (`llm-autoscale.io/status`) and so the pod
    /// templates stay as they were without it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub builtin_scaler_tls: bool,
    /// `scalerAddress` of `external` triggers when the annotation is absent (empty: required).
    pub external_scaler_address: String,
    /// `serverAddress` of `prometheus` triggers.
    pub prometheus_address: String,
    /// `scalerAddress` of the `external-push` trigger of HTTP wake (the KEDA HTTP add-on).
    pub http_scaler_address: String,
    /// Sidecar mode when the `sidecar` annotation is absent or `auto`.
    pub sidecar_mode: SidecarMode,
    /// Whether the cluster runs native sidecars (Kubernetes ≥ 1.29); decides `auto`.
    pub native_sidecars: bool,
    /// Deny or warn on invalid annotations.
    pub on_invalid: OnInvalid,
    /// Memory limit of the sidecar, in MiB (requests stay at 64Mi; `GOMEMLIMIT` is 80 %).
    pub collector_memory_limit_mib: u32,
    /// The KEDA release installed in the cluster: decides version-dependent rules (fallback on
    /// `Value` triggers needs 2.18).
    pub keda_version: Version,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            collector_image: DEFAULT_COLLECTOR_IMAGE.to_string(),
            otlp_endpoint: DEFAULT_OTLP_ENDPOINT.to_string(),
            scaler_address: DEFAULT_SCALER_ADDRESS.to_string(),
            default_backend: Backend::Otel,
            builtin_otlp_endpoint: DEFAULT_BUILTIN_OTLP_ENDPOINT.to_string(),
            builtin_scaler_address: DEFAULT_BUILTIN_SCALER_ADDRESS.to_string(),
            builtin_scaler_auth: true,
            builtin_scaler_tls: false,
            external_scaler_address: String::new(),
            prometheus_address: DEFAULT_PROMETHEUS_ADDRESS.to_string(),
            http_scaler_address: DEFAULT_HTTP_SCALER_ADDRESS.to_string(),
            sidecar_mode: SidecarMode::Auto,
            native_sidecars: true,
            on_invalid: OnInvalid::Deny,
            collector_memory_limit_mib: 128,
            keda_version: keda::TESTED_VERSION,
        }
    }
}
