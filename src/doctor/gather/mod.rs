//! The API reads and network checks that fill a [`Snapshot`]: thin, read-only (get and list,
//! and GETs through `services/proxy`); every judgement is in the findings. One file per part of
//! the cluster: [`webhooks`], [`keda`], [`workloads`], and the metrics path ([`prometheus`],
//! [`addon`]). [`API_READS`] lists the requests they make.

mod addon;
mod api_reads;
mod keda;
mod prometheus;
mod webhooks;
mod workloads;

use kube::Client;

pub use addon::{addon_store, env_setting};
pub use api_reads::{API_READS, ApiRead};
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
    Ok(Snapshot {
        webhooks,
        keda,
        addon,
        workloads,
    })
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
