//! The parts of a Deployment or InferenceService the core reads, taken from its JSON.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::json_path;

/// Label KServe puts on the Deployments it creates for an InferenceService.
pub const KSERVE_ISVC_LABEL: &str = "serving.kserve.io/inferenceservice";
/// Label the webhook sets on every Deployment it admits opted in (and removes from one it
/// admits opted out): the reconciler watches these in full by label selector, the others by
/// metadata only.
pub const MANAGED_LABEL: &str = "llm-autoscale.io/managed";
/// The value of [`MANAGED_LABEL`].
pub const MANAGED_LABEL_VALUE: &str = "true";

/// Which kind of object this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Deployment,
    InferenceService,
}

impl WorkloadKind {
    /// Recognises `apps/v1 Deployment` and `serving.kserve.io/v1beta1 InferenceService`.
    pub fn of(object: &Value) -> Option<WorkloadKind> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        match (api_version, kind) {
            ("apps/v1", "Deployment") => Some(WorkloadKind::Deployment),
            ("serving.kserve.io/v1beta1", "InferenceService") => {
                Some(WorkloadKind::InferenceService)
            }
            _ => None,
        }
    }
}

/// What the annotation parser needs to know about the object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Workload {
    pub kind: WorkloadKind,
    /// `metadata.name` (empty when only `generateName` is set).
    pub name: String,
    /// `metadata.namespace`, or `default` when the object does not say.
    pub namespace: String,
    /// The annotations that configure autoscaling: `metadata.annotations`, with keys missing
    /// there taken from `spec.template.metadata.annotations` (where KServe copies them).
    pub annotations: BTreeMap<String, String>,
    /// The Deployment KServe created for an InferenceService (it carries the isvc label).
    pub kserve_predictor: bool,
    /// Images of the pod's containers, to guess the vLLM version.
    pub images: Vec<String>,
    /// Every `containerPort` declared in the pod, to avoid collisions.
    pub declared_ports: Vec<u16>,
}

impl Workload {
    pub fn from_object(kind: WorkloadKind, object: &Value) -> Workload {
        let meta = object.get("metadata");
        let str_at = |v: Option<&Value>, key: &str| -> String {
            v.and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let name = str_at(meta, "name");
        let namespace = Some(str_at(meta, "namespace"))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let mut annotations = string_map(meta.and_then(|m| m.get("annotations")));
        let pod = pod_spec(kind, object);
        if kind == WorkloadKind::Deployment {
            let template_annotations = string_map(json_path::get(
                object,
                &["spec", "template", "metadata", "annotations"],
            ));
            for (k, v) in template_annotations {
                annotations.entry(k).or_insert(v);
            }
        }
        let labels = string_map(meta.and_then(|m| m.get("labels")));
        let mut images = Vec::new();
        let mut declared_ports = Vec::new();
        for c in containers(pod) {
            if let Some(img) = c.get("image").and_then(Value::as_str) {
                images.push(img.to_string());
            }
            for p in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(port) = p
                    .get("containerPort")
                    .and_then(Value::as_u64)
                    .and_then(|n| u16::try_from(n).ok())
                {
                    declared_ports.push(port);
                }
            }
        }
        Workload {
            kind,
            name,
            namespace,
            annotations,
            kserve_predictor: labels.contains_key(KSERVE_ISVC_LABEL),
            images,
            declared_ports,
        }
    }
}

/// The pod spec: `spec.template.spec` of a Deployment, `spec.predictor` of an isvc.
pub fn pod_spec(kind: WorkloadKind, object: &Value) -> Option<&Value> {
    match kind {
        WorkloadKind::Deployment => json_path::get(object, &["spec", "template", "spec"]),
        WorkloadKind::InferenceService => json_path::get(object, &["spec", "predictor"]),
    }
}

/// Every container-shaped object of a pod spec (containers, init containers, and for an
/// InferenceService the predictor's model/runtime containers).
fn containers(pod: Option<&Value>) -> Vec<&Value> {
    let Some(pod) = pod else { return Vec::new() };
    let mut out = Vec::new();
    for key in ["initContainers", "containers"] {
        if let Some(list) = pod.get(key).and_then(Value::as_array) {
            out.extend(list.iter());
        }
    }
    if let Some(obj) = pod.as_object() {
        for (k, v) in obj {
            if !matches!(k.as_str(), "initContainers" | "containers")
                && v.is_object()
                && (v.get("image").is_some() || v.get("ports").is_some())
            {
                out.push(v);
            }
        }
    }
    out
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds() {
        assert_eq!(
            WorkloadKind::of(&json!({"apiVersion": "apps/v1", "kind": "Deployment"})),
            Some(WorkloadKind::Deployment)
        );
        assert_eq!(
            WorkloadKind::of(
                &json!({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService"})
            ),
            Some(WorkloadKind::InferenceService)
        );
        assert_eq!(
            WorkloadKind::of(&json!({"apiVersion": "v1", "kind": "Service"})),
            None
        );
        assert_eq!(WorkloadKind::of(&json!({"kind": "Deployment"})), None);
        assert_eq!(WorkloadKind::of(&json!("x")), None);
    }

    #[test]
    fn metadata_annotations_win_over_template_ones() {
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "m", "annotations": {"a": "meta"}, "labels": {KSERVE_ISVC_LABEL: "m"}},
            "spec": {"template": {
                "metadata": {"annotations": {"a": "tmpl", "b": "tmpl"}},
                "spec": {"containers": [{"name": "c", "image": "vllm/vllm-openai:v0.11.0",
                    "ports": [{"containerPort": 8000}, {"containerPort": 70000}]}]}
            }}
        });
        let w = Workload::from_object(WorkloadKind::Deployment, &d);
        assert_eq!(w.annotations["a"], "meta");
        assert_eq!(w.annotations["b"], "tmpl");
        assert_eq!(w.namespace, "default");
        assert!(w.kserve_predictor);
        assert_eq!(w.images, vec!["vllm/vllm-openai:v0.11.0"]);
        assert_eq!(w.declared_ports, vec![8000]);
    }

    #[test]
    fn isvc_predictor_containers_are_seen() {
        let i = json!({
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "i", "namespace": "llm"},
            "spec": {"predictor": {"model": {"runtime": "vllm", "ports": [{"containerPort": 8080}]}}}
        });
        let w = Workload::from_object(WorkloadKind::InferenceService, &i);
        assert_eq!(w.namespace, "llm");
        assert_eq!(w.declared_ports, vec![8080]);
    }

    #[test]
    fn garbage_does_not_panic() {
        let w = Workload::from_object(
            WorkloadKind::Deployment,
            &json!({"metadata": 3, "spec": []}),
        );
        assert_eq!(w.name, "");
    }
}
