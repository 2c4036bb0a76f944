//! The OpenTelemetry collector configuration the sidecar runs with.
//!
//! Pipeline: prometheus receiver (scrapes the model server on 127.0.0.1) → memory_limiter →
//! filter (only the metrics the triggers use) → transform (sets the `pod`, `deployment` and
//! `namespace` data-point attributes the KEDA OTel add-on keys series by) → OTLP gRPC
//! exporter to the add-on's receiver.

use std::collections::BTreeMap;

use serde::Serialize;

use super::delta_export;
use super::percentile_pipeline::{self, PercentileProcessors};
use super::scaler_tls::{self, ExporterTls};
use crate::latency::WindowedPercentile;

/// Environment variables the sidecar gets from the downward API.
pub const ENV_POD_NAME: &str = "POD_NAME";
pub const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";
pub const ENV_POD_IP: &str = "POD_IP";

/// What the collector config depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorInputs {
    pub scrape_port: u16,
    pub scrape_path: String,
    pub scrape_interval_seconds: i32,
    /// Metric names forwarded; everything else is dropped.
    pub metrics: Vec<String>,
    /// Windowed percentiles computed in the latency pipeline (`percentile_pipeline.rs`).
    pub percentiles: Vec<WindowedPercentile>,
    /// The collector image's version, when its tag says (component names change by version).
    pub collector_version: Option<(u32, u32)>,
    /// Value of the `deployment` attribute.
    pub deployment: String,
    pub otlp_endpoint: String,
    /// Component type of the OTLP gRPC exporter for this collector version.
    pub exporter_type: &'static str,
    /// `limit_mib` of the memory limiter.
    pub memory_limit_mib: u32,
    /// Port of the collector's own Prometheus metrics.
    pub telemetry_port: u16,
    /// Port of the health_check extension (liveness probe).
    pub health_port: u16,
    /// Counters and histograms as deltas, and the token's header (`builtin` backend:
    /// `delta_export.rs`).
    pub builtin: Option<BuiltinExport>,
}

/// What the sidecar of the `builtin` backend adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltinExport {
    /// The environment variable holding the namespace's token, if the scaler checks them.
    pub token_env: Option<&'static str>,
    /// The environment variable holding the scaler's CA, if the exporter uses TLS
    /// (`scaler_tls.rs`).
    pub ca_env: Option<&'static str>,
}

#[derive(Serialize)]
pub struct CollectorConfig {
    pub extensions: BTreeMap<&'static str, HealthCheck>,
    pub receivers: Receivers,
    pub processors: Processors,
    pub exporters: BTreeMap<String, OtlpExporter>,
    pub service: Service,
}

#[derive(Serialize)]
pub struct HealthCheck {
    pub endpoint: String,
}

#[derive(Serialize)]
pub struct Receivers {
    pub prometheus: PrometheusReceiver,
}

#[derive(Serialize)]
pub struct PrometheusReceiver {
    pub config: PrometheusConfig,
}

#[derive(Serialize)]
pub struct PrometheusConfig {
    pub scrape_configs: Vec<ScrapeConfig>,
}

#[derive(Serialize)]
pub struct ScrapeConfig {
    pub job_name: &'static str,
    pub scrape_interval: String,
    pub scrape_timeout: String,
    pub metrics_path: String,
    pub static_configs: Vec<StaticConfig>,
}

#[derive(Serialize)]
pub struct StaticConfig {
    pub targets: Vec<String>,
}

#[derive(Serialize)]
pub struct Processors {
    pub memory_limiter: MemoryLimiter,
    /// `None` when every trigger reads a percentile (nothing is forwarded as scraped).
    #[serde(
        rename = "filter/llm-autoscale",
        skip_serializing_if = "Option::is_none"
    )]
    pub filter: Option<Filter>,
    #[serde(rename = "transform/llm-autoscale")]
    pub transform: Transform,
    /// The latency pipeline's processors, when a trigger reads a percentile.
    #[serde(flatten)]
    pub percentiles: Option<PercentileProcessors>,
    /// `builtin`: counters and histograms to deltas (`delta_export.rs`).
    #[serde(flatten)]
    pub deltas: Option<BTreeMap<&'static str, delta_export::ToDelta>>,
}

#[derive(Serialize)]
pub struct MemoryLimiter {
    pub check_interval: &'static str,
    pub limit_mib: u32,
    pub spike_limit_mib: u32,
}

/// A `filter` processor: OTTL conditions on whole metrics and on data points; what matches
/// is dropped (collector-contrib processor/filterprocessor `config.go`).
#[derive(Serialize)]
pub struct Filter {
    pub error_mode: &'static str,
    pub metrics: FilterConditions,
}

