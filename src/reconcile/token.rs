//! The namespace credential of the built-in scaler, as the reconciler provisions it: which
//! namespaces need one, and the Secret that holds it (`src/scaler/trust.rs` says why).
//!
//! A namespace needs its token while a ScaledObject this product manages there has a trigger
//! the built-in scaler reads, told apart by the configured address
//! ([`crate::keda::trigger::KnownScalers`]). The Secret is applied when such a ScaledObject
//! is, and deleted once the last one in the namespace is gone or reads another scaler.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use crate::keda::ScaledObject;
use crate::keda::names::managed_metadata;
use crate::keda::trigger::{KnownScalers, Reader};
use crate::scaler::trust::{self, TrustKey};

/// Whether `so` has a trigger the built-in scaler reads.
pub fn reads_builtin(so: &ScaledObject, known: &KnownScalers<'_>) -> bool {
    so.spec
        .triggers
        .iter()
        .any(|t| t.reader(known) == Reader::Builtin)
}

/// Whether any of `others` (managed ScaledObjects of one namespace, the one that changed left
/// out) still reads the built-in scaler.
pub fn still_needed<'a>(
    others: impl IntoIterator<Item = &'a ScaledObject>,
    known: &KnownScalers<'_>,
) -> bool {
    others.into_iter().any(|so| reads_builtin(so, known))
}

/// The Secret holding `namespace`'s token, for a server-side apply.
pub fn secret(key: &TrustKey, namespace: &str) -> Value {
    let metadata: ObjectMeta =
        managed_metadata(trust::SECRET_NAME.into(), namespace, &BTreeMap::new());
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": {
            trust::SECRET_KEY: STANDARD.encode(trust::token_for(key, namespace)),
        },
    })
}

/// Whether a stored Secret's metadata says this product made it.
pub fn is_ours(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(crate::keda::names::MANAGED_BY_LABEL))
        .is_some_and(|v| v == crate::keda::names::MANAGED_BY)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILTIN: &str = "llm-autoscale-scaler.llm-autoscale-system.svc:4318";

    fn known() -> KnownScalers<'static> {
        KnownScalers {
            otel_addon: "keda-otel-scaler.keda.svc:4318",
            builtin: BUILTIN,
        }
    }

    fn so(address: &str) -> ScaledObject {
        serde_json::from_value(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "m", "namespace": "llm"},
            "spec": {"scaleTargetRef": {"name": "m"}, "triggers": [
                {"type": "external", "metadata": {"scalerAddress": address}}]}
        }))
        .unwrap()
    }

    #[test]
    fn namespaces_with_builtin_triggers_need_a_token() {
        assert!(reads_builtin(&so(BUILTIN), &known()));
        assert!(reads_builtin(
            &so("llm-autoscale-scaler.llm-autoscale-system.svc.cluster.local:4318"),
            &known()
        ));
        assert!(!reads_builtin(
            &so("keda-otel-scaler.keda.svc:4318"),
            &known()
        ));
        assert!(!still_needed([&so("other:1")], &known()));
        assert!(still_needed([&so("other:1"), &so(BUILTIN)], &known()));
    }

    #[test]
    fn the_secret_holds_the_namespaces_token() {
        let key = TrustKey::new(&[3u8; 32]).unwrap();
        let s = secret(&key, "team-a");
        assert_eq!(s["metadata"]["name"], trust::SECRET_NAME);
        assert_eq!(s["metadata"]["namespace"], "team-a");
        assert_eq!(
            s["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "llm-autoscale-webhook"
        );
        let token = STANDARD
            .decode(s["data"]["token"].as_str().unwrap())
            .unwrap();
        assert!(trust::verify(
            &key,
            "team-a",
            std::str::from_utf8(&token).unwrap()
        ));
        let meta: ObjectMeta = serde_json::from_value(s["metadata"].clone()).unwrap();
        assert!(is_ours(&meta));
    }
}
