//! Deployment mutation: inject (or refresh, or remove) the collector sidecar.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde_json::Value;

use super::injection_status::{InjectionStatus, Placement};
use super::partial_copy;
use super::rendering::{self, RenderedSidecar, Rendering};
use super::{AdmissionPatch, MutateError, Mutation, set_annotation};
use crate::annotations::{AutoscalingSpec, STATUS};
use crate::config::WebhookConfig;
use crate::render::{interceptor_route, scaled_object, sidecar};
use crate::workload::{
    KSERVE_ISVC_LABEL, MANAGED_LABEL, MANAGED_LABEL_VALUE, Workload, WorkloadKind,
};

const POD_SPEC: &str = "/spec/template/spec";
const TEMPLATE_ANNOTATIONS: &str = "/spec/template/metadata/annotations";

/// How much of the object a mutation copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Copy {
    /// All of it: the caller wants the patched object.
    Whole,
    /// The pod template's metadata and the container lists that change: enough for the patch.
    Changed,
}

/// A Deployment taken through the mutation, before the caller builds what it needs from it.
struct Applied {
    /// The object ([`Copy::Changed`]: the parts of it that change) stripped of a previous
    /// injection, with the sidecar and its status added ([`Copy::Changed`] and
    /// `already_current`: null, nothing changes).
    new: Value,
    /// [`Copy::Changed`]: the same parts as they were.
    before: Option<Value>,
    /// The stored sidecar is exactly what would be injected now: nothing is to change.
    already_current: bool,
    warnings: Vec<String>,
    /// The spec read from the annotations and the sidecar it renders.
    rendering: Arc<Rendering>,
}

impl Applied {
    /// `None`: not opted in (any more); the strip is the whole mutation.
    fn spec(&self) -> Option<&AutoscalingSpec> {
        self.rendering
            .parsed
            .as_ref()
            .ok()
            .and_then(|(spec, _)| spec.as_ref())
    }
}

/// What the mutation reads, stripped of a previous injection: the whole object, or
/// ([`Copy::Changed`]) its metadata, its pod template's metadata and an outline of every
/// container in the pod spec, which is all [`Workload::from_object`] and the sidecar checks
/// read.
fn stripped_view(object: &Value, previous: Option<&InjectionStatus>, copy: Copy) -> Value {
    let mut view = match copy {
        Copy::Whole => object.clone(),
        Copy::Changed => {
            let mut view = partial_copy::members(
                object,
                &[
                    &["metadata", "name"],
                    &["metadata", "namespace"],
                    &["metadata", "annotations"],
                    &["metadata", "labels"],
                    &["spec", "template", "metadata"],
                ],
            );
            if let Some(pod) = object.pointer(POD_SPEC).and_then(Value::as_object) {
                if let Some(outline) = super::ensure_object(&mut view, POD_SPEC) {
                    outline.extend(pod.iter().filter_map(|(k, v)| container_outlines(k, v)));
                }
            }
            view
        }
    };
    strip_previous_injection(&mut view, previous);
    view
}

/// The outline of a pod-spec member that holds containers ([`workload`](crate::workload)
/// reads the container lists and any object with an image or ports).
fn container_outlines(key: &str, member: &Value) -> Option<(String, Value)> {
    let outline = match member {
        Value::Array(list) if matches!(key, "containers" | "initContainers") => {
            Value::Array(list.iter().map(partial_copy::container_outline).collect())
        }
        Value::Object(m) if m.contains_key("image") || m.contains_key("ports") => {
            partial_copy::container_outline(member)
        }
        _ if matches!(key, "containers" | "initContainers") => member.clone(),
        _ => return None,
    };
    Some((key.to_string(), outline))
}

