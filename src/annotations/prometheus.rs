//! The prometheus backend's connection: TLS, authentication by reference, headers, and how an
//! empty result is read. Keys and defaults as kedacore/keda v2.21.0 reads them
//! (pkg/scalers/prometheus_scaler.go `prometheusMetadata`; `authModes` in
//! pkg/scalers/authentication/authentication_types.go; `authenticationRef` in
//! apis/keda/v1alpha1/scaletriggers_types.go). Secrets never go in annotations: credentials
//! stay in a TriggerAuthentication the trigger names.

use std::collections::BTreeMap;

use super::reader::Reader;
use super::triggers::parse_string_map;
use super::values::{self, Refusal};
use super::{Backend, PREFIX};

/// A TriggerAuthentication or ClusterTriggerAuthentication, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRef {
    pub name: String,
    /// `TriggerAuthentication` (KEDA's default) or `ClusterTriggerAuthentication`.
    pub kind: String,
}

/// What the prometheus trigger's connection says beyond `serverAddress`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrometheusOptions {
    pub unsafe_ssl: Option<bool>,
    pub auth: Option<AuthRef>,
    /// `authModes`, comma-separated as KEDA reads it.
    pub auth_modes: Option<String>,
    /// `customHeaders`, rendered `k=v,k2=v2`.
    pub headers: BTreeMap<String, String>,
    pub ignore_null_values: Option<bool>,
}

/// KEDA's `authModes` enum and its exclusive set (only one of bearer, basic, oauth).
const AUTH_MODES: [&str; 6] = ["apiKey", "basic", "tls", "bearer", "custom", "oauth"];
const EXCLUSIVE_AUTH_MODES: [&str; 3] = ["bearer", "basic", "oauth"];

impl Reader<'_> {
    pub(super) fn prometheus_options(&mut self, backend: Backend) -> PrometheusOptions {
        if !matches!(backend, Backend::Prometheus | Backend::Wva) {
            return PrometheusOptions::default();
        }
        // Every mode's credentials are read from the TriggerAuthentication's parameters
        // (`order=authParams` in pkg/scalers/authentication/authentication_types.go): modes
        // without one cannot authenticate.
        if self.raw("prometheus-auth-modes").is_some() && self.raw("prometheus-auth").is_none() {
            self.bad(
                "prometheus-auth-modes",
                "KEDA reads the credentials of every auth mode from a TriggerAuthentication, and none is named",
                format!("add {PREFIX}prometheus-auth with the TriggerAuthentication that holds them"),
            );
        }
        PrometheusOptions {
            unsafe_ssl: self.get("prometheus-unsafe-ssl", values::boolean),
            auth: self.get("prometheus-auth", auth_ref),
            auth_modes: self.get("prometheus-auth-modes", auth_modes),
            headers: self.get("prometheus-headers", headers).unwrap_or_default(),
            ignore_null_values: self.get("ignore-null-values", values::boolean),
        }
    }
}

/// `name` or `ClusterTriggerAuthentication/name`.
fn auth_ref(v: &str) -> Result<AuthRef, Refusal> {
    let (kind, name) = match v.split_once('/') {
        Some((k, n)) => (k, n),
        None => ("TriggerAuthentication", v),
    };
    if !matches!(
        kind,
        "TriggerAuthentication" | "ClusterTriggerAuthentication"
    ) {
        return Err(Refusal {
            reason: format!("{kind} is not a kind KEDA authenticates with"),
            fix: "write the TriggerAuthentication's name, or ClusterTriggerAuthentication/<name>"
                .into(),
        });
    }
    if !is_dns_subdomain(name) {
        return Err(Refusal {
            reason: "not an object name".into(),
            fix: "write the name of a TriggerAuthentication in the workload's namespace, e.g. \"prometheus-bearer\"".into(),
        });
    }
    Ok(AuthRef {
        name: name.to_string(),
        kind: kind.to_string(),
    })
}

fn is_dns_subdomain(v: &str) -> bool {
    !v.is_empty() && v.len() <= 253 && v.split('.').all(values::is_dns_label)
}

fn auth_modes(v: &str) -> Result<String, Refusal> {
    let modes: Vec<&str> = v.split(',').map(str::trim).collect();
    let fix = || format!("write a comma-separated list of {}", AUTH_MODES.join(", "));
    if let Some(bad) = modes.iter().find(|m| !AUTH_MODES.contains(m)) {
        return Err(Refusal {
            reason: format!("{bad:?} is not an auth mode KEDA knows"),
            fix: fix(),
        });
    }
    if modes
        .iter()
        .filter(|m| EXCLUSIVE_AUTH_MODES.contains(m))
        .count()
        > 1
    {
        return Err(Refusal {
            reason: "bearer, basic and oauth exclude each other".into(),
            fix: "keep one of them".into(),
        });
    }
    Ok(modes.join(","))
}

/// KEDA splits `customHeaders` on `,` and each pair on `=` (pkg/scalers/scalersconfig/
/// typed_config.go), so neither may appear in a name or value.
fn headers(v: &str) -> Result<BTreeMap<String, String>, Refusal> {
    let map = parse_string_map(v)?;
    if let Some((k, val)) = map
        .iter()
        .find(|(k, val)| k.is_empty() || k.contains([',', '=']) || val.contains([',', '=']))
    {
        return Err(Refusal {
            reason: format!(
                "header {k:?}: {val:?}: KEDA splits headers on , and =, so neither may appear"
            ),
            fix: format!(
                "write a JSON object of header names and values without , or =, e.g. {{\"X-Scope-OrgID\":\"tenant-a\"}} ({PREFIX}prometheus-headers)"
            ),
        });
    }
    Ok(map)
}

/// The `customHeaders` metadata value.
pub fn custom_headers(headers: &BTreeMap<String, String>) -> Option<String> {
    (!headers.is_empty()).then(|| {
        headers
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}
