//! Objects the reconciler watches metadata-only, and what it keeps of each: name, namespace,
//! uid and the few labels and annotations it reads, nothing else.
//!
//! Each type says it is a metadata type (`Resource::metadata_api`), so kube-client lists and
//! watches it as `PartialObjectMetadata` (`kube-client` `src/api/core_methods.rs`), and its
//! deserializer keeps only those fields, skipping the rest (managedFields, kubectl's
//! last-applied-configuration, other tools' labels, ...) without allocating it: trimming
//! after decoding would allocate every field first.
//!
//! - [`DeploymentMeta`]: every Deployment of the cluster (see [`super::watches`]).
//! - [`InferenceServiceMeta`]: every KServe InferenceService, for its uid and autoscaler
//!   class, when the CRD is installed.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::annotations::PREFIX;
use crate::workload::MANAGED_LABEL;

/// KServe's annotation naming the autoscaler of an InferenceService (kserve/kserve
/// `pkg/constants/constants.go`, `AutoscalerClass`).
pub const AUTOSCALER_CLASS: &str = "serving.kserve.io/autoscalerClass";

/// An object of kind `K` as the reconciler keeps it: its metadata, trimmed to what `K` keeps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trimmed<K> {
    pub metadata: ObjectMeta,
    kind: PhantomData<K>,
}

/// A kind the reconciler watches metadata-only: where its API is and which labels and
/// annotations it keeps.
pub trait TrimmedKind {
    const KIND: &'static str;
    const GROUP: &'static str;
    const VERSION: &'static str;
    const PLURAL: &'static str;
    fn keeps_label(key: &str) -> bool;
    fn keeps_annotation(key: &str) -> bool;
}

/// What the reconciler keeps of every Deployment of the cluster: name, namespace, uid, the
/// managed label and the `llm-autoscale.io/` annotations.
pub type DeploymentMeta = Trimmed<DeploymentKind>;

/// What the reconciler keeps of an InferenceService: name, namespace, uid and
/// [`AUTOSCALER_CLASS`].
pub type InferenceServiceMeta = Trimmed<InferenceServiceKind>;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeploymentKind;

impl TrimmedKind for DeploymentKind {
    const KIND: &'static str = <Deployment as k8s_openapi::Resource>::KIND;
    const GROUP: &'static str = <Deployment as k8s_openapi::Resource>::GROUP;
    const VERSION: &'static str = <Deployment as k8s_openapi::Resource>::VERSION;
    const PLURAL: &'static str = <Deployment as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    fn keeps_label(key: &str) -> bool {
        key == MANAGED_LABEL
    }
    fn keeps_annotation(key: &str) -> bool {
        key.starts_with(PREFIX)
    }
}

/// KServe's InferenceService, `serving.kserve.io/v1beta1` (the CRD is
/// `tests/fixtures/crds/kserve-inferenceservices.yaml`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InferenceServiceKind;

impl TrimmedKind for InferenceServiceKind {
    const KIND: &'static str = "InferenceService";
    const GROUP: &'static str = "serving.kserve.io";
    const VERSION: &'static str = "v1beta1";
    const PLURAL: &'static str = "inferenceservices";
    fn keeps_label(_: &str) -> bool {
        false
    }
    fn keeps_annotation(key: &str) -> bool {
        key == AUTOSCALER_CLASS
    }
}

impl<K: TrimmedKind> Resource for Trimmed<K> {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        K::KIND.into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        K::GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        K::VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        K::PLURAL.into()
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

impl<'de, K: TrimmedKind> Deserialize<'de> for Trimmed<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let metadata = d.deserialize_map(ObjectVisitor::<K>(PhantomData))?;
        Ok(Trimmed {
            metadata,
            kind: PhantomData,
        })
    }
}

/// `{"metadata": {...}, ...}`: only `metadata` is read.
struct ObjectVisitor<K>(PhantomData<K>);

impl<'de, K: TrimmedKind> Visitor<'de> for ObjectVisitor<K> {
    type Value = ObjectMeta;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a PartialObjectMetadata")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectMeta, A::Error> {
        let mut out = ObjectMeta::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0 == "metadata" {
                out = map.next_value_seed(MetaSeed::<K>(PhantomData))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

struct MetaSeed<K>(PhantomData<K>);

impl<'de, K: TrimmedKind> DeserializeSeed<'de> for MetaSeed<K> {
    type Value = ObjectMeta;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ObjectMeta, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, K: TrimmedKind> Visitor<'de> for MetaSeed<K> {
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
                "labels" => meta.labels = map.next_value_seed(KeptEntries(K::keeps_label))?,
                "annotations" => {
                    meta.annotations = map.next_value_seed(KeptEntries(K::keeps_annotation))?
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
struct KeptEntries(fn(&str) -> bool);

impl<'de> DeserializeSeed<'de> for KeptEntries {
    type Value = Option<BTreeMap<String, String>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for KeptEntries {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::watches::{Source, source_of};

    const ENABLED: &str = "llm-autoscale.io/enabled";

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
        let expected = ObjectMeta {
            name: Some("m".into()),
            namespace: Some("llm".into()),
            uid: Some("u-1".into()),
            labels: Some([(MANAGED_LABEL.to_string(), "true".to_string())].into()),
            annotations: Some([(ENABLED.to_string(), "true".to_string())].into()),
            ..ObjectMeta::default()
        };
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
        assert_eq!(
            DeploymentMeta::api_version(&()),
            Deployment::api_version(&())
        );
        assert_eq!(DeploymentMeta::kind(&()), Deployment::kind(&()));
    }

    #[test]
    fn an_inference_service_keeps_its_id_and_autoscaler_class() {
        let item = serde_json::json!({
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": {
                "name": "fbopt", "namespace": "llm", "uid": "u-2", "resourceVersion": "9",
                "labels": {MANAGED_LABEL: "true"},
                "annotations": {
                    AUTOSCALER_CLASS: "external",
                    ENABLED: "true",
                    "serving.kserve.io/deploymentMode": "Standard",
                },
                "managedFields": [{"manager": "kubectl"}],
            }
        });
        let isvc: InferenceServiceMeta = serde_json::from_value(item).unwrap();
        let expected = ObjectMeta {
            name: Some("fbopt".into()),
            namespace: Some("llm".into()),
            uid: Some("u-2".into()),
            annotations: Some([(AUTOSCALER_CLASS.to_string(), "external".to_string())].into()),
            ..ObjectMeta::default()
        };
        assert_eq!(isvc.metadata, expected);
        assert!(InferenceServiceMeta::metadata_api());
        assert_eq!(
            InferenceServiceMeta::api_version(&()),
            "serving.kserve.io/v1beta1"
        );
        assert_eq!(InferenceServiceMeta::plural(&()), "inferenceservices");
    }
}
