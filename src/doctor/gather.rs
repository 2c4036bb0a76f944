//! The API reads and network checks that fill a [`Snapshot`]: thin, read-only (get and list,
//! and GETs through `services/proxy`); every judgement is in the findings.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::Value;

use super::address::{ProxyScheme, ServiceRef, query_string, service_of, service_proxy_path};
use super::metrics_path::{ERROR_IF_NOT_FOUND, trigger_key};
use super::probe::{api_get, http_get, tls_handshake};
use super::selector::selects;
use super::snapshot::{
    AddonSeen, AddonStore, ApiServiceSeen, DeploymentReadiness, EnvSetting, HookKind, KedaSeen,
    Probe, PrometheusAnswer, Snapshot, WebhookSeen, WebhookTarget, WorkloadSeen,
};
use crate::annotations::PREFIX;
use crate::config::WebhookConfig;
use crate::keda::{ScaledObject, TriggerKind};
use crate::reconcile::plan::{Action, InferenceServiceId, KserveOwner, inference_service_of, plan};
use crate::workload::WorkloadKind;

/// Suffix of the product's webhook names.
const HOOK_SUFFIX: &str = ".llm-autoscale.io";
/// KServe's InferenceService CRD.
const ISVC_CRD: &str = "inferenceservices.serving.kserve.io";
/// The add-on's REST API port when its Service names none (kedify/otel-add-on util/config.go
/// `RestApiPort`, default 9090; its chart names the Service port `rest-api`).
const ADDON_REST_PORT: &str = "9090";
const ADDON_REST_PORT_NAME: &str = "rest-api";

/// What went wrong reading the cluster.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadTarget(String),
}

fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> GatherError {
    let what = what.into();
    move |source| GatherError::Api { what, source }
}

/// One workload named on the command line: `deploy/NAME`, `deployment/NAME`,
/// `inferenceservice/NAME` or `isvc/NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetRef {
    pub kind: WorkloadKind,
    pub name: String,
}

impl std::str::FromStr for TargetRef {
    type Err = GatherError;

    fn from_str(s: &str) -> Result<TargetRef, GatherError> {
        let bad = || {
            GatherError::BadTarget(format!(
                "{s:?}: name a workload as deploy/NAME or inferenceservice/NAME"
            ))
        };
        let (kind, name) = s.split_once('/').ok_or_else(bad)?;
        let kind = match kind.to_ascii_lowercase().as_str() {
            "deploy" | "deployment" | "deployments" | "deployment.apps" => WorkloadKind::Deployment,
            "isvc" | "inferenceservice" | "inferenceservices" => WorkloadKind::InferenceService,
            _ => return Err(bad()),
        };
        if name.is_empty() || name.contains('/') {
            return Err(bad());
        }
        Ok(TargetRef {
            kind,
            name: name.to_string(),
        })
    }
}

/// Where to look and how to reach what the cluster network hides.
#[derive(Clone, Debug, Default)]
pub struct GatherOptions {
    /// Only this namespace (all when `None`).
    pub namespace: Option<String>,
    /// Only this workload (needs `namespace`).
    pub target: Option<TargetRef>,
    /// The add-on's REST API (`http://HOST:PORT`), instead of the API server's service proxy.
    pub addon_url: Option<String>,
    /// Prometheus (`http://HOST:PORT`), instead of each trigger's `serverAddress`.
    pub prometheus_url: Option<String>,
    /// `HOST:PORT` reaching the webhook's Service (e.g. `kubectl port-forward`), for the
    /// certificate check of Service-based webhooks from outside the cluster.
    pub webhook_address: Option<String>,
    /// Running in a Pod: Service DNS names resolve.
    pub in_cluster: bool,
}

/// Reads everything the findings need.
pub async fn gather(
    client: &Client,
    opts: &GatherOptions,
    cfg: &WebhookConfig,
) -> Result<Snapshot, GatherError> {
    let webhooks = webhooks(client, opts).await?;
    let keda = keda(client).await?;
    let mut workloads = Vec::new();
    for (kind, object) in workload_objects(client, opts).await? {
        workloads.push(workload(client, opts, cfg, kind, object).await?);
    }
    let addon = if workloads.iter().any(|w| uses_addon(w, cfg)) {
        Some(addon(client, opts, cfg).await?)
    } else {
        None
    };
    Ok(Snapshot {
        webhooks,
        keda,
        addon,
        workloads,
    })
}

