//! The metrics path through the built-in scaler: whether it answers, what it answers KEDA for
//! each builtin trigger, and the namespace's token Secret (with `--builtin-scaler-tls`, its
//! `ca.crt`).
//!
//! gRPC does not pass the API server's service proxy, so the series are asked for only where
//! the scaler port can be dialled: at `--builtin-scaler-url`, or at the configured address when
//! doctor runs in the cluster. Otherwise the proxy reaches its plain-HTTP `/readyz`
//! (src/scaler/service/http.rs), which says it runs but not what it holds.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Secret, Service};
use kube::Client;
use kube::api::Api;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::{GatherError, GatherOptions, api};
use crate::config::WebhookConfig;
use crate::doctor::address::{ProxyScheme, ServiceRef, service_of, service_proxy_path};
use crate::doctor::metrics_path::trigger_key;
use crate::doctor::probe::{TIMEOUT, api_get};
use crate::doctor::scaler_tls;
use crate::doctor::snapshot::{BuiltinReading, BuiltinSeen, Probe, SecretCa, TokenSecret};
use crate::keda::trigger::{KnownScalers, Reader};
use crate::keda::{ScaledObject, Trigger};
use crate::scaler::service::proto::externalscaler::external_scaler_client::ExternalScalerClient;
use crate::scaler::service::proto::externalscaler::{GetMetricsRequest, ScaledObjectRef};
use crate::scaler::trust;

/// The scaler's plain-HTTP port (`scaler --metrics-addr`, the chart's Service port `metrics`).
const METRICS_PORT: &str = "9464";
const METRICS_PORT_NAME: &str = "metrics";

/// How the triggers' series can be asked: a connected channel, or why not.
pub(super) type Grpc = Result<Channel, String>;

/// The scaler's health, and the channel to ask it on.
pub(super) async fn builtin(
    client: &Client,
    opts: &GatherOptions,
    cfg: &WebhookConfig,
) -> Result<(BuiltinSeen, Grpc), GatherError> {
    let service = service_of(&cfg.builtin_scaler_address);
    let direct = match (&opts.builtin_scaler_url, opts.in_cluster) {
        (Some(url), _) => Some(url.clone()),
        (None, true) => Some(cfg.builtin_scaler_address.clone()),
        (None, false) => None,
    };
    if let Some(address) = direct {
        let url = grpc_url(&address, opts.builtin_scaler_ca.is_some());
        let grpc = connect(&url, opts.builtin_scaler_ca.as_deref()).await;
        let health = match &grpc {
            Ok(_) => Probe::Answered(()),
            Err(e) => Probe::Failed(e.clone()),
        };
        let seen = BuiltinSeen {
            service,
            via: url,
            health,
        };
        return Ok((seen, grpc));
    }
    let no_grpc = Err("gRPC does not pass the API server's service proxy".to_string());
    let Some(s) = service else {
        let why = format!(
            "--builtin-scaler-address {} names no Service",
            cfg.builtin_scaler_address
        );
        let seen = BuiltinSeen {
            service: None,
            via: cfg.builtin_scaler_address.clone(),
            health: Probe::NotTried(why),
        };
        return Ok((seen, no_grpc));
    };
    let (via, health) = proxy_health(client, &s).await?;
    let seen = BuiltinSeen {
        service: Some(s),
        via,
        health,
    };
    Ok((seen, no_grpc))
}

/// `GET /readyz` through the API server's service proxy, when the Service exists.
async fn proxy_health(client: &Client, s: &ServiceRef) -> Result<(String, Probe<()>), GatherError> {
    let found = Api::<Service>::namespaced(client.clone(), &s.namespace)
        .get_opt(&s.name)
        .await
        .map_err(api(format!("reading Service {s}")))?;
    let Some(svc) = found else {
        return Ok((
            format!("Service {}/{}", s.namespace, s.name),
            Probe::Failed(format!("Service {}/{} does not exist", s.namespace, s.name)),
        ));
    };
    let path = scaler_health_path(s, &svc);
    let health = match api_get(client, &path).await {
        Ok(_) => Probe::Answered(()),
        Err(e) => Probe::Failed(format!("GET {path}: {e}")),
    };
    Ok((format!("the API server's proxy: GET {path}"), health))
}

