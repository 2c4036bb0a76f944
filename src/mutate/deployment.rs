//! Deployment mutation: inject (or refresh, or remove) the collector sidecar.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde_json::Value;

use json_patch::PatchOperation;
use json_patch::jsonptr::Pointer;

use super::deployment_text::DeploymentText;
use super::injection_status::{InjectionStatus, Placement};
use super::patch_text;
use super::rendering::{self, RenderedSidecar, Rendering};
use super::template_patch::{self, Change, LISTS, TemplateShape};
use super::{AdmissionPatch, MutateError, Mutation, set_annotation};
use crate::annotations::{AutoscalingSpec, STATUS};
use crate::config::WebhookConfig;
use crate::json_path;
use crate::render::{RenderError, interceptor_route, scaled_object, sidecar};
use crate::workload::{
    KSERVE_ISVC_LABEL, MANAGED_LABEL, MANAGED_LABEL_VALUE, Workload, WorkloadKind,
};

const POD_SPEC: [&str; 3] = ["spec", "template", "spec"];
const TEMPLATE_META: [&str; 3] = ["spec", "template", "metadata"];
const TEMPLATE_ANNOTATIONS: [&str; 4] = ["spec", "template", "metadata", "annotations"];

/// The Deployment a mutation reads: the whole object (the caller wants the patched object),
/// or its text (admission: the outline is stripped in place, and the pod template's
/// operations are written from its shape).
enum Source<'o> {
    Whole(&'o Value),
    Text(&'o mut DeploymentText),
}

/// What the mutation changes.
enum Changed {
    /// [`Source::Whole`]: the object stripped of a previous injection, with the sidecar and
    /// its status added.
    Object(Value),
    /// [`Source::Text`]: the pod template's operations (none when `already_current`).
    Operations(Vec<PatchOperation>),
}

/// A Deployment taken through the mutation, before the caller builds what it needs from it.
struct Applied {
    changed: Changed,
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

/// The object stripped of the `previous` injection (what the annotations and the sidecar
/// are read from), and its template's shape when it was read from text.
type Stripped<'o> = (Cow<'o, Value>, Option<&'o TemplateShape>);

fn stripped<'o>(source: Source<'o>, previous: Option<&InjectionStatus>) -> Stripped<'o> {
    match source {
        Source::Whole(object) => {
            let mut view = object.clone();
            strip_previous_injection(&mut view, previous);
            (Cow::Owned(view), None)
        }
        Source::Text(text) => {
            strip_previous_injection(&mut text.outline, previous);
            let text: &DeploymentText = text;
            (Cow::Borrowed(&text.outline), Some(&text.shape))
        }
    }
}

/// What the `injection` (none: the strip only) makes of the object stripped of an injection in
/// the list `stripped_from`: the object with the injection added, or (from text) the
/// template's operations. `None` (only from text): the object is to be read whole (see
/// [`template_patch::operations`]).
fn changed(
    (view, shape): Stripped,
    stripped_from: Option<&str>,
    injection: Option<&Injection>,
) -> Option<Changed> {
    if let Some(shape) = shape {
        let change = match injection {
            Some(i) => Change::Inject {
                status: &i.annotation,
                list: i.sidecar.map(|(list, _)| list),
            },
            None => Change::Strip,
        };
        let ops = template_patch::operations(shape, stripped_from, change);
        return ops.map(Changed::Operations);
    }
    let mut new = view.into_owned();
    if let Some(injection) = injection {
        if let Some((list, container)) = injection.sidecar {
            push_container(&mut new, list, container.clone());
        }
        let status = &injection.annotation;
        set_annotation(&mut new, &TEMPLATE_ANNOTATIONS, STATUS, status);
    }
    Some(Changed::Object(new))
}

/// The list a previous injection put the sidecar in, if the status says so.
fn injected_list(status: Option<&InjectionStatus>) -> Option<&'static str> {
    status
        .filter(|s| s.container == sidecar::SIDECAR_NAME)
        .and_then(|s| s.placement.list())
}

