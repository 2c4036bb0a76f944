//! The API reads and network checks that fill a [`Snapshot`]: thin, read-only (get and list,
//! and GETs through `services/proxy`); every judgement is in the findings. One file per part of
//! the cluster: [`webhooks`], [`keda`], [`workloads`], and the metrics path ([`prometheus`],
//! [`addon`], [`builtin`]). [`API_READS`] lists the requests they make.

mod addon;
mod api_reads;
mod builtin;
mod keda;
mod prometheus;
mod webhooks;
mod workloads;

use kube::Client;

pub use addon::{addon_store, env_setting};
pub use api_reads::{API_READS, ApiRead};
pub use builtin::{grpc_url, scaled_object_ref, scaler_health_path};
pub use prometheus::{prometheus_answer, prometheus_proxy_path};

use super::snapshot::Snapshot;
use crate::config::WebhookConfig;
use crate::workload::WorkloadKind;

/// What went wrong reading the cluster.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadTarget(String),
}

fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> GatherError {
    let what = what.into();
    move |source| GatherError::Api { what, source }
}

/// One workload named on the command line: `deploy/NAME`, `deployment/NAME`,
/// `inferenceservice/NAME` or `isvc/NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetRef {
    pub kind: WorkloadKind,
    pub name: String,
}

impl std::str::FromStr for TargetRef {
    type Err = GatherError;

    fn from_str(s: &str) -> Result<TargetRef, GatherError> {
        let bad = || {
            GatherError::BadTarget(format!(
                "{s:?}: name a workload as deploy/NAME or inferenceservice/NAME"
            ))
        };
        let (kind, name) = s.split_once('/').ok_or_else(bad)?;
        let kind = match kind.to_ascii_lowercase().as_str() {
            "deploy" | "deployment" | "deployments" | "deployment.apps" => WorkloadKind::Deployment,
            "isvc" | "inferenceservice" | "inferenceservices" => WorkloadKind::InferenceService,
            _ => return Err(bad()),
        };
        if name.is_empty() || name.contains('/') {
            return Err(bad());
        }
        Ok(TargetRef {
            kind,
            name: name.to_string(),
        })
    }
}

/// Where to look and how to reach what the cluster network hides.
#[derive(Clone, Debug, Default)]
pub struct GatherOptions {
    /// Only this namespace (all when `None`).
    pub namespace: Option<String>,
    /// Only this workload (needs `namespace`).
    pub target: Option<TargetRef>,
    /// The add-on's REST API (`http://HOST:PORT`), instead of the API server's service proxy.
    pub addon_url: Option<String>,
    /// Prometheus (`http://HOST:PORT`), instead of each trigger's `serverAddress`.
    pub prometheus_url: Option<String>,
    /// `HOST:PORT` reaching the webhook's Service (e.g. `kubectl port-forward`), for the
    /// certificate check of Service-based webhooks from outside the cluster.
    pub webhook_address: Option<String>,
    /// The built-in scaler's gRPC scaler port (`http://HOST:PORT`, `https://…` or
    /// `HOST:PORT`), instead of its Service (whose `/readyz` the service proxy reaches, but
    /// not its gRPC).
    pub builtin_scaler_url: Option<String>,
    /// The CA (PEM) of the built-in scaler's TLS certificate, for `https://`.
    pub builtin_scaler_ca: Option<Vec<u8>>,
    /// Running in a Pod: Service DNS names resolve.
    pub in_cluster: bool,
}

/// Reads everything the findings need.
pub async fn gather(
    client: &Client,
    opts: &GatherOptions,
    cfg: &WebhookConfig,
) -> Result<Snapshot, GatherError> {
    let webhooks = webhooks::webhooks(client, opts).await?;
    let keda = keda::keda(client).await?;
    let mut workloads = Vec::new();
    for (kind, object) in workloads::workload_objects(client, opts).await? {
        workloads.push(workloads::workload(client, opts, cfg, kind, object).await?);
    }
    let addon = if workloads.iter().any(|w| workloads::uses_addon(w, cfg)) {
        Some(addon::addon(client, opts, cfg).await?)
    } else {
        None
    };
    let builtin = builtin_path(client, opts, cfg, &mut workloads).await?;
    Ok(Snapshot {
        webhooks,
        keda,
        addon,
        builtin,
        workloads,
    })
}

/// The built-in scaler, when a workload's trigger reads it: its health, then each such
/// workload's readings and token Secret (and its CA).
async fn builtin_path(
    client: &Client,
    opts: &GatherOptions,
    cfg: &WebhookConfig,
    workloads: &mut [super::snapshot::WorkloadSeen],
) -> Result<Option<super::snapshot::BuiltinSeen>, GatherError> {
    let reads = |w: &super::snapshot::WorkloadSeen| {
        workloads::scaled_object_of(w, cfg)
            .is_some_and(|so| crate::doctor::builtin_scaler::reads_builtin(&so, cfg))
    };
    if !workloads.iter().any(reads) {
        return Ok(None);
    }
    let (seen, grpc) = builtin::builtin(client, opts, cfg).await?;
    for w in workloads.iter_mut() {
        let Some(so) = workloads::scaled_object_of(w, cfg) else {
            continue;
        };
        if !crate::doctor::builtin_scaler::reads_builtin(&so, cfg) {
            continue;
        }
        w.builtin = builtin::builtin_readings(&grpc, Some(&so), cfg).await;
        if cfg.builtin_scaler_auth || cfg.builtin_scaler_tls {
            let (token, ca) =
                builtin::token_secret(client, &w.namespace, cfg.builtin_scaler_tls).await?;
            w.token_secret = cfg.builtin_scaler_auth.then_some(token);
            w.scaler_ca = ca;
        }
    }
    Ok(Some(seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_as_kubectl_spells_them() {
        let t: TargetRef = "deploy/qwen".parse().unwrap();
        assert_eq!(
            t,
            TargetRef {
                kind: WorkloadKind::Deployment,
                name: "qwen".into()
            }
        );
        for s in [
            "deployment/qwen",
            "deployments/qwen",
            "deployment.apps/qwen",
        ] {
            assert_eq!(
                s.parse::<TargetRef>().unwrap().kind,
                WorkloadKind::Deployment
            );
        }
        for s in ["inferenceservice/q", "isvc/q", "InferenceService/q"] {
            assert_eq!(
                s.parse::<TargetRef>().unwrap().kind,
                WorkloadKind::InferenceService
            );
        }
        for s in ["qwen", "pod/qwen", "deploy/", "deploy/a/b"] {
            assert!(s.parse::<TargetRef>().is_err(), "{s}");
        }
    }
}