/// The API server path of the scaler's `/readyz`: its Service's `metrics` port (9464 when the
/// Service names none), plain HTTP.
pub fn scaler_health_path(s: &ServiceRef, svc: &Service) -> String {
    let port = svc
        .spec
        .as_ref()
        .and_then(|sp| sp.ports.as_ref())
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| p.name.as_deref() == Some(METRICS_PORT_NAME))
        })
        .map_or_else(|| METRICS_PORT.to_string(), |p| p.port.to_string());
    service_proxy_path(s, ProxyScheme::Http, &port, "/readyz")
}

/// `address` as a gRPC URL: as given when it has a scheme, else `http://` (`https://` with a
/// CA).
pub fn grpc_url(address: &str, tls: bool) -> String {
    if address.starts_with("http://") || address.starts_with("https://") {
        address.to_string()
    } else if tls {
        format!("https://{address}")
    } else {
        format!("http://{address}")
    }
}

async fn connect(url: &str, ca_pem: Option<&[u8]>) -> Grpc {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("{url}: {e}"))?
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT);
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = ca_pem {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("{url}: {e}"))?;
    }
    endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {url}: {}", error_chain(&e)))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What the scaler answers for each builtin trigger of `so`, asked as KEDA asks.
pub(super) async fn builtin_readings(
    grpc: &Grpc,
    so: Option<&ScaledObject>,
    cfg: &WebhookConfig,
) -> BTreeMap<String, Probe<BuiltinReading>> {
    let mut out = BTreeMap::new();
    let Some(so) = so else { return out };
    for (i, t) in so.spec.triggers.iter().enumerate() {
        if t.reader(&KnownScalers::of(cfg)) != Reader::Builtin {
            continue;
        }
        let probe = match grpc {
            Ok(channel) => Probe::Answered(ask(channel.clone(), so, t).await),
            Err(why) => Probe::NotTried(why.clone()),
        };
        out.insert(trigger_key(i, t), probe);
    }
    out
}