/// What a previous injection left: its status, the list the status names, and which lists
/// hold a container named as the sidecar.
struct Previous {
    status: Option<InjectionStatus>,
    list: Option<&'static str>,
    sidecar_in: [bool; 2],
}

impl Previous {
    fn read(object: &Value) -> Previous {
        let status = InjectionStatus::read(object);
        Previous {
            list: injected_list(status.as_ref()),
            status,
            sidecar_in: {
                let pod = json_path::get(object, &POD_SPEC);
                LISTS.map(|list| has_container_in(pod, list, sidecar::SIDECAR_NAME))
            },
        }
    }

    fn sidecar_in(&self, list: &str) -> bool {
        LISTS
            .iter()
            .zip(self.sidecar_in)
            .any(|(l, found)| *l == list && found)
    }

    /// Whether stripping the injection removes a container.
    fn strips(&self) -> bool {
        self.list.is_some_and(|list| self.sidecar_in(list))
    }

    /// Whether a container named as the sidecar is left after the strip (which removes those
    /// of the list the status names): the pod declares its own.
    fn sidecar_left(&self) -> bool {
        LISTS
            .iter()
            .zip(self.sidecar_in)
            .any(|(l, found)| found && self.list != Some(*l))
    }
}

/// Strips a previous injection and injects the sidecar again, on a copy of the source.
/// `None` (only from text): the change removes a container from a list, so the containers
/// that shift are compared, or the template is odd: the object is to be read whole.
fn apply(source: Source, cfg: &WebhookConfig) -> Result<Option<Applied>, MutateError> {
    let previous = Previous::read(match &source {
        Source::Whole(object) => object,
        Source::Text(text) => &text.outline,
    });
    let from_text = matches!(source, Source::Text(_));
    let view = stripped(source, previous.status.as_ref());
    let workload = Workload::from_object(WorkloadKind::Deployment, &view.0);
    let rendering = rendering::of(&workload, cfg)?;
    let mut warnings = match &rendering.parsed {
        Ok((_, warnings)) => warnings.clone(),
        Err(invalid) => return Err(invalid.clone().into()),
    };
    let Some(sidecar) = rendering.sidecar.as_ref() else {
        // Not opted in (any more), or no sidecar: the strip is the whole change.
        if previous.strips() && from_text {
            return Ok(None);
        }
        let Some(changed) = changed(view, previous.list, None) else {
            return Ok(None);
        };
        return Ok(Some(Applied {
            changed,
            already_current: false,
            warnings,
            rendering,
        }));
    };
    let injection = injection(previous.sidecar_left(), sidecar, &mut warnings)?;
    // Same container as the stored one: keep the stored container as the apiserver
    // defaulted it (imagePullPolicy, terminationMessagePath, ...) and the stored status
    // (an older webhook's, perhaps), so an UPDATE that changes nothing gets an empty
    // patch and an upgrade of the webhook restarts only the pods whose sidecar changes.
    let already_current = injection.sidecar.is_some_and(|(list, _)| {
        let same = previous
            .status
            .as_ref()
            .is_some_and(|p| p.same_container(injection.status));
        same && previous.sidecar_in(list)
    });
    let changed = match (from_text, already_current, previous.strips()) {
        // Nothing in the pod template changes: no operations to write.
        (true, true, _) => Changed::Operations(Vec::new()),
        (true, false, true) => return Ok(None),
        _ => match changed(view, previous.list, Some(&injection)) {
            Some(changed) => changed,
            None => return Ok(None),
        },
    };
    drop(injection); // It borrows `rendering`, which moves into the result.
    Ok(Some(Applied {
        changed,
        already_current,
        warnings,
        rendering,
    }))
}

