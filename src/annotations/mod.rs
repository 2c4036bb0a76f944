//! Annotation API v1: the `llm-autoscale.io/*` annotations parsed into a validated
//! [`AutoscalingSpec`], collecting every problem (each naming its annotation, the value and
//! the fix) instead of stopping at the first.
//!
//! - `keys.rs`: the table of keys (syntax, backends, defaults, documentation);
//! - `values.rs`: the syntax of values (counts, decimals, durations, addresses);
//! - `reader.rs`: the workload-wide keys into an [`AutoscalingSpec`];
//! - `triggers.rs`: one trigger (single-metric keys or a `triggers` entry);
//! - `http_wake.rs`: HTTP wake; `spec.rs`: the validated types.

mod behavior;
mod http_wake;
pub mod keys;
mod prometheus;
mod reader;
mod spec;
mod triggers;
pub mod values;
mod wva;

pub use http_wake::{HTTP_WAKE_TRIGGER, HttpWake};
pub use prometheus::{AuthRef, PrometheusOptions, custom_headers};
pub use spec::{
    AutoscalingSpec, Backend, Fallback, Scrape, TriggerQuery, TriggerSource, TriggerSpec,
    histogram_base, scales_to_zero, target_deployment,
};
pub use triggers::default_promql;

use crate::config::WebhookConfig;
use crate::problem::Invalid;
use crate::workload::Workload;

/// Every annotation of this product starts with this.
pub const PREFIX: &str = "llm-autoscale.io/";
/// Written by the webhook on the pod template: what it injected and the hash of it.
pub const STATUS: &str = "llm-autoscale.io/status";
/// KServe's metrics port annotation, the fallback for `metrics-port`.
pub const KSERVE_PORT: &str = "prometheus.kserve.io/port";
/// KServe's metrics path annotation, the fallback for `metrics-path`.
pub const KSERVE_PATH: &str = "prometheus.kserve.io/path";
/// The OTel operator's injection annotation; with our sidecar it would double the series.
pub const OTEL_OPERATOR_INJECT: &str = "sidecar.opentelemetry.io/inject";

/// `Ok(None)` when the object is not opted in (`enabled` absent or `"false"`).
pub fn parse(
    w: &Workload,
    cfg: &WebhookConfig,
) -> Result<(Option<AutoscalingSpec>, Vec<String>), Invalid> {
    reader::read(w, cfg)
}

/// `llm-autoscale.io/<short>`.
fn key(short: &str) -> String {
    format!("{PREFIX}{short}")
}
