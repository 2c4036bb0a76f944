//! The pod template's patch operations for a Deployment read from its text: the operations
//! `json_patch::diff` gives between the template before and after the mutation (as the full
//! mutation's patch has them), written from the template's shape instead of diffing copies.
//!
//! On the text path the mutation changes the template in these places only, because a change
//! that removes a container is read whole (see [`super::deployment_text`]):
//! - the status annotation: removed (the strip), or set to the new status;
//! - the sidecar: added at the end of its container list, as [`SIDECAR_HOLE`], for which the
//!   patch's text ([`super::patch_text`]) has the rendered container's text;
//! - the container list a previous status names, when it is empty: the strip removes it.
//!
//! A member created on the way (the pod spec, the template's metadata, a container list or
//! the annotations) is added whole, after the members the template already had: the pod spec
//! before the metadata, as the full mutation creates them.

use json_patch::jsonptr::{Pointer, PointerBuf};
use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::{Map, Value, json};

use crate::annotations::STATUS;

/// Stands in the operations for the rendered sidecar, which they add whole (nothing in the
/// object is compared with it), so that the patch's text is written with the container's
/// text, rendered once, instead of copying and writing the container on every admission. The
/// operations hold no string of the object's (only the webhook's own: the status, the label's
/// value), so nothing else is taken for it.
pub(super) const SIDECAR_HOLE: &str = "\u{0}llm-autoscale-sidecar\u{0}";

/// The container lists of a pod spec, in [`Part::PodSpec`]'s order.
pub(super) const LISTS: [&str; 2] = ["containers", "initContainers"];

// The paths the operations write (checked against their tokens in the tests).
const SPEC: &Pointer = Pointer::from_static("/spec");
const TEMPLATE: &Pointer = Pointer::from_static("/spec/template");
const POD_SPEC: &Pointer = Pointer::from_static("/spec/template/spec");
const METADATA: &Pointer = Pointer::from_static("/spec/template/metadata");
const ANNOTATIONS: &Pointer = Pointer::from_static("/spec/template/metadata/annotations");
const STATUS_ANNOTATION: &Pointer =
    Pointer::from_static("/spec/template/metadata/annotations/llm-autoscale.io~1status");
/// The paths of [`LISTS`].
const LIST_PATHS: [&Pointer; 2] = [
    Pointer::from_static("/spec/template/spec/containers"),
    Pointer::from_static("/spec/template/spec/initContainers"),
];

/// The pod template as the Deployment's text has it, as far as the operations depend on it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemplateShape {
    /// `spec.template`: `None` when the object has no `spec`, `Some(None)` when its spec has
    /// no template.
    pub(super) template: Option<Option<Vec<Part>>>,
}

/// A member of the pod template the mutation changes, in the object's order.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Part {
    /// `metadata`, with its `annotations`.
    Metadata(Annotations),
    /// `spec`: the length of each container list it has ([`LISTS`]' order).
    PodSpec([Option<usize>; 2]),
}

/// The pod template's `annotations`.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Annotations {
    Absent,
    /// Not a JSON object: the full mutation decides what becomes of it.
    Odd,
    /// A map of `len` members, holding the status annotation's value, if any.
    Map {
        len: usize,
        status: Option<Value>,
    },
}

impl Annotations {
    pub(super) fn of(metadata: &Map<String, Value>) -> Annotations {
        match metadata.get("annotations") {
            None => Annotations::Absent,
            Some(Value::Object(a)) => Annotations::Map {
                len: a.len(),
                status: a.get(STATUS).cloned(),
            },
            Some(_) => Annotations::Odd,
        }
    }
}

/// What the mutation does to the pod template, after stripping the previous injection (which
/// removes the status annotation, and the list the status names when that list is empty).
#[derive(Clone, Copy, Debug)]
pub(super) enum Change<'a> {
    /// The strip only (not opted in any more, or no sidecar).
    Strip,
    /// Sets the status annotation to `status` and, with a `list`, adds the sidecar at its end.
    Inject {
        status: &'a str,
        list: Option<&'static str>,
    },
}