/// What goes into the pod: the status and its annotation text, and the rendered sidecar with
/// the list it goes in (`None` when the pod declares its own sidecar container, kept as an
/// override).
struct Injection<'a> {
    status: &'a InjectionStatus,
    annotation: Cow<'a, str>,
    sidecar: Option<(&'static str, &'a Value)>,
}

/// `declared`: the pod declares its own sidecar container ([`Previous::sidecar_left`]).
fn injection<'a>(
    declared: bool,
    sidecar: &'a RenderedSidecar,
    warnings: &mut Vec<String>,
) -> Result<Injection<'a>, RenderError> {
    if declared {
        warnings.push(format!(
            "the pod declares its own {} container: it is kept as the collector and nothing is injected",
            sidecar::SIDECAR_NAME
        ));
        return Ok(Injection {
            status: &USER_OVERRIDE,
            annotation: Cow::Owned(USER_OVERRIDE.to_annotation()?),
            sidecar: None,
        });
    }
    Ok(Injection {
        status: &sidecar.status,
        annotation: Cow::Borrowed(&sidecar.status_annotation),
        sidecar: Some((sidecar.list, &sidecar.container)),
    })
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
    let read_whole = || RenderError::new("the Deployment", "read whole, it asks to be read whole");
    let Some(mut applied) = apply(Source::Whole(object), cfg)? else {
        return Err(read_whole().into());
    };
    let mut new = match &mut applied.changed {
        Changed::Object(new) => std::mem::take(new),
        Changed::Operations(_) => return Err(read_whole().into()),
    };
    let Some(spec) = applied.spec() else {
        // Not opted in (any more): the strip and the label's removal are the mutation.
        mark_managed(&mut new, false);
        return Ok(Mutation::between(object, new, applied.warnings, None));
    };
    let mut labels = BTreeMap::new();
    if let Some(isvc) = new
        .get("metadata")
        .and_then(|m| m.get("labels"))
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
        new
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

/// The patch and warnings only (see [`super::deployment_patch`]), for a Deployment
/// read from its text.
/// `None`: the Deployment is to be read whole (see [`apply`]).
pub(super) fn admission_patch(
    mut text: DeploymentText,
    cfg: &WebhookConfig,
) -> Option<Result<AdmissionPatch, MutateError>> {
    let applied = match apply(Source::Text(&mut text), cfg) {
        Ok(Some(applied)) => applied,
        Ok(None) => return None,
        Err(e) => return Some(Err(e)),
    };
    // The template's operations follow the label's: the label is on the Deployment's
    // metadata, which comes first in a Deployment (as in the whole object's diff).
    let mut patch = managed_label_patch(&text.outline, applied.spec().is_some());
    if let Changed::Operations(ops) = applied.changed {
        patch.0.extend(ops);
    }
    let patch = match patch.0.is_empty() {
        true => Ok(None),
        false => patch_text::write(&patch.0, applied.rendering.sidecar.as_ref())
            .map(Some)
            .map_err(MutateError::from),
    };
    Some(patch.map(|patch| AdmissionPatch {
        patch,
        warnings: applied.warnings,
    }))
}

