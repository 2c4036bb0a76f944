//! The workloads: the opted-in Deployments and InferenceServices (or the one named), the
//! Deployment that scales, its namespace's labels, ScaledObjects and HPAs.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::Value;

use super::prometheus::prometheus_probes;
use super::{GatherError, GatherOptions, TargetRef, api};
use crate::annotations::PREFIX;
use crate::config::WebhookConfig;
use crate::doctor::snapshot::WorkloadSeen;
use crate::keda::ScaledObject;
use crate::keda::trigger::{KnownScalers, Reader};
use crate::reconcile::plan::{Action, InferenceServiceId, KserveOwner, inference_service_of, plan};
use crate::workload::WorkloadKind;

/// KServe's InferenceService CRD.
const ISVC_CRD: &str = "inferenceservices.serving.kserve.io";

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

pub(super) fn deployment_api(client: &Client, ns: Option<&str>) -> Api<Deployment> {
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
pub(super) async fn workload_objects(
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

pub(super) async fn workload(
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
        builtin: BTreeMap::new(),
        token_secret: None,
        scaler_ca: None,
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
pub(super) fn scaled_object_of(w: &WorkloadSeen, cfg: &WebhookConfig) -> Option<ScaledObject> {
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

pub(super) fn uses_addon(w: &WorkloadSeen, cfg: &WebhookConfig) -> bool {
    scaled_object_of(w, cfg).is_some_and(|so| {
        so.spec
            .triggers
            .iter()
            .any(|t| t.reader(&KnownScalers::of(cfg)) == Reader::OtelAddon)
    })
}
