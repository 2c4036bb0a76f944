//! A minimal OTLP/gRPC metrics receiver: stands in for the KEDA OTel add-on and records every
//! `ExportMetricsServiceRequest` the collector sends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, metric, number_data_point};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// One received data point, flattened.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub metric: String,
    /// Data-point attributes (Prometheus labels plus what the collector added).
    pub attributes: BTreeMap<String, String>,
    /// Gauge/sum value; for histograms and summaries the count.
    pub value: f64,
    /// Attributes of the enclosing resource.
    pub resource: BTreeMap<String, String>,
}

impl Point {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Recorder {
    requests: Mutex<Vec<ExportMetricsServiceRequest>>,
}

struct Service(Arc<Recorder>);

#[tonic::async_trait]
impl MetricsService for Service {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.0.requests.lock().unwrap().push(request.into_inner());
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// The running sink. Dropping it stops the server.
pub struct OtlpSink {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl OtlpSink {
    /// Listens on `127.0.0.1:<random port>`.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let recorder = Arc::new(Recorder::default());
        let service = MetricsServiceServer::new(Service(recorder.clone()))
            // The collector's OTLP exporter compresses with gzip unless told otherwise.
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(64 * 1024 * 1024);
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let result = Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = result {
                eprintln!("otlp sink: server error: {e}");
            }
        });
        Ok(OtlpSink {
            addr,
            recorder,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `host:port` for an OTLP gRPC exporter's `endpoint`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Number of export requests received so far.
    pub fn request_count(&self) -> usize {
        self.recorder.requests.lock().unwrap().len()
    }

    /// Every data point received so far, in arrival order.
    pub fn points(&self) -> Vec<Point> {
        let requests = self.recorder.requests.lock().unwrap();
        let mut out = Vec::new();
        for request in requests.iter() {
            flatten(request, &mut out);
        }
        out
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn flatten(request: &ExportMetricsServiceRequest, out: &mut Vec<Point>) {
    for rm in &request.resource_metrics {
        let resource = rm
            .resource
            .as_ref()
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let mut push = |attrs: &[KeyValue], value: f64| {
                    out.push(Point {
                        metric: m.name.clone(),
                        attributes: attributes(attrs),
                        value,
                        resource: resource.clone(),
                    })
                };
                match &m.data {
                    Some(metric::Data::Gauge(g)) => {
                        for dp in &g.data_points {
                            push(&dp.attributes, number(dp));
                        }
                    }
                    Some(metric::Data::Sum(s)) => {
                        for dp in &s.data_points {
                            push(&dp.attributes, number(dp));
                        }
                    }
                    Some(metric::Data::Histogram(h)) => {
                        for dp in &h.data_points {
                            push(&dp.attributes, dp.count as f64);
                        }
                    }
                    Some(metric::Data::ExponentialHistogram(h)) => {
                        for dp in &h.data_points {
                            push(&dp.attributes, dp.count as f64);
                        }
                    }
                    Some(metric::Data::Summary(s)) => {
                        for dp in &s.data_points {
                            push(&dp.attributes, dp.count as f64);
                        }
                    }
                    None => {}
                }
            }
        }
    }
}

fn number(dp: &NumberDataPoint) -> f64 {
    match dp.value {
        Some(number_data_point::Value::AsDouble(v)) => v,
        Some(number_data_point::Value::AsInt(v)) => v as f64,
        None => f64::NAN,
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), any_value_string(kv.value.as_ref())))
        .collect()
}

fn any_value_string(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