// ---------------------------------------------------------------- webhooks

async fn webhooks(client: &Client, opts: &GatherOptions) -> Result<Vec<WebhookSeen>, GatherError> {
    let mut out = Vec::new();
    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(api("listing MutatingWebhookConfigurations"))?;
    for c in mutating {
        let config = c.metadata.name.clone().unwrap_or_default();
        for h in c.webhooks.into_iter().flatten() {
            let parts = (
                h.name,
                h.client_config,
                h.failure_policy,
                h.namespace_selector,
                h.object_selector,
            );
            if parts.0.ends_with(HOOK_SUFFIX) {
                out.push(webhook(client, opts, &config, HookKind::Mutating, parts).await?);
            }
        }
    }
    let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(api("listing ValidatingWebhookConfigurations"))?;
    for c in validating {
        let config = c.metadata.name.clone().unwrap_or_default();
        for h in c.webhooks.into_iter().flatten() {
            let parts = (
                h.name,
                h.client_config,
                h.failure_policy,
                h.namespace_selector,
                h.object_selector,
            );
            if parts.0.ends_with(HOOK_SUFFIX) {
                out.push(webhook(client, opts, &config, HookKind::Validating, parts).await?);
            }
        }
    }
    Ok(out)
}

type HookParts = (
    String,
    WebhookClientConfig,
    Option<String>,
    Option<LabelSelector>,
    Option<LabelSelector>,
);

async fn webhook(
    client: &Client,
    opts: &GatherOptions,
    configuration: &str,
    kind: HookKind,
    (name, cc, failure_policy, namespace_selector, object_selector): HookParts,
) -> Result<WebhookSeen, GatherError> {
    let ca_bundle = cc.ca_bundle.map(|b| b.0).unwrap_or_default();
    let (target, ready_endpoints) = match (cc.url, cc.service) {
        (Some(url), _) => (WebhookTarget::Url(url), None),
        (None, Some(s)) => {
            let service = ServiceRef {
                namespace: s.namespace,
                name: s.name,
                port: u16::try_from(s.port.unwrap_or(443)).ok(),
            };
            let ready = ready_endpoints(client, &service).await?;
            let path = s.path.unwrap_or_default();
            (WebhookTarget::Service { service, path }, Some(ready))
        }
        (None, None) => (WebhookTarget::Url(String::new()), None),
    };
    let tls = webhook_tls(&target, &ca_bundle, opts).await;
    Ok(WebhookSeen {
        configuration: configuration.to_string(),
        kind,
        name,
        target,
        ca_bundle,
        // The API's default (admissionregistration.k8s.io/v1).
        failure_policy: failure_policy.unwrap_or_else(|| "Fail".into()),
        namespace_selector,
        object_selector,
        ready_endpoints,
        tls,
    })
}

async fn ready_endpoints(client: &Client, service: &ServiceRef) -> Result<usize, GatherError> {
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), &service.namespace)
        .list(
            &ListParams::default().labels(&format!("kubernetes.io/service-name={}", service.name)),
        )
        .await
        .map_err(api(format!(
            "listing the EndpointSlices of Service {service}"
        )))?;
    Ok(slices
        .items
        .iter()
        .flat_map(|s| &s.endpoints)
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .count())
}

