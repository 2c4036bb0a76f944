//! Deployment mutation: inject (or refresh, or remove) the collector sidecar.

use std::collections::BTreeMap;

use serde_json::Value;

use super::injection_status::{self, InjectionStatus, Placement};
use super::{MutateError, Mutation, set_annotation};
use crate::annotations::{self, STATUS};
use crate::config::{SidecarMode, WebhookConfig};
use crate::render::{RenderError, interceptor_route, scaled_object, sidecar};
use crate::workload::{
    KSERVE_ISVC_LABEL, MANAGED_LABEL, MANAGED_LABEL_VALUE, Workload, WorkloadKind,
};

const POD_SPEC: &str = "/spec/template/spec";
const TEMPLATE_ANNOTATIONS: &str = "/spec/template/metadata/annotations";

pub(super) fn mutate(object: &Value, cfg: &WebhookConfig) -> Result<Mutation, MutateError> {
    let previous = InjectionStatus::read(object);
    let mut new = object.clone();
    strip_previous_injection(&mut new);
    let workload = Workload::from_object(WorkloadKind::Deployment, &new);
    let (spec, mut warnings) = annotations::parse(&workload, cfg)?;
    let Some(spec) = spec else {
        // Not opted in (any more): the strip above and the label's removal are the mutation.
        mark_managed(&mut new, false);
        return Ok(Mutation::between(object, new, warnings, None));
    };

    // Set when the stored sidecar is exactly what would be injected now.
    let mut already_current = false;
    let inputs = sidecar_inputs(&workload, cfg);
    if spec.sidecar != SidecarMode::None {
        let status = if has_container(&new, sidecar::SIDECAR_NAME) {
            warnings.push(format!(
                "the pod declares its own {} container: it is kept as the collector and nothing is injected",
                sidecar::SIDECAR_NAME
            ));
            InjectionStatus {
                version: 1,
                container: sidecar::SIDECAR_NAME.into(),
                placement: Placement::UserOverride,
                hash: String::new(),
                inputs: String::new(),
            }
        } else {
            let mut container = sidecar::render(&spec, cfg, &workload.declared_ports)?;
            let placement = if spec.sidecar == SidecarMode::Native {
                container.restart_policy = Some("Always".into());
                Placement::Native
            } else {
                Placement::Container
            };
            let list = placement.list().unwrap_or("containers");
            let container = serde_json::to_value(&container)
                .map_err(|e| RenderError::new("sidecar container", e))?;
            let status = InjectionStatus {
                version: 1,
                container: sidecar::SIDECAR_NAME.into(),
                placement,
                hash: injection_status::hash_of(&container),
                inputs: inputs.clone(),
            };
            // Same container as the stored one: keep the stored container as the apiserver
            // defaulted it (imagePullPolicy, terminationMessagePath, ...) and the stored status
            // (an older webhook's, perhaps), so an UPDATE that changes nothing gets an empty
            // patch and an upgrade of the webhook restarts only the pods whose sidecar changes.
            already_current = previous.as_ref().is_some_and(|p| p.same_container(&status))
                && has_container_in(object, list, sidecar::SIDECAR_NAME);
            push_container(&mut new, list, container);
            status
        };
        set_annotation(
            &mut new,
            TEMPLATE_ANNOTATIONS,
            STATUS,
            &status.to_annotation()?,
        );
    }

    let mut labels = BTreeMap::new();
    if let Some(isvc) = new
        .pointer("/metadata/labels")
        .and_then(|l| l.get(KSERVE_ISVC_LABEL))
        .and_then(Value::as_str)
    {
        labels.insert(KSERVE_ISVC_LABEL.to_string(), isvc.to_string());
    }
    let so = scaled_object::render(&spec, &labels);
    let mut patched = if already_current { object.clone() } else { new };
    mark_managed(&mut patched, true);
    let route = interceptor_route::render(&spec, &labels);
    let mut m =
        Mutation::between(object, patched, warnings, Some(so)).with_interceptor_route(route);
    m.sidecar_inputs = (spec.sidecar != SidecarMode::None).then_some(inputs);
    Ok(m)
}

/// Sets (opted in) or removes the label that lets the reconciler watch the Deployments this
/// webhook admitted opted in, in full, by label selector. Metadata only: neither the
/// generation nor the pods change with it.
fn mark_managed(object: &mut Value, opted_in: bool) {
    if opted_in {
        super::set_annotation(
            object,
            "/metadata/labels",
            MANAGED_LABEL,
            MANAGED_LABEL_VALUE,
        );
        return;
    }
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let emptied = match meta.get_mut("labels").and_then(Value::as_object_mut) {
        Some(labels) => labels.remove(MANAGED_LABEL).is_some() && labels.is_empty(),
        None => false,
    };
    if emptied {
        meta.remove("labels");
    }
}

