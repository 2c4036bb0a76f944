//! llm-autoscale-webhook: annotations on a vLLM Deployment or KServe InferenceService become
//! an OpenTelemetry collector sidecar and a KEDA ScaledObject.
//!
//! The core (`annotations`, `query`, `presets`, `render`, `mutate`) is pure: functions of
//! (object, [`config::WebhookConfig`]). The shells (`admission`, `server`, `reconcile`, the CLI)
//! do the I/O around it.

// Request data never panics the webhook: no unchecked indexing, slicing or unwrapping in the
// library (tests may).
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::unwrap_used,
        clippy::expect_used
    )
)]

pub mod admission;
pub mod annotations;
pub mod certs;
pub mod config;
pub mod doctor;
pub mod json_path;
pub mod keda;
pub mod latency;
pub mod manifest;
pub mod metrics;
pub mod mutate;
pub mod presets;
pub mod problem;
pub mod query;
pub mod reconcile;
pub mod render;
pub mod scaler;
pub mod server;
#[cfg(test)]
mod test_fixtures;
pub mod version;
pub mod workload;
