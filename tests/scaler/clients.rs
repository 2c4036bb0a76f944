//! Talking to a scaler as its two kinds of client do: a sidecar exporting OTLP, and KEDA
//! calling the external scaler with a trigger's metadata.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use llm_autoscale_webhook::scaler::service::proto::externalscaler::external_scaler_client::ExternalScalerClient;
use llm_autoscale_webhook::scaler::service::proto::externalscaler::{
    GetMetricsRequest, ScaledObjectRef,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A string attribute.
pub fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// The attributes the sidecar stamps on a pod's points.
pub fn stamped(namespace: &str, deployment: &str, pod: &str) -> Vec<KeyValue> {
    vec![
        kv("pod", pod),
        kv("deployment", deployment),
        kv("namespace", namespace),
        kv("model_name", "m"),
    ]
}

pub fn gauge(name: &str, attrs: Vec<KeyValue>, value: f64) -> Metric {
    Metric {
        name: name.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                attributes: attrs,
                time_unix_nano: now_ns(),
                value: Some(number_data_point::Value::AsDouble(value)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    }
}

/// A delta histogram of one scrape window (5 s).
pub fn histogram(name: &str, attrs: Vec<KeyValue>, bounds: &[f64], counts: &[u64]) -> Metric {
    let now = now_ns();
    Metric {
        name: name.into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                attributes: attrs,
                start_time_unix_nano: now - 5_000_000_000,
                time_unix_nano: now,
                count: counts.iter().sum(),
                sum: Some(0.0),
                bucket_counts: counts.to_vec(),
                explicit_bounds: bounds.to_vec(),
                ..Default::default()
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        })),
        ..Default::default()
    }
}

pub fn export_request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// TLS towards the scaler: the CA its certificate chains to, and the name it carries.
#[derive(Clone, Copy)]
pub struct Tls<'a> {
    pub ca_pem: &'a str,
    pub domain: &'a str,
}

/// A connection to `address` (host:port), plain or over TLS.
pub async fn channel(address: &str, tls: Option<Tls<'_>>) -> Result<Channel, tonic::Status> {
    let unavailable = |e: tonic::transport::Error| tonic::Status::unavailable(format!("{e:?}"));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint =
        Endpoint::from_shared(format!("{scheme}://{address}")).map_err(unavailable)?;
    if let Some(t) = tls {
        let config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(t.ca_pem))
            .domain_name(t.domain);
        endpoint = endpoint.tls_config(config).map_err(unavailable)?;
    }
    endpoint.connect().await.map_err(unavailable)
}

/// Exports `metrics` to `otlp` (host:port) with an optional bearer token; the rejected count
/// of a partial success, or the error status.
pub async fn export(
    otlp: &str,
    token: Option<&str>,
    metrics: Vec<Metric>,
) -> Result<i64, tonic::Status> {
    export_over(channel(otlp, None).await?, token, metrics).await
}

/// [`export`] over an established connection.
pub async fn export_over(
    channel: Channel,
    token: Option<&str>,
    metrics: Vec<Metric>,
) -> Result<i64, tonic::Status> {
    let mut client = MetricsServiceClient::new(channel);
    let mut request = tonic::Request::new(export_request(metrics));
    if let Some(t) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header value"),
        );
    }
    let response = client.export(request).await?.into_inner();
    Ok(response
        .partial_success
        .map(|p| p.rejected_data_points)
        .unwrap_or(0))
}

/// KEDA's side: a trigger's metadata sent to the scaler.
pub struct Keda {
    client: ExternalScalerClient<Channel>,
}

pub fn scaled_object(metadata: &[(&str, &str)]) -> ScaledObjectRef {
    ScaledObjectRef {
        name: "so".into(),
        namespace: "ns".into(),
        scaler_metadata: metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    }
}

impl Keda {
    pub async fn connect(url: &str) -> Keda {
        Keda {
            client: ExternalScalerClient::connect(url.to_string())
                .await
                .expect("connecting to the scaler"),
        }
    }

    /// `GetMetrics` as KEDA sends it (the metric name from `GetMetricSpec`).
    pub async fn value(&mut self, metadata: &[(&str, &str)]) -> Result<f64, tonic::Status> {
        let r = scaled_object(metadata);
        let spec = self.client.get_metric_spec(r.clone()).await?.into_inner();
        let name = spec.metric_specs[0].metric_name.clone();
        let v = self
            .client
            .get_metrics(GetMetricsRequest {
                scaled_object_ref: Some(r),
                metric_name: name.clone(),
            })
            .await?
            .into_inner();
        assert_eq!(v.metric_values[0].metric_name, name);
        Ok(v.metric_values[0].metric_value_float)
    }

    pub async fn active(&mut self, metadata: &[(&str, &str)]) -> Result<bool, tonic::Status> {
        Ok(self
            .client
            .is_active(scaled_object(metadata))
            .await?
            .into_inner()
            .result)
    }

    pub async fn spec(&mut self, metadata: &[(&str, &str)]) -> (String, f64) {
        let s = self
            .client
            .get_metric_spec(scaled_object(metadata))
            .await
            .expect("GetMetricSpec")
            .into_inner();
        (
            s.metric_specs[0].metric_name.clone(),
            s.metric_specs[0].target_size_float,
        )
    }

    /// KEDA over an established connection (e.g. TLS: [`channel`]).
    pub fn over(channel: Channel) -> Keda {
        Keda {
            client: ExternalScalerClient::new(channel),
        }
    }

    pub fn raw(&mut self) -> &mut ExternalScalerClient<Channel> {
        &mut self.client
    }
}
