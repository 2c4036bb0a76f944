//! Rendering: the collector sidecar and the KEDA ScaledObject, as typed values.

pub mod collector_config;
pub mod scaled_object;
pub mod sidecar;
