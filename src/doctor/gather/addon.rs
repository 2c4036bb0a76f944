//! The metrics path through the KEDA OTel add-on: its Service, the
//! `METRIC_STORE_ERROR_IF_NOT_FOUND` setting of its Deployment, and its store
//! (`GET /memstore/data`) at `--addon-url` or through the API server's service proxy.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::workloads::deployment_api;
use super::{GatherError, GatherOptions, api};
use crate::config::WebhookConfig;
use crate::doctor::address::{ProxyScheme, ServiceRef, service_of, service_proxy_path};
use crate::doctor::metrics_path::ERROR_IF_NOT_FOUND;
use crate::doctor::probe::{api_get, http_get};
use crate::doctor::selector::selects;
use crate::doctor::snapshot::{AddonSeen, AddonStore, EnvSetting, Probe};

/// The add-on's REST API port when its Service names none (kedify/otel-add-on util/config.go
/// `RestApiPort`, default 9090; its chart names the Service port `rest-api`).
const ADDON_REST_PORT: &str = "9090";
const ADDON_REST_PORT_NAME: &str = "rest-api";

pub(super) async fn addon(
    client: &Client,
    opts: &GatherOptions,
    cfg: &WebhookConfig,
) -> Result<AddonSeen, GatherError> {
    let service = service_of(&cfg.scaler_address);
    let found = match &service {
        Some(s) => Api::<Service>::namespaced(client.clone(), &s.namespace)
            .get_opt(&s.name)
            .await
            .map_err(api(format!("reading Service {s}")))?,
        None => None,
    };
    let error_if_not_found = match (&service, &found) {
        (Some(s), Some(svc)) => addon_setting(client, s, svc).await?,
        _ => EnvSetting::NoDeployment,
    };
    let (via, answer) = match (&opts.addon_url, &service, &found) {
        (Some(url), _, _) => {
            let url = url.trim_end_matches('/');
            (
                url.to_string(),
                Some(http_get(&format!("{url}/memstore/data")).await),
            )
        }
        (None, Some(s), Some(svc)) => {
            let port = rest_port(svc);
            let path = service_proxy_path(s, ProxyScheme::Http, &port, "/memstore/data");
            (
                format!(
                    "the API server's proxy to Service {}/{}:{port}",
                    s.namespace, s.name
                ),
                Some(api_get(client, &path).await),
            )
        }
        (None, _, _) => (cfg.scaler_address.clone(), None),
    };
    let store = match answer {
        Some(Ok(body)) => addon_store(&body),
        Some(Err(e)) => Probe::Failed(e),
        None => Probe::NotTried(format!(
            "no Service found for the scaler address {}",
            cfg.scaler_address
        )),
    };
    Ok(AddonSeen {
        service,
        via,
        error_if_not_found,
        store,
    })
}

fn rest_port(svc: &Service) -> String {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| {
            ports
                .iter()
                .find(|p| p.name.as_deref() == Some(ADDON_REST_PORT_NAME))
        })
        .map(|p| p.port.to_string())
        .unwrap_or_else(|| ADDON_REST_PORT.to_string())
}