/// The TLS check: a URL directly; a Service by its DNS name in the cluster, or through
/// `--webhook-address` from outside, verified for the name the API server uses
/// (`<service>.<namespace>.svc`).
async fn webhook_tls(
    target: &WebhookTarget,
    ca_bundle: &[u8],
    opts: &GatherOptions,
) -> Probe<super::snapshot::ServedCertificate> {
    match target {
        WebhookTarget::Url(u) => match url::Url::parse(u) {
            Ok(parsed) => {
                let host = parsed
                    .host_str()
                    .unwrap_or_default()
                    .trim_matches(['[', ']']);
                let port = parsed.port_or_known_default().unwrap_or(443);
                let address = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                tls_handshake(&address, host, ca_bundle).await
            }
            Err(e) => Probe::Failed(format!("clientConfig.url {u:?}: {e}")),
        },
        WebhookTarget::Service { service, .. } => {
            let name = format!("{}.{}.svc", service.name, service.namespace);
            let port = service.port.unwrap_or(443);
            match (&opts.webhook_address, opts.in_cluster) {
                (Some(a), _) => tls_handshake(a, &name, ca_bundle).await,
                (None, true) => tls_handshake(&format!("{name}:{port}"), &name, ca_bundle).await,
                (None, false) => Probe::NotTried(format!(
                    "outside the cluster {name} does not resolve: run doctor in the cluster, or kubectl port-forward -n {} svc/{} 8443:{port} and pass --webhook-address 127.0.0.1:8443",
                    service.namespace, service.name
                )),
            }
        }
    }
}

// ---------------------------------------------------------------- KEDA

fn api_service_resource() -> ApiResource {
    ApiResource {
        group: "apiregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "apiregistration.k8s.io/v1".into(),
        kind: "APIService".into(),
        plural: "apiservices".into(),
    }
}

async fn keda(client: &Client) -> Result<KedaSeen, GatherError> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let crd = crds
        .get_opt("scaledobjects.keda.sh")
        .await
        .map_err(api("reading CRD scaledobjects.keda.sh"))?
        .is_some();
    let operators = Api::<Deployment>::all(client.clone())
        .list(&ListParams::default().labels("app.kubernetes.io/name=keda-operator"))
        .await
        .map_err(api(
            "listing Deployments labelled app.kubernetes.io/name=keda-operator",
        ))?
        .items
        .into_iter()
        .map(|d| DeploymentReadiness {
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            name: d.metadata.name.clone().unwrap_or_default(),
            ready: d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
            wanted: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        })
        .collect();
    let apiservice = Api::<DynamicObject>::all_with(client.clone(), &api_service_resource())
        .get_opt("v1beta1.external.metrics.k8s.io")
        .await
        .map_err(api("reading APIService v1beta1.external.metrics.k8s.io"))?;
    let metrics_api = match apiservice {
        None => ApiServiceSeen::Missing,
        Some(o) => {
            let v = serde_json::to_value(&o).unwrap_or_default();
            match super::keda::condition(&v, "Available") {
                Some(c) if c.status == "True" => ApiServiceSeen::Available,
                Some(c) => ApiServiceSeen::Unavailable(format!("{}: {}", c.reason, c.message)),
                None => ApiServiceSeen::Unavailable("no Available condition yet".into()),
            }
        }
    };
    Ok(KedaSeen {
        crd,
        operators,
        metrics_api,
    })
}

// ---------------------------------------------------------------- workloads

fn isvc_resource() -> ApiResource {
    ApiResource {
        group: "serving.kserve.io".into(),
        version: "v1beta1".into(),
        api_version: "serving.kserve.io/v1beta1".into(),
        kind: "InferenceService".into(),
        plural: "inferenceservices".into(),
    }
}

fn scaled_object_resource() -> ApiResource {
    ApiResource::erase::<ScaledObject>(&())
}

/// A DynamicObject as JSON with its apiVersion and kind (list items come without them).
fn dynamic_json(o: &DynamicObject, ar: &ApiResource) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(ar.api_version.clone()));
        map.insert("kind".into(), Value::String(ar.kind.clone()));
    }
    v
}

fn opts_in(object: &Value) -> bool {
    let key = format!("{PREFIX}enabled");
    [
        "/metadata/annotations",
        "/spec/template/metadata/annotations",
    ]
    .iter()
    .any(|p| object.pointer(p).and_then(|a| a.get(&key)).is_some())
}

fn deployment_api(client: &Client, ns: Option<&str>) -> Api<Deployment> {
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn isvc_api(client: &Client, ns: Option<&str>) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &isvc_resource()),
        None => Api::all_with(client.clone(), &isvc_resource()),
    }
}

