//! The kube-runtime controller: Deployments (and the ScaledObjects they own) → apply, repair,
//! delete, and report. Thin: every decision comes from [`super::plan::plan`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::Value;

use super::metrics::ReconcileMetrics;
use super::plan::{self, Action, FIELD_MANAGER, KserveOwner};
use crate::config::WebhookConfig;
use crate::render::scaled_object::{MANAGED_BY, MANAGED_BY_LABEL};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
}

pub struct Context {
    pub client: Client,
    pub config: WebhookConfig,
    pub recorder: Recorder,
    pub metrics: ReconcileMetrics,
}

pub fn scaled_object_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "keda.sh",
        "v1alpha1",
        "ScaledObject",
    ))
}

fn inference_service_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "serving.kserve.io",
        "v1beta1",
        "InferenceService",
    ))
}

/// Runs the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let deployments: Api<Deployment> = Api::all(ctx.client.clone());
    let ar = scaled_object_resource();
    let scaled_objects: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &ar);
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
    Controller::new(deployments, watcher::Config::default())
        .owns_with(scaled_objects, ar, managed)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile loop");
            }
        })
        .await;
}

fn error_policy(_d: Arc<Deployment>, err: &ReconcileError, ctx: Arc<Context>) -> Requeue {
    ctx.metrics.record_result("error");
    tracing::warn!(error = %err, "reconcile failed; retrying");
    Requeue::requeue(Duration::from_secs(15))
}

async fn publish(ctx: &Context, d: &Deployment, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(truncate(note, 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &d.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not record event");
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

async fn kserve_owner(
    ctx: &Context,
    ns: &str,
    deployment: &Value,
) -> Result<KserveOwner, kube::Error> {
    let Some(isvc) = plan::inference_service_of(deployment) else {
        return Ok(KserveOwner::None);
    };
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), ns, &inference_service_resource());
    match api.get_opt(&isvc).await {
        Ok(Some(obj)) => Ok(KserveOwner::Class(
            obj.annotations()
                .get("serving.kserve.io/autoscalerClass")
                .cloned(),
        )),
        Ok(None) => Ok(KserveOwner::Missing),
        // No InferenceService CRD in this cluster.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(KserveOwner::Missing),
        Err(e) => Err(e),
    }
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Requeue, ReconcileError> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let uid = d.uid().unwrap_or_default();
    let json = serde_json::to_value(d.as_ref())?;
    let kserve = kserve_owner(&ctx, &ns, &json).await?;
    let p = plan::plan(&json, &kserve, &ctx.config);

    ctx.metrics.record_sidecar(&ns, &name, p.sidecar);
    let sidecar_note = p.sidecar.event();
    if let Some((reason, note)) = sidecar_note {
        publish(&ctx, &d, EventType::Warning, reason, note.to_string()).await;
    }
    if let Some(msg) = &p.invalid {
        publish(
            &ctx,
            &d,
            EventType::Warning,
            "InvalidAnnotations",
            msg.clone(),
        )
        .await;
    }

    let so_api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &ns, &scaled_object_resource());
    match p.action {
        Action::Apply(so) => {
            let so_name = so["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let before = so_api.get_opt(&so_name).await?;
            if let Some(existing) = &before {
                let existing = serde_json::to_value(existing)?;
                if !plan::is_managed_for(&existing, &uid) {
                    publish(
                        &ctx,
                        &d,
                        EventType::Warning,
                        "ScaledObjectConflict",
                        format!("a ScaledObject named {so_name} that llm-autoscale does not manage already exists: delete it, or remove the llm-autoscale.io/enabled annotation"),
                    )
                    .await;
                    ctx.metrics.record_result("conflict");
                    return Ok(Requeue::requeue(Duration::from_secs(300)));
                }
            }
            let params = PatchParams::apply(FIELD_MANAGER).force();
            match so_api.patch(&so_name, &params, &Patch::Apply(&so)).await {
                Ok(after) => {
                    let changed = before.as_ref().map(|b| b.metadata.generation)
                        != Some(after.metadata.generation);
                    if changed {
                        publish(
                            &ctx,
                            &d,
                            EventType::Normal,
                            "ScaledObjectApplied",
                            format!(
                                "ScaledObject {so_name} applied ({} trigger(s))",
                                so["spec"]["triggers"].as_array().map_or(0, Vec::len)
                            ),
                        )
                        .await;
                        tracing::info!(namespace = %ns, deployment = %name, scaled_object = %so_name, "applied ScaledObject");
                    }
                    ctx.metrics.record_result("applied");
                }
                Err(kube::Error::Api(e)) if (400..500).contains(&e.code) => {
                    // Refused by the apiserver or an admission webhook (e.g. KEDA's): say why.
                    publish(
                        &ctx,
                        &d,
                        EventType::Warning,
                        "ScaledObjectRejected",
                        format!("ScaledObject {so_name} was refused: {}", e.message),
                    )
                    .await;
                    ctx.metrics.record_result("rejected");
                    return Ok(Requeue::requeue(Duration::from_secs(60)));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Action::DeleteManaged(so_name) => {
            if let Some(existing) = so_api.get_opt(&so_name).await? {
                let existing_json = serde_json::to_value(&existing)?;
                if plan::is_managed_for(&existing_json, &uid) {
                    so_api.delete(&so_name, &DeleteParams::default()).await?;
                    publish(
                        &ctx,
                        &d,
                        EventType::Normal,
                        "ScaledObjectDeleted",
                        format!(
                            "ScaledObject {so_name} deleted: the llm-autoscale opt-in was removed"
                        ),
                    )
                    .await;
                    tracing::info!(namespace = %ns, deployment = %name, scaled_object = %so_name, "deleted ScaledObject");
                    ctx.metrics.record_result("deleted");
                }
            }
            // Not opted in: nothing to repair periodically. A change of the Deployment, or of
            // a ScaledObject it owns, wakes this up again; a timer would GET once per
            // Deployment of the cluster every few minutes.
            return Ok(Requeue::await_change());
        }
        Action::Skip(reason) => {
            if p.invalid.is_none() {
                publish(
                    &ctx,
                    &d,
                    EventType::Warning,
                    "Skipped",
                    format!("no ScaledObject: {reason}"),
                )
                .await;
            }
            ctx.metrics.record_result("skipped");
        }
    }
    Ok(Requeue::requeue(Duration::from_secs(300)))
}
