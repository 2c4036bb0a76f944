//! The reconciler: for every Deployment opted in with `llm-autoscale.io/enabled`, the
//! ScaledObject the core renders exists (server-side applied, owned by the Deployment),
//! drift is repaired, it goes when the opt-in goes, and Deployments whose sidecar is missing
//! or stale are reported (Events and the `llm_autoscale_sidecar_missing` metric).
//!
//! Several replicas may run; a Lease elects the one that reconciles, which stops before its
//! lease could expire ([`leader`]). Without a cluster the reconciler keeps retrying while the
//! webhook serves. On shutdown the controller finishes the reconciles it started and the lease
//! is released.

pub mod context;
pub mod controller;
pub mod leader;
pub mod metadata;
pub mod metrics;
pub mod plan;
pub mod token;
pub mod watches;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::watch;

use crate::config::WebhookConfig;
use leader::{Attempt, LeaseLock, RENEW_DEADLINE, RETRY_PERIOD, STOP_GRACE, Verdict};
use metrics::ReconcileMetrics;

/// Where the reconciler's Lease lives and who this replica is.
#[derive(Clone, Debug)]
pub struct ReconcilerSettings {
    pub lease_namespace: String,
    pub lease_name: String,
    /// Unique per replica (the pod name in a cluster).
    pub identity: String,
    /// The built-in scaler's trust key, to provision each namespace's token (`token.rs`).
    pub trust_key: Option<crate::scaler::trust::TrustKey>,
    /// The built-in scaler's CA (PEM), written next to each namespace's token for the
    /// sidecars' TLS (`--scaler-tls-ca`).
    pub scaler_ca: Option<String>,
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
            trust_key: None,
            scaler_ca: None,
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

/// Runs until `shutdown` completes; then the controller stops taking work, lets running
/// reconciles finish (within [`leader::STOP_GRACE`]) and releases the lease.
pub async fn run(
    config: WebhookConfig,
    settings: ReconcilerSettings,
    metrics: ReconcileMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let lead = lead_and_reconcile(config, settings, metrics.clone(), stop_rx);
    tokio::pin!(lead);
    tokio::select! {
        () = &mut lead => {}
        () = shutdown => {
            let _ = stop_tx.send(true);
            // Connecting, or stopping the controller and releasing the lease.
            let bound = STOP_GRACE + RENEW_DEADLINE;
            if tokio::time::timeout(bound, lead).await.is_err() {
                tracing::warn!("reconciler: not stopped within {bound:?}; leaving");
            }
        }
    }
    metrics.leader.set(0);
}

/// Completes once `stop` says so (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// How a term as leader ended.
enum TermEnd {
    /// Gave up leadership (renew deadline, or someone else holds the lease).
    Lost,
    /// The controller stopped by itself.
    ControllerExited,
    /// The process is shutting down.
    Shutdown,
}

async fn lead_and_reconcile(
    config: WebhookConfig,
    settings: ReconcilerSettings,
    metrics: ReconcileMetrics,
    mut stop: watch::Receiver<bool>,
) {
    let client = tokio::select! {
        c = connect() => c,
        () = stopped(&mut stop) => return,
    };
    let mut lock = LeaseLock::new(
        kube::Api::namespaced(client.clone(), &settings.lease_namespace),
        settings.lease_name.clone(),
        settings.identity.clone(),
    );
    let shared = shared(client, config, &settings, metrics);
    loop {
        tokio::select! {
            () = acquire(&mut lock) => {}
            () = stopped(&mut stop) => return,
        }
        tracing::info!(identity = %settings.identity, lease = %settings.lease_name, "reconciler: leading");
        let end = term(&shared, &mut lock, &mut stop).await;
        match end {
            TermEnd::Shutdown => {
                if let Err(e) = lock.release().await {
                    tracing::warn!(error = %e, "reconciler: could not release the lease");
                }
                tracing::info!(identity = %settings.identity, "reconciler: stopped, lease released");
                return;
            }
            TermEnd::Lost => {
                tracing::warn!(identity = %settings.identity, "reconciler: no longer leading");
            }
            TermEnd::ControllerExited => {
                tracing::warn!(identity = %settings.identity, "reconciler: controller stopped; competing again");
            }
        }
    }
}

/// What every term shares: the client, configuration, event recorder (reporting as this
/// replica) and metrics.
fn shared(
    client: Client,
    config: WebhookConfig,
    settings: &ReconcilerSettings,
    metrics: ReconcileMetrics,
) -> Arc<context::Shared> {
    Arc::new(context::Shared {
        client: client.clone(),
        config,
        recorder: Recorder::new(
            client,
            Reporter {
                controller: "llm-autoscale-webhook".into(),
                instance: Some(settings.identity.clone()),
            },
        ),
        metrics,
        trust_key: settings.trust_key.clone(),
        scaler_ca: settings.scaler_ca.clone(),
        tokens: std::sync::Mutex::new(std::collections::HashMap::new()),
    })
}

/// One term as leader: the controller runs while the lease is held; then it takes no new
/// work and the running reconciles finish within [`STOP_GRACE`] (or are aborted).
async fn term(
    shared: &Arc<context::Shared>,
    lock: &mut LeaseLock,
    stop: &mut watch::Receiver<bool>,
) -> TermEnd {
    shared.metrics.leader.set(1);
    let (end_term, term_ended) = futures::channel::oneshot::channel::<()>();
    let mut task = tokio::spawn(controller::run(shared.clone(), term_ended.map(|_| ())));
    let end = hold(lock, stop, &task).await;
    let _ = end_term.send(());
    if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
        task.abort();
        tracing::warn!("reconciler: reconciles still running after {STOP_GRACE:?}; aborted");
    }
    shared.metrics.leader.set(0);
    end
}

/// Retries every [`RETRY_PERIOD`] until this replica holds the lease.
async fn acquire(lock: &mut LeaseLock) {
    loop {
        match lock.try_acquire_or_renew().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "reconciler: cannot read the lease; retrying"),
        }
        tokio::time::sleep(RETRY_PERIOD).await;
    }
}

/// Renews the lease every [`RETRY_PERIOD`] while leading, until the renew deadline passes
/// without a renewal, someone else holds it, the controller exits or `stop` says so. Each
/// attempt is cut off at the deadline.
async fn hold(
    lock: &mut LeaseLock,
    stop: &mut watch::Receiver<bool>,
    task: &tokio::task::JoinHandle<()>,
) -> TermEnd {
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(RETRY_PERIOD) => {}
            () = stopped(stop) => return TermEnd::Shutdown,
        }
        if task.is_finished() {
            return TermEnd::ControllerExited;
        }
        let left = RENEW_DEADLINE.saturating_sub(renewed.elapsed());
        let attempt = match tokio::time::timeout(left, lock.try_acquire_or_renew()).await {
            Ok(Ok(true)) => Attempt::Renewed,
            Ok(Ok(false)) => Attempt::TakenOver,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reconciler: lease renewal failed");
                Attempt::Failed
            }
            Err(_) => {
                tracing::warn!("reconciler: lease renewal timed out");
                Attempt::Failed
            }
        };
        match leader::verdict(attempt, renewed.elapsed()) {
            Verdict::Lead => renewed = Instant::now(),
            Verdict::Retry => {}
            Verdict::GiveUp => return TermEnd::Lost,
        }
    }
}