/// The operations of `change` on a template of this `shape` whose previous injection named the
/// list `stripped_from`, in the full mutation's order. `None`: the annotations are not a map,
/// so the object is to be read whole.
pub(super) fn operations(
    shape: &TemplateShape,
    stripped_from: Option<&str>,
    change: Change,
) -> Option<Vec<PatchOperation>> {
    let (status, list) = match change {
        Change::Strip => (None, None),
        Change::Inject { status, list } => (Some(status), list),
    };
    let created = |pod: bool, meta: bool| {
        let mut template = Map::new();
        if let (true, Some(list)) = (pod, list) {
            template.insert("spec".into(), json!({ list: [SIDECAR_HOLE] }));
        }
        if let (true, Some(status)) = (meta, status) {
            template.insert(
                "metadata".into(),
                json!({ "annotations": { STATUS: status } }),
            );
        }
        template
    };
    let parts = match &shape.template {
        Some(Some(parts)) => parts,
        _ if status.is_none() => return Some(Vec::new()),
        None => return Some(vec![add(SPEC, json!({ "template": created(true, true) }))]),
        Some(None) => return Some(vec![add(TEMPLATE, created(true, true).into())]),
    };
    let mut ops = Vec::new();
    for part in parts {
        match (part, status) {
            (Part::Metadata(annotations), Some(status)) => {
                ops.extend(set_status(annotations, status)?);
            }
            (Part::Metadata(annotations), None) => ops.extend(strip_status(annotations)?),
            (Part::PodSpec(lengths), _) => {
                ops.extend(list_operations(lengths, stripped_from, list))
            }
        }
    }
    let has_pod = parts.iter().any(|p| matches!(p, Part::PodSpec(_)));
    let has_metadata = parts.iter().any(|p| matches!(p, Part::Metadata(_)));
    for (name, member) in created(!has_pod, !has_metadata) {
        ops.push(add(
            if name == "spec" { POD_SPEC } else { METADATA },
            member,
        ));
    }
    Some(ops)
}

/// Removing the status annotation: the annotations go with it when it was their only member.
fn strip_status(annotations: &Annotations) -> Option<Option<PatchOperation>> {
    match annotations {
        Annotations::Odd => None,
        Annotations::Map {
            len,
            status: Some(_),
        } => Some(Some(remove(match len {
            1 => ANNOTATIONS.to_buf(),
            _ => STATUS_ANNOTATION.to_buf(),
        }))),
        Annotations::Absent | Annotations::Map { status: None, .. } => Some(None),
    }
}

/// The pod spec's operations: the sidecar added to `list`, then the removal of the empty list
/// `stripped_from` (the strip removes it, unless the sidecar goes back in it).
fn list_operations(
    lengths: &[Option<usize>; 2],
    stripped_from: Option<&str>,
    list: Option<&str>,
) -> Vec<PatchOperation> {
    let length = |list: &str| {
        LISTS
            .iter()
            .zip(lengths)
            .find_map(|(l, len)| (*l == list).then_some(*len))
            .flatten()
    };
    let mut ops: Vec<PatchOperation> = list
        .map(|l| add_sidecar(length(l), l))
        .into_iter()
        .collect();
    if let Some(emptied) = stripped_from.filter(|s| length(s) == Some(0) && Some(*s) != list) {
        ops.push(remove(list_path(emptied)));
    }
    ops
}

/// Setting the status annotation where the template has metadata.
fn set_status(annotations: &Annotations, status: &str) -> Option<Option<PatchOperation>> {
    let new = || Value::String(status.into());
    Some(match annotations {
        Annotations::Odd => return None,
        Annotations::Absent => Some(add(ANNOTATIONS, json!({ STATUS: status }))),
        Annotations::Map { status: None, .. } => Some(add(STATUS_ANNOTATION, new())),
        Annotations::Map {
            status: Some(old), ..
        } => (old.as_str() != Some(status)).then(|| {
            PatchOperation::Replace(ReplaceOperation {
                path: STATUS_ANNOTATION.to_buf(),
                value: new(),
            })
        }),
    })
}

/// Adding the sidecar at the end of `list`, of `length` when the pod spec has it.
fn add_sidecar(length: Option<usize>, list: &str) -> PatchOperation {
    let mut path = list_path(list);
    let value = match length {
        Some(n) => {
            path.push_back(n);
            SIDECAR_HOLE.into()
        }
        None => json!([SIDECAR_HOLE]),
    };
    PatchOperation::Add(AddOperation { path, value })
}

/// The path of a container list (one of [`LISTS`]).
fn list_path(list: &str) -> PointerBuf {
    match LISTS.iter().zip(LIST_PATHS).find(|(l, _)| **l == list) {
        Some((_, path)) => path.to_buf(),
        None => PointerBuf::from_tokens(["spec", "template", "spec", list]),
    }
}

fn add(path: &Pointer, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: path.to_buf(),
        value,
    })
}

fn remove(path: PointerBuf) -> PatchOperation {
    PatchOperation::Remove(RemoveOperation { path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paths_are_their_tokens() {
        let tokens = |t: &[&str]| PointerBuf::from_tokens(t.iter().copied());
        let template = ["spec", "template"];
        assert_eq!(SPEC.to_buf(), tokens(&["spec"]));
        assert_eq!(TEMPLATE.to_buf(), tokens(&template));
        assert_eq!(POD_SPEC.to_buf(), tokens(&["spec", "template", "spec"]));
        assert_eq!(METADATA.to_buf(), tokens(&["spec", "template", "metadata"]));
        let annotations = ["spec", "template", "metadata", "annotations"];
        assert_eq!(ANNOTATIONS.to_buf(), tokens(&annotations));
        let status = ["spec", "template", "metadata", "annotations", STATUS];
        assert_eq!(STATUS_ANNOTATION.to_buf(), tokens(&status));
        for list in LISTS {
            assert_eq!(list_path(list), tokens(&["spec", "template", "spec", list]));
        }
    }
}