#[derive(Serialize)]
pub struct FilterConditions {
    /// OTTL conditions on metrics; a metric matching any of them is dropped.
    pub metric: Vec<String>,
    /// OTTL conditions on data points (left out when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub datapoint: Vec<String>,
}

#[derive(Serialize)]
pub struct Transform {
    pub error_mode: &'static str,
    pub metric_statements: Vec<StatementGroup>,
}

#[derive(Serialize)]
pub struct StatementGroup {
    pub context: &'static str,
    pub statements: Vec<String>,
}

#[derive(Serialize)]
pub struct OtlpExporter {
    pub endpoint: String,
    pub compression: &'static str,
    pub tls: ExporterTls,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
pub struct Service {
    pub extensions: Vec<&'static str>,
    pub telemetry: Telemetry,
    pub pipelines: BTreeMap<&'static str, Pipeline>,
}

#[derive(Serialize)]
pub struct Telemetry {
    pub logs: TelemetryLogs,
    pub metrics: TelemetryMetrics,
}

#[derive(Serialize)]
pub struct TelemetryLogs {
    pub level: &'static str,
    pub encoding: &'static str,
}

#[derive(Serialize)]
pub struct TelemetryMetrics {
    pub level: &'static str,
    pub readers: Vec<MetricReader>,
}

#[derive(Serialize)]
pub struct MetricReader {
    pub pull: PullReader,
}

#[derive(Serialize)]
pub struct PullReader {
    pub exporter: PullExporter,
}

#[derive(Serialize)]
pub struct PullExporter {
    pub prometheus: PrometheusPull,
}

#[derive(Serialize)]
pub struct PrometheusPull {
    pub host: String,
    pub port: u16,
}

#[derive(Serialize)]
pub struct Pipeline {
    pub receivers: Vec<&'static str>,
    pub processors: Vec<&'static str>,
    pub exporters: Vec<String>,
}

/// The OTLP gRPC exporter's component type for a collector version. Collector v0.144.0
/// renamed `otlp` to `otlp_grpc` (and accepts the old name as a deprecated alias).
pub fn exporter_type_for(version: Option<(u32, u32)>) -> &'static str {
    match version {
        Some((0, minor)) if minor < 144 => "otlp",
        _ => "otlp_grpc",
    }
}