/// The workloads to check: the one named, or every opted-in Deployment and InferenceService
/// (a predictor Deployment is checked under its InferenceService).
async fn workload_objects(
    client: &Client,
    opts: &GatherOptions,
) -> Result<Vec<(WorkloadKind, Value)>, GatherError> {
    let ns = opts.namespace.as_deref();
    if let Some(t) = &opts.target {
        return one_workload(client, ns.unwrap_or("default"), t)
            .await
            .map(|o| vec![o]);
    }
    let has_isvc = Api::<CustomResourceDefinition>::all(client.clone())
        .get_opt(ISVC_CRD)
        .await
        .map_err(api(format!("reading CRD {ISVC_CRD}")))?
        .is_some();
    let mut out = Vec::new();
    if has_isvc {
        for o in isvc_api(client, ns)
            .list(&ListParams::default())
            .await
            .map_err(api("listing InferenceServices"))?
        {
            let v = dynamic_json(&o, &isvc_resource());
            if opts_in(&v) {
                out.push((WorkloadKind::InferenceService, v));
            }
        }
    }
    let deployments = deployment_api(client, ns)
        .list(&ListParams::default())
        .await
        .map_err(api("listing Deployments"))?;
    for d in deployments {
        let v = serde_json::to_value(&d).unwrap_or_default();
        let under_isvc = inference_service_of(&v).is_some_and(|isvc| {
            out.iter().any(|(k, o)| {
                *k == WorkloadKind::InferenceService
                    && o.pointer("/metadata/name").and_then(Value::as_str) == Some(isvc.as_str())
                    && o.pointer("/metadata/namespace") == v.pointer("/metadata/namespace")
            })
        });
        if opts_in(&v) && !under_isvc {
            out.push((WorkloadKind::Deployment, v));
        }
    }
    Ok(out)
}

async fn one_workload(
    client: &Client,
    ns: &str,
    t: &TargetRef,
) -> Result<(WorkloadKind, Value), GatherError> {
    let missing = || {
        GatherError::NotFound(format!(
            "{}/{} not found in namespace {ns}",
            match t.kind {
                WorkloadKind::Deployment => "deployment",
                WorkloadKind::InferenceService => "inferenceservice",
            },
            t.name
        ))
    };
    let object = match t.kind {
        WorkloadKind::Deployment => deployment_api(client, Some(ns))
            .get_opt(&t.name)
            .await
            .map_err(api(format!("reading deployment {ns}/{}", t.name)))?
            .map(|d| serde_json::to_value(&d).unwrap_or_default()),
        WorkloadKind::InferenceService => isvc_api(client, Some(ns))
            .get_opt(&t.name)
            .await
            .map_err(api(format!("reading inferenceservice {ns}/{}", t.name)))?
            .map(|o| dynamic_json(&o, &isvc_resource())),
    };
    object.map(|o| (t.kind, o)).ok_or_else(missing)
}

async fn workload(
    client: &Client,
    opts: &GatherOptions,
    cfg: &WebhookConfig,
    kind: WorkloadKind,
    object: Value,
) -> Result<WorkloadSeen, GatherError> {
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (namespace, name) = (text("/metadata/namespace"), text("/metadata/name"));
    let namespace_labels = Api::<Namespace>::all(client.clone())
        .get_opt(&namespace)
        .await
        .map_err(api(format!("reading namespace {namespace}")))?
        .and_then(|n| n.metadata.labels)
        .unwrap_or_default();
    let (deployment, kserve) = target_of(client, kind, &object, &namespace, &name).await?;
    let so_list = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &namespace,
        &scaled_object_resource(),
    )
    .list(&ListParams::default())
    .await
    .map_err(api(format!("listing ScaledObjects in {namespace}")))?;
    let scaled_objects: Vec<Value> = so_list
        .items
        .iter()
        .map(|o| dynamic_json(o, &scaled_object_resource()))
        .collect();
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .map_err(api(format!("listing HPAs in {namespace}")))?
        .items;
    let mut w = WorkloadSeen {
        kind,
        namespace,
        name,
        object,
        namespace_labels,
        deployment,
        kserve,
        scaled_objects,
        hpas,
        prometheus: BTreeMap::new(),
    };
    w.prometheus = prometheus_probes(client, opts, &scaled_object_of(&w, cfg)).await;
    Ok(w)
}

