//! The namespace credential of the built-in scaler, as the reconciler provisions it: which
//! namespaces need one, and the Secret that holds it (`src/scaler/trust.rs` says why) and,
//! with `--builtin-scaler-tls`, the CA the sidecars verify the scaler with
//! (`src/render/scaler_tls.rs`).
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
use crate::render::scaler_tls;
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

/// What the namespace's Secret holds: the token (`--builtin-scaler-auth`) and the scaler's CA
/// (`--builtin-scaler-tls`), each when the sidecars read it and the reconciler has it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Content<'a> {
    pub key: Option<&'a TrustKey>,
    /// PEM.
    pub ca: Option<&'a str>,
}

/// What the sidecars read from the Secret but the reconciler cannot write, as the note of a
/// Warning event: `wants_token`/`wants_ca` are what the webhook renders, `has` what the
/// reconciler holds. `None` when nothing is missing.
pub fn missing(wants_token: bool, wants_ca: bool, has: Content<'_>) -> Option<String> {
    let mut lacks = Vec::new();
    if wants_token && has.key.is_none() {
        lacks.push(format!("key {} (the namespace's token), which needs the scaler's trust key (--trust-key-file / LLM_AUTOSCALE_SCALER_TRUST_KEY_FILE): give it the key, or run the webhook with --builtin-scaler-auth=false", trust::SECRET_KEY));
    }
    if wants_ca && has.ca.is_none() {
        lacks.push(format!("key {} (the scaler's CA), which needs --scaler-tls-ca / LLM_AUTOSCALE_SCALER_TLS_CA: give it the CA of the scaler's certificate, or run the webhook with --builtin-scaler-tls=false", scaler_tls::CA_KEY));
    }
    (!lacks.is_empty()).then(|| {
        format!(
            "the built-in scaler's sidecars read Secret {} and wait until it holds {}",
            trust::SECRET_NAME,
            lacks.join("; and ")
        )
    })
}

/// The Secret holding `namespace`'s token and CA, for a server-side apply; `None` when it
/// would hold nothing.
pub fn secret(content: Content<'_>, namespace: &str) -> Option<Value> {
    let mut data = serde_json::Map::new();
    if let Some(key) = content.key {
        let token = STANDARD.encode(trust::token_for(key, namespace));
        data.insert(trust::SECRET_KEY.into(), token.into());
    }
    if let Some(ca) = content.ca {
        data.insert(scaler_tls::CA_KEY.into(), STANDARD.encode(ca).into());
    }
    if data.is_empty() {
        return None;
    }
    let metadata: ObjectMeta =
        managed_metadata(trust::SECRET_NAME.into(), namespace, &BTreeMap::new());
    Some(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": data,
    }))
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
        let only_token = Content {
            key: Some(&key),
            ca: None,
        };
        let s = secret(only_token, "team-a").unwrap();
        assert_eq!(s["data"].as_object().unwrap().len(), 1, "{s}");
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

    /// `--builtin-scaler-tls`: the CA travels next to the token, or alone without
    /// `--builtin-scaler-auth`; an empty Secret is not written.
    #[test]
    fn the_secret_holds_the_scalers_ca() {
        let key = TrustKey::new(&[3u8; 32]).unwrap();
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let both = secret(
            Content {
                key: Some(&key),
                ca: Some(ca),
            },
            "team-a",
        )
        .unwrap();
        let decoded = |s: &Value, k: &str| {
            String::from_utf8(STANDARD.decode(s["data"][k].as_str().unwrap()).unwrap()).unwrap()
        };
        assert_eq!(decoded(&both, "ca.crt"), ca);
        assert!(trust::verify(&key, "team-a", &decoded(&both, "token")));
        let only_ca = secret(
            Content {
                key: None,
                ca: Some(ca),
            },
            "team-a",
        )
        .unwrap();
        assert_eq!(only_ca["data"].as_object().unwrap().len(), 1);
        assert!(secret(Content::default(), "team-a").is_none());
    }

    #[test]
    fn what_the_reconciler_cannot_write_is_named_with_its_fix() {
        let key = TrustKey::new(&[3u8; 32]).unwrap();
        let has_key = Content {
            key: Some(&key),
            ca: None,
        };
        assert_eq!(missing(true, false, has_key), None);
        assert_eq!(missing(false, false, Content::default()), None);
        let note = missing(true, true, has_key).unwrap();
        assert!(
            note.contains("ca.crt") && note.contains("--scaler-tls-ca"),
            "{note}"
        );
        assert!(note.contains("--builtin-scaler-tls=false"), "{note}");
        assert!(!note.contains("--trust-key-file"), "{note}");
        let note = missing(true, false, Content::default()).unwrap();
        assert!(
            note.contains("--trust-key-file") && note.contains("--builtin-scaler-auth=false"),
            "{note}"
        );
    }
}
