//! The gRPC protocols compiled from proto/ by build.rs.

#![allow(
    clippy::all,
    clippy::pedantic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

/// KEDA's external scaler protocol (proto/externalscaler.proto).
pub mod externalscaler {
    tonic::include_proto!("externalscaler");
}

/// Between scaler replicas (proto/scaler_peer.proto).
pub mod peer {
    tonic::include_proto!("llm_autoscale.scaler.peer.v1");
}