/// The `ScaledObjectRef` KEDA sends for trigger `t` (kedacore/keda v2.21.0
/// pkg/scalers/external_scaler.go: the ScaledObject's name and namespace, the trigger's
/// metadata as `scalerMetadata`).
pub fn scaled_object_ref(so: &ScaledObject, t: &Trigger) -> ScaledObjectRef {
    ScaledObjectRef {
        name: so.name().to_string(),
        namespace: so.metadata.namespace.clone().unwrap_or_default(),
        scaler_metadata: t
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// `GetMetricSpec`, then `GetMetrics` with the metric name it gave: KEDA's read of an external
/// trigger. An error status is the scaler's answer, with its reason.
async fn ask(channel: Channel, so: &ScaledObject, t: &Trigger) -> BuiltinReading {
    let refused = |s: tonic::Status| BuiltinReading::Refused {
        code: format!("{:?}", s.code()),
        reason: s.message().to_string(),
    };
    let mut client = ExternalScalerClient::new(channel);
    let r = scaled_object_ref(so, t);
    let spec = match client.get_metric_spec(r.clone()).await {
        Ok(s) => s.into_inner(),
        Err(s) => return refused(s),
    };
    let metric_name = spec
        .metric_specs
        .first()
        .map(|m| m.metric_name.clone())
        .unwrap_or_default();
    let request = GetMetricsRequest {
        scaled_object_ref: Some(r),
        metric_name,
    };
    match client.get_metrics(request).await {
        Ok(m) => {
            let v = m.into_inner().metric_values.first().map_or(0.0, |v| {
                if v.metric_value_float != 0.0 {
                    v.metric_value_float
                } else {
                    v.metric_value as f64
                }
            });
            BuiltinReading::Value(v)
        }
        Err(s) => refused(s),
    }
}

/// Whether the namespace's token Secret exists, from its metadata (the token is never read);
/// with `tls` (`--builtin-scaler-tls`) also what its `ca.crt` holds, for which the Secret is
/// read whole (one GET, the same permission) and only that key is looked at.
pub(super) async fn token_secret(
    client: &Client,
    namespace: &str,
    tls: bool,
) -> Result<(TokenSecret, Option<SecretCa>), GatherError> {
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    let failed = |e| api(format!("reading Secret {namespace}/{}", trust::SECRET_NAME))(e);
    if !tls {
        return match secrets.get_metadata_opt(trust::SECRET_NAME).await {
            Ok(Some(_)) => Ok((TokenSecret::Present, None)),
            Ok(None) => Ok((TokenSecret::Missing, None)),
            Err(kube::Error::Api(e)) if e.code == 403 => Ok((TokenSecret::Forbidden, None)),
            Err(e) => Err(failed(e)),
        };
    }
    match secrets.get_opt(trust::SECRET_NAME).await {
        Ok(Some(s)) => Ok((TokenSecret::Present, Some(scaler_tls::secret_ca(&s)))),
        Ok(None) => Ok((TokenSecret::Missing, Some(SecretCa::NoSecret))),
        Err(kube::Error::Api(e)) if e.code == 403 => {
            Ok((TokenSecret::Forbidden, Some(SecretCa::Forbidden)))
        }
        Err(e) => Err(failed(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scaler_ref() -> ServiceRef {
        service_of(&WebhookConfig::default().builtin_scaler_address).unwrap()
    }

    #[test]
    fn the_health_request_goes_through_the_service_proxy_to_the_metrics_port() {
        let chart: Service = serde_json::from_value(json!({"spec": {"ports": [
            {"name": "otlp", "port": 4317}, {"name": "scaler", "port": 4318},
            {"name": "metrics", "port": 9464}]}}))
        .unwrap();
        let path = scaler_health_path(&scaler_ref(), &chart);
        assert_eq!(
            path,
            "/api/v1/namespaces/llm-autoscale-system/services/llm-autoscale-scaler:9464/proxy/readyz"
        );
        let renumbered: Service =
            serde_json::from_value(json!({"spec": {"ports": [{"name": "metrics", "port": 8080}]}}))
                .unwrap();
        assert!(scaler_health_path(&scaler_ref(), &renumbered).contains(":8080/proxy/readyz"));
        // A Service without a metrics port: the scaler's default.
        assert!(
            scaler_health_path(&scaler_ref(), &Service::default()).contains(":9464/proxy/readyz")
        );
        // What RBAC checks: GET on services/proxy (the path's subresource).
        assert!(path.contains("/services/") && path.contains("/proxy/"));
    }

    #[test]
    fn grpc_urls() {
        assert_eq!(grpc_url("127.0.0.1:4318", false), "http://127.0.0.1:4318");
        assert_eq!(
            grpc_url("scaler.ns.svc:4318", true),
            "https://scaler.ns.svc:4318"
        );
        assert_eq!(grpc_url("http://h:1", true), "http://h:1");
    }

    #[test]
    fn the_reference_is_what_keda_sends() {
        let so: ScaledObject = serde_json::from_value(json!({
            "metadata": {"name": "m", "namespace": "llm"},
            "spec": {"scaleTargetRef": {"name": "m"}, "triggers": [{"type": "external", "metadata": {
                "scalerAddress": "a:1", "metricQuery": "sum(x{deployment=m})", "targetValue": "5"}}]}
        }))
        .unwrap();
        let r = scaled_object_ref(&so, &so.spec.triggers[0]);
        assert_eq!((r.name.as_str(), r.namespace.as_str()), ("m", "llm"));
        assert_eq!(r.scaler_metadata["metricQuery"], "sum(x{deployment=m})");
        assert_eq!(r.scaler_metadata.len(), 3);
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_with_the_address() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let err = connect(&url, None).await.unwrap_err();
        assert!(err.contains(&url), "{err}");
    }
}