/// `METRIC_STORE_ERROR_IF_NOT_FOUND` of the Deployment whose pods the Service selects.
async fn addon_setting(
    client: &Client,
    s: &ServiceRef,
    svc: &Service,
) -> Result<EnvSetting, GatherError> {
    let Some(selector) = svc.spec.as_ref().and_then(|sp| sp.selector.clone()) else {
        return Ok(EnvSetting::NoDeployment);
    };
    let selector = LabelSelector {
        match_labels: Some(selector),
        match_expressions: None,
    };
    let deployments = deployment_api(client, Some(&s.namespace))
        .list(&ListParams::default())
        .await
        .map_err(api(format!("listing Deployments in {}", s.namespace)))?;
    let Some(d) = deployments.items.into_iter().find(|d| {
        let labels = d
            .spec
            .as_ref()
            .and_then(|sp| sp.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        selects(Some(&selector), &labels)
    }) else {
        return Ok(EnvSetting::NoDeployment);
    };
    Ok(env_setting(&d, ERROR_IF_NOT_FOUND))
}

/// One variable of a Deployment's containers.
pub fn env_setting(d: &Deployment, var: &str) -> EnvSetting {
    let containers = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let mut elsewhere = false;
    for c in containers {
        if let Some(e) = c.env.iter().flatten().find(|e| e.name == var) {
            return match (&e.value, &e.value_from) {
                (_, Some(_)) => EnvSetting::Elsewhere,
                (v, None) => EnvSetting::Value(v.clone().unwrap_or_default()),
            };
        }
        elsewhere |= c.env_from.as_ref().is_some_and(|f| !f.is_empty());
    }
    if elsewhere {
        EnvSetting::Elsewhere
    } else {
        EnvSetting::Unset
    }
}

/// Reads the add-on's `GET /memstore/data` answer (kedify/otel-add-on rest/api.go
/// `getMetricData`: metric name → list of `{labels, data, aggregatesOverTime, lastUpdate}`).
pub fn addon_store(body: &str) -> Probe<AddonStore> {
    let v: BTreeMap<String, Vec<Value>> =
        match serde_json::from_str::<Option<BTreeMap<String, Option<Vec<Value>>>>>(body) {
            Ok(m) => m
                .unwrap_or_default()
                .into_iter()
                .map(|(k, s)| (k, s.unwrap_or_default()))
                .collect(),
            Err(e) => return Probe::Failed(format!("not the add-on's /memstore/data answer: {e}")),
        };
    let series = v
        .into_iter()
        .map(|(name, list)| {
            let labels = list
                .iter()
                .map(|s| {
                    s.get("labels")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str().map_or_else(|| v.to_string(), str::to_string),
                            )
                        })
                        .collect()
                })
                .collect();
            (name, labels)
        })
        .collect();
    Probe::Answered(AddonStore { series })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_add_on_store_dump_as_its_rest_api_writes_it() {
        let body = json!({
            "vllm:num_requests_waiting": [
                {"labels": {"deployment": "m", "namespace": "llm", "pod": "m-1"}, "data": [{"value": 3, "time": 1}],
                 "aggregatesOverTime": {"last_one": 3}, "lastUpdate": 1},
                {"labels": {"deployment": "m", "replica": 2}, "data": [], "aggregatesOverTime": {}, "lastUpdate": 1}
            ],
            "empty": null
        })
        .to_string();
        let Probe::Answered(s) = addon_store(&body) else {
            panic!()
        };
        assert_eq!(s.series["vllm:num_requests_waiting"].len(), 2);
        assert_eq!(s.series["vllm:num_requests_waiting"][0]["pod"], "m-1");
        assert_eq!(s.series["vllm:num_requests_waiting"][1]["replica"], "2");
        assert!(s.series["empty"].is_empty());
        assert!(matches!(addon_store("null"), Probe::Answered(_)));
        assert!(matches!(addon_store("<html>"), Probe::Failed(_)));
    }

    #[test]
    fn the_add_on_rest_port() {
        let addon: Service = serde_json::from_value(json!({"spec": {"ports": [
            {"name": "keda-external-scaler", "port": 4318}, {"name": "rest-api", "port": 9191}]}}))
        .unwrap();
        assert_eq!(rest_port(&addon), "9191");
        assert_eq!(rest_port(&Service::default()), ADDON_REST_PORT);
    }

    #[test]
    fn the_env_setting_of_a_deployment() {
        let d = |env: Value, env_from: Value| -> Deployment {
            serde_json::from_value(
                json!({"spec": {"selector": {}, "template": {"spec": {"containers": [
                {"name": "main", "env": env, "envFrom": env_from}]}}}}),
            )
            .unwrap()
        };
        let var = ERROR_IF_NOT_FOUND;
        assert_eq!(
            env_setting(&d(json!([{"name": var, "value": "true"}]), json!([])), var),
            EnvSetting::Value("true".into())
        );
        assert_eq!(
            env_setting(&d(json!([]), json!([])), var),
            EnvSetting::Unset
        );
        assert_eq!(
            env_setting(&d(json!([]), json!([{"configMapRef": {"name": "c"}}])), var),
            EnvSetting::Elsewhere
        );
        assert_eq!(
            env_setting(
                &d(
                    json!([{"name": var, "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]),
                    json!([])
                ),
                var
            ),
            EnvSetting::Elsewhere
        );
    }
}
