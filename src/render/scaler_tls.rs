//! TLS between the `builtin` backend's clients and the built-in scaler
//! (`--builtin-scaler-tls`), which serves it with `scaler --scaler-tls-cert/--scaler-tls-key`.
//!
//! - The sidecar's OTLP exporter verifies the scaler's certificate against a CA that reaches
//!   the pod the way its token does: key [`CA_KEY`] of the namespace's Secret
//!   ([`crate::scaler::trust::SECRET_NAME`], written by the reconciler from
//!   `--scaler-tls-ca`), read into the environment variable [`CA_ENV`] from a
//!   `secretKeyRef`, and given to the exporter as `tls.ca_pem: ${env:LLM_AUTOSCALE_SCALER_CA}`.
//!   The collector's `configtls` reads `ca_pem` as the PEM text of the CA
//!   (go.opentelemetry.io/collector/config/configtls v1.67.0 `generated_config.go`,
//!   `ca_pem`; `insecure: false` is TLS with verification), and a value that is one
//!   `${env:...}` reference keeps the variable's text as it is for a string field, line
//!   breaks included (go.opentelemetry.io/collector/confmap v1.67.0 `expand.go`,
//!   `findAndExpandURI`). The certificate must name the host of `--builtin-otlp-endpoint`.
//!   A new CA is a new Secret: the pod spec, and so the sidecar's hash, does not change; a
//!   running sidecar keeps the CA it started with.
//! - KEDA's `external` trigger gets `enableTLS: "true"`: KEDA then dials the scaler with TLS,
//!   trusting the system roots and the CA files in its operator's `--ca-dir` directories
//!   (default `/custom/ca`, read once) (kedacore/keda v2.21.0 `pkg/scalers/external_scaler.go`,
//!   `buildGRPCConnection`; `pkg/util/tls_config.go`, `NewTLSConfig`;
//!   `pkg/util/certificates.go`, `getRootCAs`; `cmd/operator/main.go`, `--ca-dir`). Its
//!   `caCert`, `tlsClientCert` and `tlsClientKey` come only from a TriggerAuthentication
//!   (`authParams`) and are not rendered; `unsafeSsl` is never set.

use std::collections::BTreeMap;

use serde::Serialize;

/// Key of the namespace's Secret holding the scaler's CA (PEM).
pub const CA_KEY: &str = "ca.crt";
/// The sidecar's environment variable holding it.
pub const CA_ENV: &str = "LLM_AUTOSCALE_SCALER_CA";
/// KEDA's external trigger metadata key turning TLS on.
pub const ENABLE_TLS: &str = "enableTLS";

/// The OTLP exporter's `tls` block (collector `configtls.ClientConfig`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExporterTls {
    pub insecure: bool,
    /// The CA's PEM, from the environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
}

/// Plain TCP (`insecure: true`), or TLS verified against the CA in `ca_env`.
pub fn exporter_tls(ca_env: Option<&str>) -> ExporterTls {
    match ca_env {
        None => ExporterTls {
            insecure: true,
            ca_pem: None,
        },
        Some(env) => ExporterTls {
            insecure: false,
            ca_pem: Some(format!("${{env:{env}}}")),
        },
    }
}

/// The trigger metadata entries of TLS towards the scaler (none for plain TCP).
pub fn trigger_metadata(tls: bool) -> BTreeMap<String, String> {
    tls.then(|| (ENABLE_TLS.to_string(), "true".to_string()))
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_or_verified() {
        let plain = serde_json::to_value(exporter_tls(None)).unwrap();
        assert_eq!(plain, serde_json::json!({"insecure": true}));
        let tls = serde_json::to_value(exporter_tls(Some(CA_ENV))).unwrap();
        assert_eq!(
            tls,
            serde_json::json!({"insecure": false, "ca_pem": "${env:LLM_AUTOSCALE_SCALER_CA}"})
        );
        assert!(trigger_metadata(false).is_empty());
        assert_eq!(
            trigger_metadata(true),
            BTreeMap::from([("enableTLS".to_string(), "true".to_string())])
        );
    }
}
