//! The reconciler: for every Deployment opted in with `llm-autoscale.io/enabled`, the
//! ScaledObject the core renders exists (server-side applied, owned by the Deployment),
//! drift is repaired, it goes when the opt-in goes, and Deployments whose sidecar is missing
//! or stale are reported (Events and the `llm_autoscale_sidecar_missing` metric).
//!
//! Several replicas may run; a Lease elects the one that reconciles. Without a cluster the
//! reconciler keeps retrying while the webhook serves.

pub mod controller;
pub mod leader;
pub mod metrics;
pub mod plan;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::config::WebhookConfig;
use leader::{LEASE_DURATION, LeaseLock, RENEW_PERIOD};
use metrics::ReconcileMetrics;

/// Where the reconciler's Lease lives and who this replica is.
#[derive(Clone, Debug)]
pub struct ReconcilerSettings {
    pub lease_namespace: String,
    pub lease_name: String,
    /// Unique per replica (the pod name in a cluster).
    pub identity: String,
}

impl ReconcilerSettings {
    /// From `POD_NAMESPACE`/`POD_NAME` (downward API), else `default` and the host name.
    pub fn from_env() -> ReconcilerSettings {
        let identity = std::env::var("POD_NAME")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
                format!("{host}-{}", std::process::id())
            });
        ReconcilerSettings {
            lease_namespace: std::env::var("POD_NAMESPACE")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "default".into()),
            lease_name: "llm-autoscale-webhook-reconciler".into(),
            identity,
        }
    }
}

async fn connect() -> Client {
    let mut delay = Duration::from_secs(1);
    loop {
        match Client::try_default().await {
            Ok(c) => return c,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_seconds = delay.as_secs(), "reconciler: no Kubernetes connection yet; the webhook keeps serving");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Runs until `shutdown` completes.
pub async fn run(
    config: WebhookConfig,
    settings: ReconcilerSettings,
    metrics: ReconcileMetrics,
    shutdown: impl Future<Output = ()>,
) {
    tokio::select! {
        () = lead_and_reconcile(config, settings, metrics.clone()) => {}
        () = shutdown => {}
    }
    metrics.leader.set(0);
}

async fn lead_and_reconcile(
    config: WebhookConfig,
    settings: ReconcilerSettings,
    metrics: ReconcileMetrics,
) {
    let client = connect().await;
    let lock = LeaseLock {
        api: kube::Api::namespaced(client.clone(), &settings.lease_namespace),
        name: settings.lease_name.clone(),
        identity: settings.identity.clone(),
    };
    let ctx = Arc::new(controller::Context {
        client: client.clone(),
        config,
        recorder: Recorder::new(
            client,
            Reporter {
                controller: "llm-autoscale-webhook".into(),
                instance: Some(settings.identity.clone()),
            },
        ),
        metrics: metrics.clone(),
    });
    loop {
        match lock.try_acquire_or_renew().await {
            Ok(true) => {}
            Ok(false) => {
                tokio::time::sleep(RENEW_PERIOD).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "reconciler: cannot read the lease; retrying");
                tokio::time::sleep(RENEW_PERIOD).await;
                continue;
            }
        }
        tracing::info!(identity = %settings.identity, lease = %settings.lease_name, "reconciler: leading");
        metrics.leader.set(1);
        let task = tokio::spawn(controller::run(ctx.clone()));
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(RENEW_PERIOD).await;
            match lock.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "reconciler: lease renewal failed");
                    if last_renewed.elapsed() >= LEASE_DURATION {
                        break;
                    }
                }
            }
            if task.is_finished() {
                break;
            }
        }
        task.abort();
        metrics.leader.set(0);
        tracing::warn!(identity = %settings.identity, "reconciler: no longer leading");
    }
}
