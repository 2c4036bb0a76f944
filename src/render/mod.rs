//! Rendering: the collector sidecar and the KEDA ScaledObject and the HTTP add-on's
//! InterceptorRoute, as typed values.

pub mod collector_config;
pub mod interceptor_route;
pub mod scaled_object;
pub mod sidecar;
