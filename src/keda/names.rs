//! Names KEDA derives from a ScaledObject, their limits, and the labels of what this product
//! manages.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::{Digest, Sha256};

/// Label on every object this product manages (ScaledObjects, InterceptorRoutes).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "llm-autoscale-webhook";

/// KEDA puts a ScaledObject's name into a label value (`scaledobject.keda.sh/name`), which
/// holds at most 63 characters (kedacore/keda apis/keda/v1alpha1/scaledobject_webhook.go,
/// `maxK8sLabelValueLength`).
pub const MAX_NAME: usize = 63;
/// The HPA KEDA creates is `keda-hpa-<name>` unless
/// `advanced.horizontalPodAutoscalerConfig.name` is set (kedacore/keda controllers/keda/hpa.go,
/// `getHPAName`, `getDefaultHpaName`).
pub const DEFAULT_HPA_PREFIX: &str = "keda-hpa-";
/// The longest ScaledObject name whose default HPA name still fits a label value.
pub const MAX_NAME_WITH_DEFAULT_HPA: usize = MAX_NAME - DEFAULT_HPA_PREFIX.len();

/// Metadata of an object this product manages: `extra_labels` (e.g. KServe's isvc label) plus
/// [`MANAGED_BY_LABEL`].
pub fn managed_metadata(
    name: String,
    namespace: &str,
    extra_labels: &BTreeMap<String, String>,
) -> ObjectMeta {
    let mut labels = extra_labels.clone();
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

/// A name of at most `max` bytes: the name itself, or a prefix plus a short hash.
pub fn bounded_name(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let digest = Sha256::digest(name.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let keep = max.saturating_sub(hash.len() + 1);
    // A mutating webhook sees names before the apiserver validates them: cut on a character
    // boundary, never inside a multi-byte character.
    let prefix: String = name
        .char_indices()
        .take_while(|(i, c)| i + c.len_utf8() <= keep)
        .map(|(_, c)| c)
        .collect();
    format!("{}-{hash}", prefix.trim_end_matches(['-', '.']))
}

/// The HPA name to set for a ScaledObject named `name`: `None` while KEDA's default fits.
pub fn hpa_name_for(name: &str) -> Option<String> {
    (name.len() > MAX_NAME_WITH_DEFAULT_HPA).then(|| {
        format!(
            "{DEFAULT_HPA_PREFIX}{}",
            bounded_name(name, MAX_NAME_WITH_DEFAULT_HPA)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_stay() {
        assert_eq!(bounded_name("qwen", 54), "qwen");
        let long = "a".repeat(54);
        assert_eq!(bounded_name(&long, 54), long);
        assert_eq!(hpa_name_for(&long), None);
    }

    #[test]
    fn multi_byte_characters_at_the_cut_do_not_panic() {
        for pad in 0..4 {
            let name = format!("{}{}", "a".repeat(50 + pad), "é".repeat(10));
            let cut = bounded_name(&name, 54);
            assert!(cut.len() <= 54, "{cut}");
            assert!(cut.starts_with(&"a".repeat(45)), "{cut}");
        }
        assert_eq!(bounded_name(&"ü".repeat(40), 54).len(), 54 - 1);
    }

    #[test]
    fn long_names_are_cut_with_a_stable_hash() {
        let long = format!("{}-x", "llama-3-1-70b-instruct-vllm-predictor".repeat(3));
        let a = bounded_name(&long, 54);
        assert!(a.len() <= 54 && a.len() > 40, "{a}");
        assert_eq!(a, bounded_name(&long, 54));
        assert_ne!(a, bounded_name(&format!("{long}y"), 54));
        assert!(!a.contains("--"));
        let hpa = hpa_name_for(&bounded_name(&long, MAX_NAME)).unwrap();
        assert!(
            hpa.len() <= MAX_NAME && hpa.starts_with(DEFAULT_HPA_PREFIX),
            "{hpa}"
        );
    }
}
