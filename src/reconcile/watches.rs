//! What the reconciler watches and keeps in memory, and where one reconcile reads its
//! Deployment from. Pure: selectors, the trimming applied before objects enter a store, and
//! the decision taken from a Deployment's metadata alone.
//!
//! Three watches, so that memory grows with the opted-in workloads, not with the cluster:
//!
//! - Deployments labelled [`MANAGED_LABEL`] (the webhook sets it on every Deployment it admits
//!   opted in): in full, by label selector.
//! - Every Deployment, metadata only: [`DeploymentMeta`] says it is a metadata type
//!   (`Resource::metadata_api`), so kube-client lists and watches it as
//!   `PartialObjectMetadata` (`kube-client` `src/api/core_methods.rs`), and its deserializer
//!   keeps the name, namespace, uid, the managed label and this product's annotations, skipping
//!   the rest (managedFields, kubectl's last-applied-configuration, ...) without allocating
//!   it. This is what catches Deployments the webhook never saw: created before it was
//!   installed, or while it was unreachable (`failurePolicy: Ignore`).
//! - ScaledObjects labelled `app.kubernetes.io/managed-by: llm-autoscale-webhook`: the ones
//!   this product made, read from the store instead of a GET per reconcile.
//!
//! What the metadata watch cannot see: the pod template. A Deployment whose opt-in sits only
//! on `spec.template.metadata.annotations` (where KServe copies an InferenceService's
//! annotations) and that the webhook never admitted carries nothing in its metadata that says
//! so; it is reconciled from the first admission on (KServe updates its predictor Deployments
//! whenever the InferenceService changes). An opt-in on `metadata.annotations` is seen, and so
//! is a Deployment that lost the label while a ScaledObject managed for it still exists (the
//! opt-out).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::annotations::PREFIX;
use crate::keda::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::workload::{MANAGED_LABEL, MANAGED_LABEL_VALUE};

/// The annotation whose presence on a Deployment's metadata means "opted in" (its value is
/// judged by the full parse, once the Deployment is read).
const ENABLED: &str = "llm-autoscale.io/enabled";

/// Label selector of the Deployments watched in full.
pub fn labelled_deployments() -> String {
    format!("{MANAGED_LABEL}={MANAGED_LABEL_VALUE}")
}

/// Label selector of the ScaledObjects this product manages.
pub fn managed_scaled_objects() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY}")
}

/// Where one reconcile gets the full Deployment it plans for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Labelled by the webhook: from the store of labelled Deployments.
    Store,
    /// Not labelled, but its metadata opts in (never admitted by the webhook), or a
    /// ScaledObject managed for it still exists (opted out): read it from the API.
    Read,
    /// Neither: nothing to do, and no request.
    Nothing,
}

/// Decides from the (trimmed) metadata and whether a ScaledObject managed for this
/// Deployment is in the store.
pub fn source_of(meta: &ObjectMeta, has_managed_scaled_object: bool) -> Source {
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_LABEL))
        .is_some_and(|v| v == MANAGED_LABEL_VALUE);
    let opted_in = meta
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ENABLED));
    if labelled {
        Source::Store
    } else if opted_in || has_managed_scaled_object {
        Source::Read
    } else {
        Source::Nothing
    }
}

/// What the reconciler keeps of every Deployment of the cluster: name, namespace, uid, the
/// managed label and the `llm-autoscale.io/` annotations, nothing else. A metadata-only
/// resource (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeploymentMeta {
    pub metadata: ObjectMeta,
}

impl Resource for DeploymentMeta {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Deployment::kind(&())
    }
    fn group(_: &()) -> Cow<'_, str> {
        Deployment::group(&())
    }
    fn version(_: &()) -> Cow<'_, str> {
        Deployment::version(&())
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Deployment::plural(&())
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    fn metadata_api() -> bool {
        true
    }
}

impl<'de> Deserialize<'de> for DeploymentMeta {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjectVisitor)
    }
}

