//! A Deployment as admission reads it from the review's JSON text: what the mutation reads or
//! changes is decoded, the rest is stepped over without being built.
//!
//! - The outline: `apiVersion`, `kind`, `metadata`'s name, namespace, annotations and labels,
//!   the pod template's metadata, and the name, image and ports of every container-shaped
//!   member of the pod spec. That is all [`Workload::from_object`](crate::workload::Workload)
//!   and the sidecar checks read.
//! - The pod template's shape ([`TemplateShape`]): which members it has, in which order, the
//!   length of each container list and the status annotation, as read (the outline is
//!   stripped of a previous injection before the mutation reads it).
//! - Nothing else: the containers' other members (their environment, often most of the
//!   object) are stepped over. The patch never needs them: it adds the sidecar past the end of
//!   a list, or adds a list or the pod template's metadata whole, and sets or removes the status
//!   annotation ([`super::template_patch`]). A patch that removes a container from a list (a
//!   stale sidecar replaced, or one removed on opt-out) would compare the containers that
//!   shift: the mutation then reads the object whole.
//!
//! Only a well-formed Deployment is read this way: `apps/v1 Deployment`; objects where
//! Kubernetes has objects (`spec`, `spec.template`, its metadata and spec); lists of objects
//! for the container lists; strings, or string maps, for the metadata read. Anything else is
//! `None`, and the caller reads the object whole, so an odd object gets exactly the answer of
//! the full mutation. Metadata the webhook does not read is not checked here: the apiserver
//! sends the typed object it decoded, converted to the webhook's version (k8s.io/apiserver
//! `pkg/admission/conversion.go` `NewVersionedAttributes`, whose `VersionedObject`
//! `pkg/admission/plugin/webhook/request/admissionreview.go` writes into the review).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::template_patch::{Annotations, LISTS, Part, TemplateShape};

/// A Deployment's outline and its pod template's shape (see the module's documentation).
pub struct DeploymentText {
    /// The members the mutation reads, shaped as in the object.
    pub(super) outline: Value,
    /// The pod template as it was read, before the mutation strips the outline.
    pub(super) shape: TemplateShape,
}

/// An object read as a [`DeploymentText`] when it is a well-formed Deployment (`None`: some
/// other kind). Decoding fails on what [`DeploymentText`] does not take.
pub struct MaybeDeployment(pub Option<DeploymentText>);

impl<'de> Deserialize<'de> for MaybeDeployment {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let top = TopText::deserialize(d)?;
        if top.api_version != "apps/v1" || top.kind != "Deployment" {
            return Ok(MaybeDeployment(None));
        }
        let mut outline = Map::new();
        outline.insert("apiVersion".into(), Value::String(top.api_version.into()));
        outline.insert("kind".into(), Value::String(top.kind.into()));
        let meta = top.metadata.0.unwrap_or_default();
        outline.insert("metadata".into(), meta.outline());
        let mut shape = TemplateShape::default();
        if let Some(spec) = top.spec.0 {
            let (spec, template) = spec.into_outline();
            outline.insert("spec".into(), spec);
            shape.template = Some(template);
        }
        Ok(MaybeDeployment(Some(DeploymentText {
            outline: Value::Object(outline),
            shape,
        })))
    }
}

impl DeploymentText {
    /// Reads `text` when it is a well-formed Deployment.
    pub fn read(text: &str) -> Option<DeploymentText> {
        serde_json::from_str::<MaybeDeployment>(text).ok()?.0
    }

    /// Sets the namespace of an object that names none (the apiserver sets it before
    /// admission; a test client may not).
    pub fn default_namespace(&mut self, namespace: Option<&str>) {
        let (Some(ns), Some(meta)) = (namespace, self.outline.get_mut("metadata")) else {
            return;
        };
        if let Some(meta) = meta.as_object_mut() {
            if !meta.contains_key("namespace") {
                meta.insert("namespace".into(), Value::String(ns.into()));
            }
        }
    }
}

/// A member that may be absent but, when present, is not null (a null takes the whole
/// object's path).
struct Present<T>(Option<T>);

impl<T> Default for Present<T> {
    fn default() -> Self {
        Present(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Present<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(|t| Present(Some(t)))
    }
}

#[derive(Deserialize)]
struct TopText<'a> {
    #[serde(rename = "apiVersion", borrow)]
    api_version: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    metadata: Present<MetadataText>,
    #[serde(default)]
    spec: Present<SpecText>,
}

/// The metadata the webhook reads, with ObjectMeta's types.
#[derive(Default, Deserialize)]
struct MetadataText {
    name: Option<String>,
    namespace: Option<String>,
    annotations: Option<StringMap>,
    labels: Option<StringMap>,
}