/// The Deployment that scales and what KServe says about it.
async fn target_of(
    client: &Client,
    kind: WorkloadKind,
    object: &Value,
    namespace: &str,
    name: &str,
) -> Result<(Option<Value>, KserveOwner), GatherError> {
    let deployments = deployment_api(client, Some(namespace));
    match kind {
        WorkloadKind::InferenceService => {
            let predictor = format!("{name}-predictor");
            let d = deployments
                .get_opt(&predictor)
                .await
                .map_err(api(format!("reading deployment {namespace}/{predictor}")))?
                .map(|d| serde_json::to_value(&d).unwrap_or_default());
            Ok((d, kserve_found(object)))
        }
        WorkloadKind::Deployment => {
            let kserve = match inference_service_of(object) {
                None => KserveOwner::None,
                Some(isvc) => isvc_api(client, Some(namespace))
                    .get_opt(&isvc)
                    .await
                    .ok()
                    .flatten()
                    .map(|o| kserve_found(&dynamic_json(&o, &isvc_resource())))
                    .unwrap_or(KserveOwner::Missing),
            };
            Ok((Some(object.clone()), kserve))
        }
    }
}

fn kserve_found(isvc: &Value) -> KserveOwner {
    let text = |p: &str| isvc.pointer(p).and_then(Value::as_str).map(str::to_string);
    KserveOwner::Found {
        id: InferenceServiceId {
            name: text("/metadata/name").unwrap_or_default(),
            uid: text("/metadata/uid").unwrap_or_default(),
        },
        class: isvc
            .pointer("/metadata/annotations")
            .and_then(|a| a.get("serving.kserve.io/autoscalerClass"))
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// The ScaledObject KEDA runs for the workload (stored), else the one it would (rendered).
fn scaled_object_of(w: &WorkloadSeen, cfg: &WebhookConfig) -> Option<ScaledObject> {
    let d = w.deployment.as_ref()?;
    let Action::Apply(rendered) = plan(d, &w.kserve, cfg).action else {
        return None;
    };
    let name = rendered.pointer("/metadata/name").cloned();
    let stored = w
        .scaled_objects
        .iter()
        .find(|so| so.pointer("/metadata/name").cloned() == name);
    serde_json::from_value(stored.cloned().unwrap_or(rendered)).ok()
}

fn uses_addon(w: &WorkloadSeen, cfg: &WebhookConfig) -> bool {
    scaled_object_of(w, cfg).is_some_and(|so| {
        so.spec
            .triggers
            .iter()
            .any(|t| t.is_otel_addon(&cfg.scaler_address))
    })
}

// ---------------------------------------------------------------- metrics path

/// Runs each prometheus trigger's query: at `--prometheus-url`, through the service proxy when
/// `serverAddress` names a Service and doctor runs outside the cluster, else at
/// `serverAddress` itself.
async fn prometheus_probes(
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

async fn addon(
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
    fn targets_as_kubectl_spells_them() {
        let t: TargetRef = "deploy/qwen".parse().unwrap();
        assert_eq!(
            t,
            TargetRef {
                kind: WorkloadKind::Deployment,
                name: "qwen".into()
            }
        );
        for s in [
            "deployment/qwen",
            "deployments/qwen",
            "deployment.apps/qwen",
        ] {
            assert_eq!(
                s.parse::<TargetRef>().unwrap().kind,
                WorkloadKind::Deployment
            );
        }
        for s in ["inferenceservice/q", "isvc/q", "InferenceService/q"] {
            assert_eq!(
                s.parse::<TargetRef>().unwrap().kind,
                WorkloadKind::InferenceService
            );
        }
        for s in ["qwen", "pod/qwen", "deploy/", "deploy/a/b"] {
            assert!(s.parse::<TargetRef>().is_err(), "{s}");
        }
    }

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
    fn proxy_paths_to_prometheus_and_the_add_on() {
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
        let addon: Service = serde_json::from_value(json!({"spec": {"ports": [
            {"name": "keda-external-scaler", "port": 4318}, {"name": "rest-api", "port": 9191}]}}))
        .unwrap();
        assert_eq!(rest_port(&addon), "9191");
        assert_eq!(rest_port(&Service::default()), ADDON_REST_PORT);
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
