//! The OTLP/gRPC metrics receiver the sidecars export to.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::state::Scaler;
use crate::scaler::trust;

/// Largest export accepted (the collector's default batch is far smaller).
pub const MAX_EXPORT_BYTES: usize = 16 * 1024 * 1024;

pub struct OtlpReceiver(pub Arc<Scaler>);

/// The receiver as a gRPC service (gzip accepted, as the collector's exporter sends by
/// default).
pub fn service(scaler: Arc<Scaler>) -> MetricsServiceServer<OtlpReceiver> {
    MetricsServiceServer::new(OtlpReceiver(scaler))
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_EXPORT_BYTES)
}

#[tonic::async_trait]
impl MetricsService for OtlpReceiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let authorization = request
            .metadata()
            .get(trust::HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let done = self.0.ingest(request.get_ref(), authorization.as_deref());
        if done.accepted == 0 && done.untrusted > 0 {
            // Nothing of it could be stored for want of the namespace's credential: an error
            // the collector logs (and does not retry: OTLP's Unauthenticated is permanent).
            return Err(Status::unauthenticated(format!(
                "llm-autoscale scaler: {} data points without their namespace's credential (the {} header must carry the token of the Secret {} in the namespace the points are stamped with)",
                done.untrusted,
                trust::HEADER,
                trust::SECRET_NAME
            )));
        }
        // Refused points are reported as a partial success: the exporter logs the message
        // and does not retry (OTLP specification, "Partial Success").
        let partial_success = (done.rejected > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: i64::try_from(done.rejected).unwrap_or(i64::MAX),
            error_message: format!(
                "llm-autoscale scaler: {} data points refused (see llm_autoscale_scaler_points_total by result)",
                done.rejected
            ),
        });
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success,
        }))
    }
}