impl MetadataText {
    fn outline(self) -> Value {
        let mut m = Map::new();
        if let Some(name) = self.name {
            m.insert("name".into(), Value::String(name));
        }
        if let Some(ns) = self.namespace {
            m.insert("namespace".into(), Value::String(ns));
        }
        if let Some(a) = self.annotations {
            m.insert("annotations".into(), Value::Object(a.0));
        }
        if let Some(l) = self.labels {
            m.insert("labels".into(), Value::Object(l.0));
        }
        Value::Object(m)
    }
}

/// A map of strings to strings (ObjectMeta's annotations and labels), read as the JSON object
/// it becomes in the outline. A key given twice keeps its last value, as in a map.
struct StringMap(Map<String, Value>);

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StringMapVisitor;
        impl<'de> Visitor<'de> for StringMapVisitor {
            type Value = StringMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StringMap, A::Error> {
                let mut out = Map::new();
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    out.insert(key, Value::String(value));
                }
                Ok(StringMap(out))
            }
        }
        d.deserialize_map(StringMapVisitor)
    }
}

#[derive(Deserialize)]
struct SpecText {
    #[serde(default)]
    template: Present<TemplateText>,
}

impl SpecText {
    /// The spec's outline, and its template's parts as the template patch reads them
    /// (`None`: no template).
    fn into_outline(self) -> (Value, Option<Vec<Part>>) {
        let mut s = Map::new();
        let Some(t) = self.template.0 else {
            return (Value::Object(s), None);
        };
        let (mut metadata, mut pod) = (t.metadata, t.pod);
        let (mut tm, mut parts) = (Map::new(), Vec::new());
        for part in t.order.iter().flatten() {
            match part {
                TemplatePart::Metadata => {
                    let meta = metadata.take().unwrap_or_default();
                    parts.push(Part::Metadata(Annotations::of(&meta)));
                    tm.insert("metadata".into(), Value::Object(meta));
                }
                TemplatePart::Spec => {
                    let outline = pod.take().map(|p| p.outline).unwrap_or_default();
                    let length = |list| outline.get(list).and_then(Value::as_array).map(Vec::len);
                    parts.push(Part::PodSpec(LISTS.map(length)));
                    tm.insert("spec".into(), Value::Object(outline));
                }
            }
        }
        s.insert("template".into(), Value::Object(tm));
        (Value::Object(s), Some(parts))
    }
}

#[derive(Clone, Copy)]
enum TemplatePart {
    Metadata,
    Spec,
}

/// `spec.template`: its metadata, its pod spec, and which came first.
struct TemplateText {
    metadata: Option<Map<String, Value>>,
    pod: Option<PodText>,
    order: [Option<TemplatePart>; 2],
}

impl<'de> Deserialize<'de> for TemplateText {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TemplateVisitor)
    }
}

struct TemplateVisitor;

impl<'de> Visitor<'de> for TemplateVisitor {
    type Value = TemplateText;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a pod template")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut t = TemplateText {
            metadata: None,
            pod: None,
            order: [None; 2],
        };
        let mut seen = 0;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let part = match key.0.as_ref() {
                "metadata" if t.metadata.is_none() => {
                    t.metadata = Some(map.next_value()?);
                    TemplatePart::Metadata
                }
                "spec" if t.pod.is_none() => {
                    t.pod = Some(map.next_value()?);
                    TemplatePart::Spec
                }
                "metadata" | "spec" => return Err(de::Error::custom("duplicate member")),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if let Some(slot) = t.order.get_mut(seen) {
                *slot = Some(part);
            }
            seen += 1;
        }
        Ok(t)
    }
}

/// The pod spec's outline: every container-shaped member (the lists' containers, and any
/// other object with an image or ports), in its order.
struct PodText {
    outline: Map<String, Value>,
}

impl<'de> Deserialize<'de> for PodText {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PodVisitor)
    }
}

struct PodVisitor;

impl<'de> Visitor<'de> for PodVisitor {
    type Value = PodText;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a pod spec")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pod = PodText {
            outline: Map::new(),
        };
        let mut seen: Vec<Key<'de>> = Vec::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if seen.iter().any(|k| k.0 == key.0) {
                return Err(de::Error::custom("duplicate member"));
            }
            seen.push(Key(key.0.clone()));
            if let Some(list) = LISTS.iter().find(|l| **l == key.0) {
                let outlines: Vec<Outline> = map.next_value()?;
                let outlines = outlines.into_iter().map(|o| Value::Object(o.0)).collect();
                pod.outline.insert((*list).into(), Value::Array(outlines));
                continue;
            }
            let raw: &'de RawValue = map.next_value()?;
            if may_be_container(raw) {
                let member: Value = serde_json::from_str(raw.get()).map_err(de::Error::custom)?;
                if let Value::Object(m) = &member {
                    if m.contains_key("image") || m.contains_key("ports") {
                        pod.outline.insert(key.0.into_owned(), container_outline(m));
                    }
                }
            }
        }
        Ok(pod)
    }
}