/// `{"metadata": {...}, ...}`: only `metadata` is read.
struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = DeploymentMeta;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a PartialObjectMetadata")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DeploymentMeta, A::Error> {
        let mut out = DeploymentMeta::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0 == "metadata" {
                out.metadata = map.next_value_seed(MetaSeed)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

struct MetaSeed;

impl<'de> DeserializeSeed<'de> for MetaSeed {
    type Value = ObjectMeta;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ObjectMeta, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetaSeed {
    type Value = ObjectMeta;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an ObjectMeta")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectMeta, A::Error> {
        let mut meta = ObjectMeta::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "name" => meta.name = map.next_value()?,
                "namespace" => meta.namespace = map.next_value()?,
                "uid" => meta.uid = map.next_value()?,
                "labels" => {
                    meta.labels = map.next_value_seed(KeptEntries(|k: &str| k == MANAGED_LABEL))?
                }
                "annotations" => {
                    meta.annotations =
                        map.next_value_seed(KeptEntries(|k: &str| k.starts_with(PREFIX)))?
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(meta)
    }
}

/// A string map of which only the entries whose key passes the filter are kept (`None` when
/// none is); the others are skipped unread.
struct KeptEntries<F>(F);

impl<'de, F: Fn(&str) -> bool> DeserializeSeed<'de> for KeptEntries<F> {
    type Value = Option<BTreeMap<String, String>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, F: Fn(&str) -> bool> Visitor<'de> for KeptEntries<F> {
    type Value = Option<BTreeMap<String, String>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of strings")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kept = BTreeMap::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if (self.0)(&key.0) {
                kept.insert(key.0.into_owned(), map.next_value::<String>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok((!kept.is_empty()).then_some(kept))
    }
}

/// A key, borrowed from the input where the deserializer allows it (no allocation).
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// What the stores of full objects (labelled Deployments, managed ScaledObjects) drop:
/// managedFields, which the reconciler never reads and which can be as large as the object.
pub fn trim_managed_fields(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
        let map = |kv: &[(&str, &str)]| {
            (!kv.is_empty()).then(|| {
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>()
            })
        };
        ObjectMeta {
            name: Some("m".into()),
            namespace: Some("llm".into()),
            uid: Some("u-1".into()),
            resource_version: Some("7".into()),
            labels: map(labels),
            annotations: map(annotations),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn labelled_deployments_come_from_the_store() {
        let m = meta(&[(MANAGED_LABEL, "true")], &[]);
        assert_eq!(source_of(&m, false), Source::Store);
        assert_eq!(source_of(&m, true), Source::Store);
    }

    #[test]
    fn unlabelled_ones_are_read_only_when_opted_in_or_still_owning_a_scaled_object() {
        let never_admitted = meta(&[], &[(ENABLED, "true")]);
        assert_eq!(source_of(&never_admitted, false), Source::Read);
        let opted_out = meta(&[("app", "x")], &[]);
        assert_eq!(source_of(&opted_out, true), Source::Read);
        assert_eq!(source_of(&opted_out, false), Source::Nothing);
        // Another value of the label is not the webhook's.
        let other = meta(&[(MANAGED_LABEL, "false")], &[]);
        assert_eq!(source_of(&other, false), Source::Nothing);
        // A disabled opt-in is still read: the full parse decides (and deletes what exists).
        let disabled = meta(&[], &[(ENABLED, "false")]);
        assert_eq!(source_of(&disabled, false), Source::Read);
    }

    #[test]
    fn only_what_is_read_is_kept_of_a_deployments_metadata() {
        let item = serde_json::json!({
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": {
                "name": "m", "namespace": "llm", "uid": "u-1", "resourceVersion": "7",
                "generation": 3, "creationTimestamp": "2026-11-30T10:00:00Z",
                "labels": {MANAGED_LABEL: "true", "app": "x"},
                "annotations": {
                    ENABLED: "true",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"a\": 1}",
                },
                "finalizers": ["f"],
                "managedFields": [{"manager": "kubectl", "operation": "Update",
                    "fieldsV1": {"f:metadata": {"f:labels": {}}}}],
            }
        });
        let m: DeploymentMeta = serde_json::from_str(&item.to_string()).unwrap();
        let mut expected = meta(&[(MANAGED_LABEL, "true")], &[(ENABLED, "true")]);
        expected.resource_version = None;
        assert_eq!(m.metadata, expected);
        assert_eq!(source_of(&m.metadata, false), Source::Store);

        let bare: DeploymentMeta = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "b", "labels": {"app": "x"}, "annotations": null}
        }))
        .unwrap();
        assert_eq!(bare.metadata.labels, None);
        assert_eq!(bare.metadata.annotations, None);
        assert_eq!(bare.metadata.name.as_deref(), Some("b"));
        assert!(serde_json::from_str::<DeploymentMeta>("[1]").is_err());
        assert!(DeploymentMeta::metadata_api());
        assert_eq!(DeploymentMeta::plural(&()), "deployments");
    }
}