/// `otel/opentelemetry-collector-contrib:0.161.0` → `(0, 161)`.
pub fn collector_version(image: &str) -> Option<(u32, u32)> {
    let tag = image.rsplit_once(':')?.1;
    let tag = tag.split('@').next()?.strip_prefix('v').unwrap_or(tag);
    let mut parts = tag.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn ottl_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn render(i: &CollectorInputs) -> CollectorConfig {
    let exporter_name = format!("{}/keda", i.exporter_type);
    let interval = format!("{}s", i.scrape_interval_seconds);
    let mut exporters = BTreeMap::new();
    exporters.insert(
        exporter_name.clone(),
        OtlpExporter {
            endpoint: i.otlp_endpoint.clone(),
            compression: "none",
            tls: scaler_tls::exporter_tls(i.builtin.as_ref().and_then(|b| b.ca_env)),
            headers: i
                .builtin
                .as_ref()
                .and_then(|b| b.token_env)
                .map(delta_export::headers)
                .unwrap_or_default(),
        },
    );
    let mut extensions = BTreeMap::new();
    extensions.insert(
        "health_check",
        HealthCheck {
            endpoint: format!("${{env:{ENV_POD_IP}}}:{}", i.health_port),
        },
    );
    CollectorConfig {
        extensions,
        receivers: Receivers {
            prometheus: PrometheusReceiver {
                config: PrometheusConfig {
                    scrape_configs: vec![ScrapeConfig {
                        job_name: "llm-autoscale",
                        scrape_interval: interval.clone(),
                        scrape_timeout: interval,
                        metrics_path: i.scrape_path.clone(),
                        static_configs: vec![StaticConfig {
                            targets: vec![format!("127.0.0.1:{}", i.scrape_port)],
                        }],
                    }],
                },
            },
        },
        processors: processors(i),
        exporters,
        service: service(i, exporter_name),
    }
}

/// Memory limiter, then only the chosen metrics, then pod/deployment/namespace on every point.
fn processors(i: &CollectorInputs) -> Processors {
    let drop_unless_chosen = i
        .metrics
        .iter()
        .map(|m| format!("name != {}", ottl_string(m)))
        .collect::<Vec<_>>()
        .join(" and ");
    let set = |attr: &str, value: String| format!("set(attributes[\"{attr}\"], {value})");
    Processors {
        memory_limiter: MemoryLimiter {
            check_interval: "1s",
            limit_mib: i.memory_limit_mib,
            spike_limit_mib: (i.memory_limit_mib / 4).max(1),
        },
        filter: main_pipeline(i).then(|| Filter {
            error_mode: "ignore",
            metrics: FilterConditions {
                metric: vec![drop_unless_chosen],
                datapoint: Vec::new(),
            },
        }),
        transform: Transform {
            error_mode: "ignore",
            metric_statements: vec![StatementGroup {
                context: "datapoint",
                statements: vec![
                    set("pod", format!("\"${{env:{ENV_POD_NAME}}}\"")),
                    set("deployment", ottl_string(&i.deployment)),
                    set("namespace", format!("\"${{env:{ENV_POD_NAMESPACE}}}\"")),
                ],
            }],
        },
        percentiles: percentile_pipeline::processors(&i.percentiles, i.collector_version),
        deltas: i
            .builtin
            .as_ref()
            .map(|_| delta_export::processors(i.collector_version)),
    }
}

/// Whether the main pipeline (metrics forwarded as scraped) is rendered: not when every
/// trigger reads a percentile, which the latency pipeline computes.
fn main_pipeline(i: &CollectorInputs) -> bool {
    !i.metrics.is_empty() || i.percentiles.is_empty()
}

/// The pipeline, and the collector's own logs and metrics (on the telemetry port).
fn service(i: &CollectorInputs, exporter_name: String) -> Service {
    let mut pipelines = BTreeMap::new();
    if !i.percentiles.is_empty() {
        pipelines.insert(
            percentile_pipeline::PIPELINE,
            percentile_pipeline::pipeline(
                "memory_limiter",
                "transform/llm-autoscale",
                exporter_name.clone(),
                i.collector_version,
            ),
        );
    }
    if main_pipeline(i) {
        let mut processors = vec!["memory_limiter", "filter/llm-autoscale"];
        if i.builtin.is_some() {
            processors.push(delta_export::processor_id(i.collector_version));
        }
        processors.push("transform/llm-autoscale");
        pipelines.insert(
            "metrics",
            Pipeline {
                receivers: vec!["prometheus"],
                processors,
                exporters: vec![exporter_name],
            },
        );
    }
    Service {
        extensions: vec!["health_check"],
        telemetry: Telemetry {
            logs: TelemetryLogs {
                level: "warn",
                encoding: "json",
            },
            metrics: TelemetryMetrics {
                level: "basic",
                readers: vec![MetricReader {
                    pull: PullReader {
                        exporter: PullExporter {
                            prometheus: PrometheusPull {
                                host: format!("${{env:{ENV_POD_IP}}}"),
                                port: i.telemetry_port,
                            },
                        },
                    },
                }],
            },
        },
        pipelines,
    }
}

/// The configuration as the YAML document the sidecar reads from its environment.
pub fn to_yaml(config: &CollectorConfig) -> Result<String, super::RenderError> {
    serde_yaml_ng::to_string(config).map_err(|e| super::RenderError::new("collector config", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> CollectorInputs {
        CollectorInputs {
            scrape_port: 8000,
            scrape_path: "/metrics".into(),
            scrape_interval_seconds: 5,
            metrics: vec![
                "vllm:num_requests_waiting".into(),
                "vllm:kv_cache_usage_perc".into(),
            ],
            percentiles: Vec::new(),
            collector_version: Some((0, 161)),
            deployment: "qwen".into(),
            otlp_endpoint: "keda-otel-scaler.keda.svc:4317".into(),
            exporter_type: "otlp_grpc",
            memory_limit_mib: 100,
            telemetry_port: 8888,
            health_port: 13133,
            builtin: None,
        }
    }

    #[test]
    fn versions_choose_the_exporter() {
        assert_eq!(
            collector_version("otel/opentelemetry-collector-contrib:0.161.0"),
            Some((0, 161))
        );
        assert_eq!(collector_version("x/y:v0.120.1"), Some((0, 120)));
        assert_eq!(collector_version("x/y:latest"), None);
        assert_eq!(exporter_type_for(Some((0, 120))), "otlp");
        assert_eq!(exporter_type_for(Some((0, 143))), "otlp");
        assert_eq!(exporter_type_for(Some((0, 144))), "otlp_grpc");
        assert_eq!(exporter_type_for(Some((0, 161))), "otlp_grpc");
        assert_eq!(exporter_type_for(None), "otlp_grpc");
    }

    #[test]
    fn config_has_the_whole_pipeline() {
        let yaml = to_yaml(&render(&inputs())).unwrap();
        let v: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(
            v.pointer("/receivers/prometheus/config/scrape_configs/0/static_configs/0/targets/0"),
            Some(&serde_json::json!("127.0.0.1:8000"))
        );
        assert_eq!(
            v.pointer("/processors/filter~1llm-autoscale/metrics/metric/0")
                .and_then(|v| v.as_str()),
            Some(r#"name != "vllm:num_requests_waiting" and name != "vllm:kv_cache_usage_perc""#)
        );
        let statements = v
            .pointer("/processors/transform~1llm-autoscale/metric_statements/0/statements")
            .unwrap();
        assert_eq!(
            statements[0],
            r#"set(attributes["pod"], "${env:POD_NAME}")"#
        );
        assert_eq!(statements[1], r#"set(attributes["deployment"], "qwen")"#);
        assert_eq!(
            statements[2],
            r#"set(attributes["namespace"], "${env:POD_NAMESPACE}")"#
        );
        assert_eq!(
            v.pointer("/exporters/otlp_grpc~1keda/endpoint"),
            Some(&serde_json::json!("keda-otel-scaler.keda.svc:4317"))
        );
        assert_eq!(
            v.pointer("/service/pipelines/metrics/exporters/0"),
            Some(&serde_json::json!("otlp_grpc/keda"))
        );
    }

    /// `builtin`: the main pipeline turns counters and histograms into deltas before the
    /// stamping, and the exporter carries the namespace's token.
    #[test]
    fn builtin_sends_deltas_with_the_token() {
        let mut i = inputs();
        i.builtin = Some(BuiltinExport {
            token_env: Some("LLM_AUTOSCALE_SCALER_TOKEN"),
            ca_env: None,
        });
        let v: serde_json::Value = serde_yaml_ng::from_str(&to_yaml(&render(&i)).unwrap()).unwrap();
        assert_eq!(
            v["service"]["pipelines"]["metrics"]["processors"],
            serde_json::json!([
                "memory_limiter",
                "filter/llm-autoscale",
                "cumulative_to_delta/llm-autoscale-deltas",
                "transform/llm-autoscale"
            ])
        );
        assert_eq!(
            v["processors"]["cumulative_to_delta/llm-autoscale-deltas"],
            serde_json::json!({"initial_value": "drop"})
        );
        assert_eq!(
            v["exporters"]["otlp_grpc/keda"]["headers"],
            serde_json::json!({"authorization": "Bearer ${env:LLM_AUTOSCALE_SCALER_TOKEN}"})
        );
        assert_eq!(
            v["exporters"]["otlp_grpc/keda"]["tls"],
            serde_json::json!({"insecure": true})
        );
        i.collector_version = Some((0, 150));
        let v: serde_json::Value = serde_yaml_ng::from_str(&to_yaml(&render(&i)).unwrap()).unwrap();
        assert!(v["processors"]["cumulativetodelta/llm-autoscale-deltas"].is_object());
    }

    /// `--builtin-scaler-tls`: the exporter verifies the scaler's certificate against the CA
    /// from the environment; everything else is as without it.
    #[test]
    fn builtin_over_tls_verifies_the_scaler() {
        let mut i = inputs();
        i.builtin = Some(BuiltinExport {
            token_env: Some("LLM_AUTOSCALE_SCALER_TOKEN"),
            ca_env: None,
        });
        let plain: serde_json::Value =
            serde_yaml_ng::from_str(&to_yaml(&render(&i)).unwrap()).unwrap();
        i.builtin = Some(BuiltinExport {
            token_env: Some("LLM_AUTOSCALE_SCALER_TOKEN"),
            ca_env: Some("LLM_AUTOSCALE_SCALER_CA"),
        });
        let mut tls: serde_json::Value =
            serde_yaml_ng::from_str(&to_yaml(&render(&i)).unwrap()).unwrap();
        assert_eq!(
            tls["exporters"]["otlp_grpc/keda"]["tls"],
            serde_json::json!({"insecure": false, "ca_pem": "${env:LLM_AUTOSCALE_SCALER_CA}"})
        );
        tls["exporters"]["otlp_grpc/keda"]["tls"] = serde_json::json!({"insecure": true});
        assert_eq!(tls, plain);
    }

    #[test]
    fn rendering_is_deterministic() {
        assert_eq!(
            to_yaml(&render(&inputs())).unwrap(),
            to_yaml(&render(&inputs())).unwrap()
        );
    }
}