/// Hash of everything the sidecar is rendered from: the configuring annotations, the images
/// (the vLLM version), the declared ports (collisions) and the webhook's configuration.
pub(super) fn sidecar_inputs(w: &Workload, cfg: &WebhookConfig) -> String {
    let annotations: BTreeMap<&String, &String> = w
        .annotations
        .iter()
        .filter(|(k, _)| k.as_str() != STATUS)
        .collect();
    injection_status::hash_of(&serde_json::json!({
        "annotations": annotations,
        "images": w.images,
        "ports": w.declared_ports,
        "config": cfg,
    }))
}

/// Removes what the status annotation says was injected, and the annotation itself.
/// Lists and maps left empty by the removal are removed too. Only ever the sidecar container:
/// a status naming another container or an unknown place removes nothing.
fn strip_previous_injection(object: &mut Value) {
    let injected = InjectionStatus::read(object)
        .filter(|s| s.container == sidecar::SIDECAR_NAME)
        .and_then(|s| s.placement.list());
    if let Some(list_name) = injected {
        if let Some(pod) = object.pointer_mut(POD_SPEC).and_then(Value::as_object_mut) {
            let emptied = match pod.get_mut(list_name).and_then(Value::as_array_mut) {
                Some(list) => {
                    list.retain(|c| {
                        c.get("name").and_then(Value::as_str) != Some(sidecar::SIDECAR_NAME)
                    });
                    list.is_empty()
                }
                None => false,
            };
            if emptied {
                pod.remove(list_name);
            }
        }
    }
    remove_status_annotation(object);
}

fn remove_status_annotation(object: &mut Value) {
    let Some(template_meta) = object
        .pointer_mut("/spec/template/metadata")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let emptied = match template_meta
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        Some(a) => a.remove(STATUS).is_some() && a.is_empty(),
        None => false,
    };
    if emptied {
        template_meta.remove("annotations");
    }
}

fn has_container(object: &Value, name: &str) -> bool {
    ["containers", "initContainers"]
        .iter()
        .any(|list| has_container_in(object, list, name))
}

fn has_container_in(object: &Value, list: &str, name: &str) -> bool {
    object
        .pointer(&format!("{POD_SPEC}/{list}"))
        .and_then(Value::as_array)
        .is_some_and(|l| {
            l.iter()
                .any(|c| c.get("name").and_then(Value::as_str) == Some(name))
        })
}

fn push_container(object: &mut Value, list: &str, container: Value) {
    if let Some(pod) = super::ensure_object(object, POD_SPEC) {
        let entry = pod
            .entry(list.to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if !entry.is_array() {
            *entry = Value::Array(Vec::new());
        }
        if let Some(a) = entry.as_array_mut() {
            a.push(container);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(annotations: Value, labels: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "m", "namespace": "llm", "labels": labels, "annotations": annotations},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0"}]}}}
        })
    }

    #[test]
    fn opted_in_deployments_are_labelled_and_opted_out_ones_lose_the_label() {
        let cfg = WebhookConfig::default();
        let opted_in = deployment(
            json!({"llm-autoscale.io/enabled": "true", "llm-autoscale.io/max-replicas": "4"}),
            json!({"app": "m"}),
        );
        let labelled = mutate(&opted_in, &cfg).unwrap().patched;
        assert_eq!(labelled["metadata"]["labels"][MANAGED_LABEL], "true");
        assert_eq!(labelled["metadata"]["labels"]["app"], "m");
        assert!(mutate(&labelled, &cfg).unwrap().patch.0.is_empty());

        let mut opted_out = labelled.clone();
        opted_out["metadata"]["annotations"] = json!({});
        let m = mutate(&opted_out, &cfg).unwrap();
        assert_eq!(m.patched["metadata"]["labels"], json!({"app": "m"}));

        // A labels map that held only ours goes with it.
        let mut only_ours = opted_out;
        only_ours["metadata"]["labels"] = json!({MANAGED_LABEL: "true"});
        let m = mutate(&only_ours, &cfg).unwrap();
        assert!(m.patched["metadata"].get("labels").is_none());
        // Never labelled, not opted in: untouched.
        let plain = deployment(json!({}), json!({"app": "m"}));
        assert!(mutate(&plain, &cfg).unwrap().patch.0.is_empty());
    }
}