/// Whether a pod-spec member other than the container lists might be an object with an
/// `image` or `ports` member (a key written with escapes is looked at too).
fn may_be_container(raw: &RawValue) -> bool {
    let text = raw.get();
    text.starts_with('{')
        && (text.contains("\"image\"") || text.contains("\"ports\"") || text.contains('\\'))
}

/// Of a container-shaped JSON object, what identifies it and what it declares: `name`,
/// `image` and `ports` (not its environment, often most of the object).
fn container_outline(container: &Map<String, Value>) -> Value {
    Value::Object(
        container
            .iter()
            .filter(|(k, _)| matches!(k.as_str(), "name" | "image" | "ports"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// A container's [`container_outline`], decoded from its text (the rest is stepped over).
struct Outline(Map<String, Value>);

impl<'de> Deserialize<'de> for Outline {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(OutlineVisitor)
    }
}

struct OutlineVisitor;

impl<'de> Visitor<'de> for OutlineVisitor {
    type Value = Outline;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a container")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Outline, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if matches!(key.0.as_ref(), "name" | "image" | "ports") {
                let value: Value = map.next_value()?;
                if out.insert(key.0.into_owned(), value).is_some() {
                    return Err(de::Error::custom("duplicate member"));
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Outline(out))
    }
}

/// A map key, borrowed from the text when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(object: &Value) -> Option<Value> {
        let text = object.to_string();
        DeploymentText::read(&text).map(|mut d| {
            d.default_namespace(Some("from-request"));
            d.outline
        })
    }

    #[test]
    fn the_outline_has_what_the_mutation_reads_in_the_objects_order() {
        let d = json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"labels": {"b": "1", "a": "2"}, "name": "m",
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"replicas": 2, "template": {
                "spec": {"initContainers": [{"name": "i", "image": "busybox", "env": []}],
                         "volumes": [{"name": "v"}],
                         "odd": {"ports": [{"containerPort": 1}], "x": 1},
                         "affinity": {"nodeAffinity": {}},
                         "containers": [{"ports": [], "name": "vllm", "args": ["a"]}]},
                "metadata": {"labels": {"app": "m"}}}}
        });
        let outline = read(&d).unwrap();
        assert_eq!(
            outline,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "m", "namespace": "from-request", "labels": {"a": "2", "b": "1"}},
                "spec": {"template": {
                    "spec": {"initContainers": [{"name": "i", "image": "busybox"}],
                             "odd": {"ports": [{"containerPort": 1}]},
                             "containers": [{"ports": [], "name": "vllm"}]},
                    "metadata": {"labels": {"app": "m"}}}}
            })
        );
        // The template's shape, in the object's order: the pod spec, then the metadata.
        let text = d.to_string();
        let shape = DeploymentText::read(&text).unwrap().shape;
        assert_eq!(
            shape.template,
            Some(Some(vec![
                Part::PodSpec([Some(1), Some(1)]),
                Part::Metadata(Annotations::Absent)
            ]))
        );
        let statuses = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {
            "template": {"metadata": {"annotations": {"a": "1", "llm-autoscale.io/status": "s"}}}}});
        let shape = DeploymentText::read(&statuses.to_string()).unwrap().shape;
        let status = Some(json!("s"));
        let annotations = Annotations::Map { len: 2, status };
        assert_eq!(
            shape.template,
            Some(Some(vec![Part::Metadata(annotations)]))
        );
        let bare = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {}});
        let shape = DeploymentText::read(&bare.to_string()).unwrap().shape;
        assert_eq!(shape.template, Some(None));
    }

    #[test]
    fn anything_unusual_is_left_to_the_whole_object() {
        let ok = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}});
        assert!(read(&ok).is_some());
        for odd in [
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet"}),
            json!({"kind": "Deployment"}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": null}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"annotations": {"a": 1}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": null}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": 3}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": "x"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "spec": {"template": {"metadata": null}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "spec": {"template": {"spec": {"containers": null}}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "spec": {"template": {"spec": {"containers": ["x"]}}}}),
        ] {
            assert!(read(&odd).is_none(), "{odd}");
        }
        // Duplicate members, which a JSON value would resolve by keeping the last.
        for text in [
            r#"{"apiVersion":"apps/v1","kind":"Deployment","spec":{},"spec":{}}"#,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","spec":{"template":{"spec":{},"spec":{}}}}"#,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","spec":{"template":{"spec":{"containers":[],"containers":[]}}}}"#,
        ] {
            assert!(DeploymentText::read(text).is_none(), "{text}");
        }
    }
}
