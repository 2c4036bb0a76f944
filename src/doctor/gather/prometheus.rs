//! The metrics path through Prometheus: each prometheus trigger's query, asked at
//! `--prometheus-url`, through the API server's service proxy, or at its `serverAddress`.

use std::collections::BTreeMap;

use kube::Client;
use serde_json::Value;

use super::GatherOptions;
use crate::doctor::address::{
    ProxyScheme, ServiceRef, query_string, service_of, service_proxy_path,
};
use crate::doctor::metrics_path::trigger_key;
use crate::doctor::probe::{api_get, http_get};
use crate::doctor::snapshot::{Probe, PrometheusAnswer};
use crate::keda::{ScaledObject, TriggerKind};

/// Runs each prometheus trigger's query: at `--prometheus-url`, through the service proxy when
/// `serverAddress` names a Service and doctor runs outside the cluster, else at
/// `serverAddress` itself.
pub(super) async fn prometheus_probes(
    client: &Client,
    opts: &GatherOptions,
    so: &Option<ScaledObject>,
) -> BTreeMap<String, Probe<PrometheusAnswer>> {
    let mut out = BTreeMap::new();
    let Some(so) = so else { return out };
    for (i, t) in so.spec.triggers.iter().enumerate() {
        if t.kind != TriggerKind::Prometheus {
            continue;
        }
        let server = t
            .meta("serverAddress")
            .unwrap_or_default()
            .trim_end_matches('/');
        let query = query_string(&[("query", t.meta("query").unwrap_or_default())]);
        let path = format!("/api/v1/query?{query}");
        let (via, answer) = match (&opts.prometheus_url, service_of(server)) {
            (Some(url), _) => {
                let url = url.trim_end_matches('/');
                (url.to_string(), http_get(&format!("{url}{path}")).await)
            }
            (None, Some(svc)) if !opts.in_cluster => {
                let proxied = prometheus_proxy_path(server, &svc, &path);
                (
                    format!("the API server's proxy to Service {svc}"),
                    api_get(client, &proxied).await,
                )
            }
            (None, _) => (
                server.to_string(),
                http_get(&format!("{server}{path}")).await,
            ),
        };
        out.insert(trigger_key(i, t), prometheus_answer(answer, via));
    }
    out
}

/// The service-proxy path of `path` on the Prometheus at `server` (its scheme, port — 80 or 443
/// when unsaid — and path prefix kept, as KEDA appends `/api/v1/query` to `serverAddress`).
pub fn prometheus_proxy_path(server: &str, svc: &ServiceRef, path: &str) -> String {
    let (scheme, default_port) = if server.starts_with("https://") {
        (ProxyScheme::Https, "443")
    } else {
        (ProxyScheme::Http, "80")
    };
    let port = svc
        .port
        .map_or_else(|| default_port.to_string(), |p| p.to_string());
    let prefix = url::Url::parse(server)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default();
    service_proxy_path(svc, scheme, &port, &format!("{prefix}{path}"))
}

/// Reads a Prometheus `/api/v1/query` answer: the number of series of a `success`.
pub fn prometheus_answer(answer: Result<String, String>, via: String) -> Probe<PrometheusAnswer> {
    let body = match answer {
        Ok(b) => b,
        Err(e) => return Probe::Failed(format!("{via}: {e}")),
    };
    let v: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => return Probe::Failed(format!("{via}: not a Prometheus answer: {e}")),
    };
    if v.get("status").and_then(Value::as_str) != Some("success") {
        let error = v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no status");
        return Probe::Failed(format!("{via}: {error}"));
    }
    let series = v
        .pointer("/data/result")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    Probe::Answered(PrometheusAnswer { series, via })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn proxy_paths_to_prometheus() {
        let path = "/api/v1/query?query=sum%28up%29";
        let server = "http://prometheus-operated.monitoring.svc:9090";
        let svc = service_of(server).unwrap();
        assert_eq!(
            prometheus_proxy_path(server, &svc, path),
            "/api/v1/namespaces/monitoring/services/prometheus-operated:9090/proxy/api/v1/query?query=sum%28up%29"
        );
        let server = "https://thanos-query.monitoring.svc/prefix";
        let svc = service_of(server).unwrap();
        assert_eq!(
            prometheus_proxy_path(server, &svc, path),
            "/api/v1/namespaces/monitoring/services/https:thanos-query:443/proxy/prefix/api/v1/query?query=sum%28up%29"
        );
    }

    #[test]
    fn prometheus_answers_counted() {
        let ok = json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "2"]}]}});
        let Probe::Answered(a) = prometheus_answer(Ok(ok.to_string()), "p".into()) else {
            panic!()
        };
        assert_eq!(a.series, 1);
        let bad =
            json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"});
        let Probe::Failed(why) = prometheus_answer(Ok(bad.to_string()), "p".into()) else {
            panic!()
        };
        assert!(why.contains("parse error"));
        assert!(matches!(
            prometheus_answer(Err("refused".into()), "p".into()),
            Probe::Failed(_)
        ));
    }
}