/// The copy the mutation changes, stripped of the `previous` injection, and the same as it
/// was: the object (`view`), or ([`Copy::Changed`]) its pod template's metadata and the
/// container `lists` named.
fn copy_to_change(
    object: &Value,
    view: Value,
    previous: Option<&InjectionStatus>,
    lists: &[Option<&str>],
    copy: Copy,
) -> (Value, Option<Value>) {
    match copy {
        Copy::Whole => (view, None),
        Copy::Changed => {
            let lists: Vec<[&str; 4]> = lists
                .iter()
                .flatten()
                .map(|l| ["spec", "template", "spec", *l])
                .collect();
            let mut paths: Vec<&[&str]> = vec![&["spec", "template", "metadata"]];
            paths.extend(lists.iter().map(|p| p.as_slice()));
            let before = partial_copy::members(object, &paths);
            let mut new = before.clone();
            strip_previous_injection(&mut new, previous);
            (new, Some(before))
        }
    }
}

/// The list a previous injection put the sidecar in, if the status says so.
fn injected_list(status: Option<&InjectionStatus>) -> Option<&'static str> {
    status
        .filter(|s| s.container == sidecar::SIDECAR_NAME)
        .and_then(|s| s.placement.list())
}

/// Strips a previous injection and injects the sidecar again, on a copy of `object`.
fn apply(object: &Value, cfg: &WebhookConfig, copy: Copy) -> Result<Applied, MutateError> {
    let previous = InjectionStatus::read(object);
    let stripped_from = injected_list(previous.as_ref());
    let view = stripped_view(object, previous.as_ref(), copy);
    let workload = Workload::from_object(WorkloadKind::Deployment, &view);
    let rendering = rendering::of(&workload, cfg)?;
    let mut warnings = match &rendering.parsed {
        Ok((_, warnings)) => warnings.clone(),
        Err(invalid) => return Err(invalid.clone().into()),
    };
    let Some(sidecar) = rendering.sidecar.as_ref() else {
        // Not opted in (any more), or no sidecar: the strip is the whole change.
        let (new, before) = copy_to_change(object, view, previous.as_ref(), &[stripped_from], copy);
        return Ok(Applied {
            new,
            before,
            already_current: false,
            warnings,
            rendering,
        });
    };
    let (status, injected) = injection(&view, sidecar, &mut warnings);
    // Same container as the stored one: keep the stored container as the apiserver
    // defaulted it (imagePullPolicy, terminationMessagePath, ...) and the stored status
    // (an older webhook's, perhaps), so an UPDATE that changes nothing gets an empty
    // patch and an upgrade of the webhook restarts only the pods whose sidecar changes.
    let already_current = injected.is_some_and(|(list, _)| {
        previous.as_ref().is_some_and(|p| p.same_container(status))
            && has_container_in(object, list, sidecar::SIDECAR_NAME)
    });
    if already_current && copy == Copy::Changed {
        // Nothing in the pod template changes: no copy to change, no patch to compute.
        return Ok(Applied {
            new: Value::Null,
            before: None,
            already_current,
            warnings,
            rendering,
        });
    }
    let (new, before) = with_sidecar(
        object,
        view,
        (previous.as_ref(), stripped_from),
        injected,
        status,
        copy,
    )?;
    Ok(Applied {
        new,
        before,
        already_current,
        warnings,
        rendering,
    })
}

/// The copy to change ([`copy_to_change`]) with the `previous` injection (in the list
/// `stripped_from`) stripped and the sidecar (`injected`: the list it goes in and the
/// container) and its `status` added; and the same parts as they were.
fn with_sidecar(
    object: &Value,
    view: Value,
    (previous, stripped_from): (Option<&InjectionStatus>, Option<&str>),
    injected: Option<(&'static str, &Value)>,
    status: &InjectionStatus,
    copy: Copy,
) -> Result<(Value, Option<Value>), MutateError> {
    let list = injected.map(|(list, _)| list);
    let (mut new, before) = copy_to_change(object, view, previous, &[stripped_from, list], copy);
    if let Some((list, container)) = injected {
        push_container(&mut new, list, container.clone());
    }
    set_annotation(
        &mut new,
        TEMPLATE_ANNOTATIONS,
        STATUS,
        &status.to_annotation()?,
    );
    Ok((new, before))
}

/// What goes into the pod: the status, and the rendered sidecar with the list it goes in
/// (`None` when the pod declares its own sidecar container, kept as an override).
type Injection<'a> = (&'a InjectionStatus, Option<(&'static str, &'a Value)>);