/// Sets (opted in) or removes the label that lets the reconciler watch the Deployments this
/// webhook admitted opted in, in full, by label selector. Metadata only: neither the
/// generation nor the pods change with it.
fn mark_managed(object: &mut Value, opted_in: bool) {
    if opted_in {
        super::set_annotation(
            object,
            &["metadata", "labels"],
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

const LABELS_PATH: &Pointer = Pointer::from_static("/metadata/labels");
const MANAGED_LABEL_PATH: &Pointer =
    Pointer::from_static("/metadata/labels/llm-autoscale.io~1managed");

/// The operations that set or remove the managed label on `object` (none when it is as it
/// should be): those `json_patch::diff` gives between the object and the object after
/// [`mark_managed`], written without building either. Every Deployment has metadata (the
/// apiserver requires a name).
fn managed_label_patch(object: &Value, opted_in: bool) -> json_patch::Patch {
    use json_patch::{AddOperation, RemoveOperation, ReplaceOperation};
    let labels = json_path::get(object, &["metadata", "labels"]).and_then(Value::as_object);
    let ours = labels.and_then(|l| l.get(MANAGED_LABEL));
    let label_path = || MANAGED_LABEL_PATH.to_buf();
    let value = || Value::String(MANAGED_LABEL_VALUE.into());
    let op = match (opted_in, labels, ours) {
        (true, None, _) => PatchOperation::Add(AddOperation {
            path: LABELS_PATH.to_buf(),
            value: serde_json::json!({ MANAGED_LABEL: MANAGED_LABEL_VALUE }),
        }),
        (true, Some(_), None) => PatchOperation::Add(AddOperation {
            path: label_path(),
            value: value(),
        }),
        (true, Some(_), Some(v)) if *v != value() => PatchOperation::Replace(ReplaceOperation {
            path: label_path(),
            value: value(),
        }),
        // The labels held only ours: the map goes with it, as `mark_managed` removes it.
        (false, Some(l), Some(_)) if l.len() == 1 => PatchOperation::Remove(RemoveOperation {
            path: LABELS_PATH.to_buf(),
        }),
        (false, Some(_), Some(_)) => PatchOperation::Remove(RemoveOperation { path: label_path() }),
        _ => return json_patch::Patch(Vec::new()),
    };
    json_patch::Patch(vec![op])
}

/// Removes what the status annotation says was injected, and the annotation itself.
/// Lists and maps left empty by the removal are removed too. Only ever the sidecar container:
/// a status naming another container or an unknown place removes nothing.
fn strip_previous_injection(object: &mut Value, status: Option<&InjectionStatus>) {
    if let Some(list_name) = injected_list(status) {
        if let Some(pod) = json_path::get_mut(object, &POD_SPEC).and_then(Value::as_object_mut) {
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
    let Some(template_meta) =
        json_path::get_mut(object, &TEMPLATE_META).and_then(Value::as_object_mut)
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

/// Whether the pod spec's `list` holds a container called `name`.
fn has_container_in(pod: Option<&Value>, list: &str, name: &str) -> bool {
    pod.and_then(|pod| pod.get(list))
        .and_then(Value::as_array)
        .is_some_and(|l| {
            l.iter()
                .any(|c| c.get("name").and_then(Value::as_str) == Some(name))
        })
}

fn push_container(object: &mut Value, list: &str, container: Value) {
    if let Some(pod) = json_path::ensure_object(object, &POD_SPEC) {
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
    fn managed_label_operations_are_the_diffs_of_marking_the_object() {
        let labels = ["metadata", "labels"];
        let pointer = |t: &[&str]| json_patch::jsonptr::PointerBuf::from_tokens(t.iter().copied());
        assert_eq!(LABELS_PATH.to_buf(), pointer(&labels));
        assert_eq!(
            MANAGED_LABEL_PATH.to_buf(),
            pointer(&["metadata", "labels", MANAGED_LABEL])
        );
        for labels in [
            None,
            Some(json!({})),
            Some(json!({"app": "m"})),
            Some(json!({MANAGED_LABEL: "true"})),
            Some(json!({MANAGED_LABEL: "false"})),
            Some(json!({"app": "m", MANAGED_LABEL: "true", "z": "1"})),
        ] {
            let mut object = json!({"metadata": {"name": "m"}});
            if let Some(labels) = &labels {
                object["metadata"]["labels"] = labels.clone();
            }
            for opted_in in [true, false] {
                let mut marked = object.clone();
                mark_managed(&mut marked, opted_in);
                assert_eq!(
                    managed_label_patch(&object, opted_in),
                    json_patch::diff(&object, &marked),
                    "labels {labels:?}, opted in {opted_in}"
                );
            }
        }
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
