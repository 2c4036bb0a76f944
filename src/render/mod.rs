//! Rendering: the collector sidecar and the KEDA ScaledObject and the HTTP add-on's
//! InterceptorRoute, as typed values.

pub mod collector_config;
pub mod delta_export;
pub mod interceptor_route;
pub mod percentile_pipeline;
pub mod scaled_object;
pub mod scaler_tls;
pub mod sidecar;

/// A rendered object that does not serialise: a bug, not the user's input. It is reported as
/// an error with the reason, never rendered as a `null` container or an empty document.
#[derive(Debug, thiserror::Error)]
#[error("could not serialise the {what}: {reason}")]
pub struct RenderError {
    pub what: &'static str,
    pub reason: String,
}

impl RenderError {
    pub fn new(what: &'static str, reason: impl std::fmt::Display) -> RenderError {
        RenderError {
            what,
            reason: reason.to_string(),
        }
    }
}