fn injection<'a>(
    view: &Value,
    sidecar: &'a RenderedSidecar,
    warnings: &mut Vec<String>,
) -> Injection<'a> {
    if has_container(view, sidecar::SIDECAR_NAME) {
        warnings.push(format!(
            "the pod declares its own {} container: it is kept as the collector and nothing is injected",
            sidecar::SIDECAR_NAME
        ));
        return (&USER_OVERRIDE, None);
    }
    (&sidecar.status, Some((sidecar.list, &sidecar.container)))
}

/// The status of a pod that declares its own sidecar container: nothing injected.
static USER_OVERRIDE: LazyLock<InjectionStatus> = LazyLock::new(|| InjectionStatus {
    version: 1,
    container: sidecar::SIDECAR_NAME.into(),
    placement: Placement::UserOverride,
    hash: String::new(),
    inputs: String::new(),
});

pub(super) fn mutate(object: &Value, cfg: &WebhookConfig) -> Result<Mutation, MutateError> {
    let mut applied = apply(object, cfg, Copy::Whole)?;
    let Some(spec) = applied.spec() else {
        // Not opted in (any more): the strip and the label's removal are the mutation.
        mark_managed(&mut applied.new, false);
        return Ok(Mutation::between(
            object,
            applied.new,
            applied.warnings,
            None,
        ));
    };
    let mut labels = BTreeMap::new();
    if let Some(isvc) = applied
        .new
        .pointer("/metadata/labels")
        .and_then(|l| l.get(KSERVE_ISVC_LABEL))
        .and_then(Value::as_str)
    {
        labels.insert(KSERVE_ISVC_LABEL.to_string(), isvc.to_string());
    }
    let so = scaled_object::render(spec, &labels);
    let route = interceptor_route::render(spec, &labels);
    let mut patched = if applied.already_current {
        object.clone()
    } else {
        applied.new
    };
    mark_managed(&mut patched, true);
    let mut m = Mutation::between(object, patched, applied.warnings, Some(so))
        .with_interceptor_route(route);
    m.sidecar_inputs = applied
        .rendering
        .sidecar
        .as_ref()
        .map(|s| s.status.inputs.clone());
    Ok(m)
}

/// The patch and warnings only (see [`super::admission_patch`]).
pub(super) fn admission_patch(
    object: &Value,
    cfg: &WebhookConfig,
) -> Result<AdmissionPatch, MutateError> {
    let applied = apply(object, cfg, Copy::Changed)?;
    // The copies hold the pod template only; the label is on the Deployment's metadata,
    // which comes first in a Deployment (as in the whole object's diff).
    let mut patch = managed_label_patch(object, applied.spec().is_some());
    if !applied.already_current {
        let template = json_patch::diff(applied.before.as_ref().unwrap_or(object), &applied.new);
        patch.0.extend(template.0);
    }
    Ok(AdmissionPatch {
        patch,
        warnings: applied.warnings,
    })
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

/// The operations that set or remove the managed label on `object` (none when it is as it
/// should be). Every Deployment has metadata (the apiserver requires a name).
fn managed_label_patch(object: &Value, opted_in: bool) -> json_patch::Patch {
    let before = match object.pointer("/metadata/labels") {
        Some(labels) => serde_json::json!({ "metadata": { "labels": labels } }),
        None => serde_json::json!({ "metadata": {} }),
    };
    let mut after = before.clone();
    mark_managed(&mut after, opted_in);
    json_patch::diff(&before, &after)
}

/// Removes what the status annotation says was injected, and the annotation itself.
/// Lists and maps left empty by the removal are removed too. Only ever the sidecar container:
/// a status naming another container or an unknown place removes nothing.
fn strip_previous_injection(object: &mut Value, status: Option<&InjectionStatus>) {
    if let Some(list_name) = injected_list(status) {
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
