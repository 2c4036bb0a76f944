//! The kube-runtime controller: Deployments (and the ScaledObjects they own) → apply, repair,
//! delete, and report; with HTTP wake the same for their InterceptorRoutes, and KServe's
//! leftover ScaledObject removed. Thin: every decision comes from [`super::plan`] and
//! [`super::watches`], which also says what is watched and kept; the stores are read through
//! [`super::context`].
//!
//! The controller's own objects are the Deployments' trimmed metadata (every Deployment of
//! the cluster); a reconcile takes the full Deployment from the store of labelled ones, or
//! reads it when its metadata calls for it, and the ScaledObjects, InterceptorRoutes and
//! InferenceServices from their stores. At most [`CONCURRENCY`] reconciles run at once, and a
//! stop lets the running ones finish (kube-runtime `src/controller/mod.rs`:
//! `Config::concurrency`, `Controller::graceful_shutdown_on`).

use std::future::Future;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::core::DynamicObject;
use kube::runtime::controller::{Action as Requeue, Config, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::Value;

use super::context::{Context, Shared, Watches, interceptor_route_resource};
use super::metadata::DeploymentMeta;
use super::plan::{self, Action, FIELD_MANAGER, Holder, KserveOwner, Plan, SidecarState};
use super::token;
use super::watches::{self, Source};
use crate::keda::ScaledObject;
use crate::keda::trigger::KnownScalers;
use crate::scaler::trust;

/// Reconciles running at once, at most.
pub const CONCURRENCY: u16 = 8;
/// Until the next reconcile of an opted-in Deployment (drift is repaired sooner: the managed
/// ScaledObjects and InterceptorRoutes are watched).
const RESYNC: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
}

/// Runs the controller until `stop` completes and the reconciles running then have finished.
pub async fn run(shared: Arc<Shared>, stop: impl Future<Output = ()> + Send + Sync + 'static) {
    let (ctx, watches) = Context::watch(shared).await;
    let Watches {
        all_metadata,
        metadata,
        labelled,
        scaled_objects,
        routes,
        inference_services,
    } = watches;
    let mut controller = Controller::for_stream(all_metadata, metadata)
        .owns_stream(scaled_objects)
        .watches_stream(labelled, |d: Deployment| {
            Some(ObjectRef::new(&d.name_any()).within(&d.namespace().unwrap_or_default()))
        });
    if let Some(routes) = routes {
        controller = controller.owns_stream_with(routes, interceptor_route_resource());
    }
    if let Some(isvcs) = inference_services {
        // Only read from its store: KServe updates the predictor when its InferenceService
        // changes, and that update is what triggers a reconcile.
        controller = controller.watches_stream(isvcs, |_| None::<ObjectRef<DeploymentMeta>>);
    }
    controller
        .with_config(Config::default().concurrency(CONCURRENCY))
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile loop");
            }
        })
        .await;
}

fn error_policy(_d: Arc<DeploymentMeta>, err: &ReconcileError, ctx: Arc<Context>) -> Requeue {
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

/// One Deployment, known by its metadata: where its full object comes from is decided by
/// [`watches::source_of`]; most Deployments of a cluster cost no request at all.
async fn reconcile(
    meta: Arc<DeploymentMeta>,
    ctx: Arc<Context>,
) -> Result<Requeue, ReconcileError> {
    if !ctx.stores_ready() {
        return Ok(Requeue::requeue(Duration::from_secs(2)));
    }
    let ns = meta.namespace().unwrap_or_default();
    let name = meta.name_any();
    let owns_scaled_object = ctx.owns_managed_scaled_object(&meta.metadata);
    let deployment = match watches::source_of(&meta.metadata, owns_scaled_object) {
        Source::Store => match ctx.labelled_deployment(&ns, &name) {
            Some(d) => d,
            // Not delivered by its watch yet; when it is, that triggers a reconcile.
            None => return Ok(Requeue::await_change()),
        },
        Source::Read => {
            let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
            match api.get_opt(&name).await? {
                Some(d) => Arc::new(d),
                None => return Ok(Requeue::await_change()),
            }
        }
        Source::Nothing => {
            ctx.metrics
                .record_sidecar(&ns, &name, SidecarState::NotExpected);
            return Ok(Requeue::await_change());
        }
    };
    reconcile_deployment(&deployment, &ctx).await
}

/// Who a Deployment is: its namespace, name and uid.
struct Target<'a> {
    d: &'a Deployment,
    ns: String,
    uid: String,
}

/// Plans for the Deployment, reports what the plan says about it, and carries the plan out.
async fn reconcile_deployment(d: &Deployment, ctx: &Context) -> Result<Requeue, ReconcileError> {
    let t = Target {
        d,
        ns: d.namespace().unwrap_or_default(),
        uid: d.uid().unwrap_or_default(),
    };
    let json = serde_json::to_value(d)?;
    let kserve = match plan::inference_service_of(&json) {
        Some(isvc) => ctx.inference_service(&t.ns, &isvc).await?,
        None => KserveOwner::None,
    };
    let p = plan::plan(&json, &kserve, &ctx.config);
    report(ctx, &t, &p).await;
    match &p.action {
        Action::Apply(so) => apply(ctx, &t, so, &p.route, &kserve).await,
        Action::DeleteManaged(so_name) => {
            delete_managed(ctx, &t, so_name, &p.route).await?;
            // Not opted in: nothing to repair periodically. A change of the Deployment, or of
            // a ScaledObject it owns, wakes this up again.
            Ok(Requeue::await_change())
        }
        Action::Skip(reason) => {
            if p.invalid.is_none() {
                let note = format!("no ScaledObject: {reason}");
                publish(ctx, d, EventType::Warning, "Skipped", note).await;
            }
            ctx.metrics.record_result("skipped");
            Ok(Requeue::requeue(RESYNC))
        }
    }
}

/// The sidecar's state (metric, and an Event when it needs attention) and invalid
/// annotations (an Event).
async fn report(ctx: &Context, t: &Target<'_>, p: &Plan) {
    ctx.metrics
        .record_sidecar(&t.ns, &t.d.name_any(), p.sidecar);
    if let Some((reason, note)) = p.sidecar.event() {
        publish(ctx, t.d, EventType::Warning, reason, note.to_string()).await;
    }
    if let Some(msg) = &p.invalid {
        let note = msg.clone();
        publish(ctx, t.d, EventType::Warning, "InvalidAnnotations", note).await;
    }
}

/// The route (HTTP wake) first, as the ScaledObject's `external-push` trigger names it; then
/// the ScaledObject.
async fn apply(
    ctx: &Context,
    t: &Target<'_>,
    so: &Value,
    route: &Action,
    kserve: &KserveOwner,
) -> Result<Requeue, ReconcileError> {
    let so_api: Api<ScaledObject> = Api::namespaced(ctx.client.clone(), &t.ns);
    let so_name = name_of(so);
    // The store holds the managed ones; anything else of that name (KServe's, someone
    // else's) or nothing is only ever looked up before a first apply.
    let before = match ctx.managed_scaled_object(&t.ns, so_name) {
        Some(stored) => Some(stored.as_ref().clone()),
        None => so_api.get_opt(so_name).await?,
    };
    if plan::route_needs_reconcile(route, before.as_ref()) {
        reconcile_route(ctx, t.d, &t.ns, &t.uid, route).await?;
    }
    reconcile_token(ctx, t.d, &t.ns, before.as_ref(), Some(so)).await?;
    let target = ScaledObjectTarget {
        uid: &t.uid,
        kserve,
    };
    apply_scaled_object(ctx, t.d, &so_api, so, before, target).await
}

/// Deletes the ScaledObject managed for a Deployment that opted out (and its route first:
/// once the ScaledObject is gone this is not reached again).
async fn delete_managed(
    ctx: &Context,
    t: &Target<'_>,
    so_name: &str,
    route: &Action,
) -> Result<(), ReconcileError> {
    let Some(existing) = ctx.managed_scaled_object(&t.ns, so_name) else {
        return Ok(());
    };
    if !plan::is_managed_for(&existing.metadata, &t.uid) {
        return Ok(());
    }
    if plan::route_needs_reconcile(route, Some(existing.as_ref())) {
        reconcile_route(ctx, t.d, &t.ns, &t.uid, route).await?;
    }
    let so_api: Api<ScaledObject> = Api::namespaced(ctx.client.clone(), &t.ns);
    delete_scaled_object(ctx, t.d, &so_api, so_name).await?;
    reconcile_token(ctx, t.d, &t.ns, Some(existing.as_ref()), None).await
}

/// The namespace's token Secret for the built-in scaler: applied while the ScaledObject
/// (`after`) reads it; when it stops (`before` did, `after` does not) and no other managed
/// ScaledObject of the namespace reads it, deleted. A Deployment that never read the built-in
/// scaler costs no request here.
async fn reconcile_token(
    ctx: &Context,
    d: &Deployment,
    ns: &str,
    before: Option<&ScaledObject>,
    after: Option<&Value>,
) -> Result<(), ReconcileError> {
    let known = KnownScalers::of(&ctx.config);
    let reads = |so: &ScaledObject| token::reads_builtin(so, &known);
    let after: Option<ScaledObject> = after.and_then(|v| serde_json::from_value(v.clone()).ok());
    match (before.is_some_and(reads), after.as_ref().is_some_and(reads)) {
        (_, true) => apply_token(ctx, d, ns).await,
        (true, false) => {
            let name = before.map(ResourceExt::name_any).unwrap_or_default();
            let others = ctx.managed_scaled_objects_in(ns);
            let others = others.iter().filter(|so| so.name_any() != name);
            if token::still_needed(others.map(Arc::as_ref), &known) {
                return Ok(());
            }
            delete_token(ctx, ns).await
        }
        (false, false) => Ok(()),
    }
}

async fn apply_token(ctx: &Context, d: &Deployment, ns: &str) -> Result<(), ReconcileError> {
    let (wants_token, wants_ca) = (
        ctx.config.builtin_scaler_auth,
        ctx.config.builtin_scaler_tls,
    );
    let has = token::Content {
        key: ctx.trust_key.as_ref().filter(|_| wants_token),
        ca: ctx.scaler_ca.as_deref().filter(|_| wants_ca),
    };
    if let Some(note) = token::missing(wants_token, wants_ca, has) {
        publish(ctx, d, EventType::Warning, "ScalerTokenUnavailable", note).await;
    }
    let Some(secret) = token::secret(has, ns) else {
        return Ok(());
    };
    let fresh = ctx
        .tokens
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(ns)
        .is_some_and(|at| at.elapsed() < RESYNC);
    if fresh {
        return Ok(());
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(trust::SECRET_NAME, &params, &Patch::Apply(secret))
        .await?;
    ctx.tokens
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(ns.to_string(), Instant::now());
    tracing::info!(namespace = %ns, secret = trust::SECRET_NAME, token = has.key.is_some(), ca = has.ca.is_some(), "applied the built-in scaler's namespace Secret");
    Ok(())
}

async fn delete_token(ctx: &Context, ns: &str) -> Result<(), ReconcileError> {
    ctx.tokens
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(ns);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let Some(existing) = api.get_opt(trust::SECRET_NAME).await? else {
        return Ok(());
    };
    if token::is_ours(&existing.metadata) {
        match api
            .delete(trust::SECRET_NAME, &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(namespace = %ns, secret = trust::SECRET_NAME, "deleted the built-in scaler's namespace token: nothing reads the scaler there any more");
    }
    Ok(())
}

/// Deletes the managed ScaledObject of a Deployment that opted out; one already gone (the
/// store lags behind a delete) is not an error.
async fn delete_scaled_object(
    ctx: &Context,
    d: &Deployment,
    api: &Api<ScaledObject>,
    so_name: &str,
) -> Result<(), ReconcileError> {
    match api.delete(so_name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let note = format!("ScaledObject {so_name} deleted: the llm-autoscale opt-in was removed");
    publish(ctx, d, EventType::Normal, "ScaledObjectDeleted", note).await;
    tracing::info!(namespace = %d.namespace().unwrap_or_default(), deployment = %d.name_any(), scaled_object = %so_name, "deleted ScaledObject");
    ctx.metrics.record_result("deleted");
    Ok(())
}

/// Deletes KServe's ScaledObject left from autoscalerClass `keda` (see [`plan::holder_of`]).
async fn remove_kserve_leftover(
    ctx: &Context,
    d: &Deployment,
    api: &Api<ScaledObject>,
    existing: &ScaledObject,
) -> Result<(), ReconcileError> {
    if existing.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let name = existing.name_any();
    api.delete(&name, &DeleteParams::default()).await?;
    publish(
        ctx,
        d,
        EventType::Normal,
        "KServeScaledObjectRemoved",
        format!("deleted ScaledObject {name} that KServe created while the InferenceService had autoscalerClass keda (KServe never removes it); the llm-autoscale ScaledObject replaces it"),
    )
    .await;
    tracing::info!(deployment = %d.name_any(), scaled_object = %name, "removed KServe's leftover ScaledObject");
    ctx.metrics.record_result("kserve-leftover-removed");
    Ok(())
}

/// Applies or deletes the InterceptorRoute of HTTP wake. A missing CRD (the HTTP add-on not
/// installed) is an Event, not an error: the ScaledObject is still applied.
async fn reconcile_route(
    ctx: &Context,
    d: &Deployment,
    ns: &str,
    uid: &str,
    action: &Action,
) -> Result<(), ReconcileError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), ns, &interceptor_route_resource());
    match action {
        Action::Apply(route) => apply_route(ctx, d, &api, uid, route).await,
        Action::DeleteManaged(name) => {
            // A missing CRD reads as "not found": nothing to delete.
            let Some(existing) = ctx.route(ns, name).await? else {
                return Ok(());
            };
            if plan::is_managed_for(&existing.metadata, uid) {
                api.delete(name, &DeleteParams::default()).await?;
                publish(
                    ctx,
                    d,
                    EventType::Normal,
                    "InterceptorRouteDeleted",
                    format!("InterceptorRoute {name} deleted: HTTP wake (llm-autoscale.io/http-wake-*) or the opt-in was removed"),
                )
                .await;
            }
            Ok(())
        }
        Action::Skip(_) => Ok(()),
    }
}

async fn apply_route(
    ctx: &Context,
    d: &Deployment,
    api: &Api<DynamicObject>,
    uid: &str,
    route: &Value,
) -> Result<(), ReconcileError> {
    let name = name_of(route);
    let before = ctx.route(&d.namespace().unwrap_or_default(), name).await?;
    if let Some(existing) = &before {
        if !plan::is_managed_for(&existing.metadata, uid) {
            let note = format!(
                "an InterceptorRoute named {name} that llm-autoscale does not manage already exists: delete it, or remove the llm-autoscale.io/http-wake-* annotations"
            );
            publish(ctx, d, EventType::Warning, "InterceptorRouteConflict", note).await;
            return Ok(());
        }
        if plan::is_applied(route, &serde_json::to_value(existing)?) {
            return Ok(());
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch(name, &params, &Patch::Apply(route)).await {
        Ok(after) => {
            if before.as_ref().map(|b| b.metadata.generation) != Some(after.metadata.generation) {
                let note = format!(
                    "InterceptorRoute {name} applied: requests for {} are held by the KEDA HTTP add-on's interceptor while the Deployment wakes",
                    route.pointer("/spec/rules/0/hosts").unwrap_or(&Value::Null)
                );
                publish(ctx, d, EventType::Normal, "InterceptorRouteApplied", note).await;
            }
            Ok(())
        }
        // An apply creates what is missing, so 404 means the resource type is unknown.
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let note = "HTTP wake needs the KEDA HTTP add-on v0.15.0 or later (CRD interceptorroutes.http.keda.sh is not installed): install it; until then requests are not held and the Deployment does not wake from zero".to_string();
            publish(
                ctx,
                d,
                EventType::Warning,
                "InterceptorRouteCRDMissing",
                note,
            )
            .await;
            Ok(())
        }
        Err(kube::Error::Api(e)) if (400..500).contains(&e.code) => {
            let note = format!("InterceptorRoute {name} was refused: {}", e.message);
            publish(ctx, d, EventType::Warning, "InterceptorRouteRejected", note).await;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// `metadata.name` of a rendered object.
fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Who the ScaledObject is for: the Deployment and, for a KServe predictor, its
/// InferenceService.
struct ScaledObjectTarget<'a> {
    uid: &'a str,
    kserve: &'a KserveOwner,
}

/// Server-side applies the ScaledObject (`before`: the stored one), unless someone else holds
/// its name; KServe's leftover is removed first.
async fn apply_scaled_object(
    ctx: &Context,
    d: &Deployment,
    api: &Api<ScaledObject>,
    so: &Value,
    before: Option<ScaledObject>,
    target: ScaledObjectTarget<'_>,
) -> Result<Requeue, ReconcileError> {
    let so_name = name_of(so);
    if let Some(existing) = &before {
        match plan::holder_of(&existing.metadata, target.uid, target.kserve) {
            Holder::Us if plan::is_applied(so, &serde_json::to_value(existing)?) => {
                ctx.metrics.record_result("up-to-date");
                return Ok(Requeue::requeue(RESYNC));
            }
            Holder::Us => {}
            Holder::KserveLeftover => {
                remove_kserve_leftover(ctx, d, api, existing).await?;
                // Applied on the next pass, once it is gone (finalizers may hold it).
                return Ok(Requeue::requeue(Duration::from_secs(5)));
            }
            Holder::Foreign => {
                let note = format!(
                    "a ScaledObject named {so_name} that llm-autoscale does not manage already exists: delete it, or remove the llm-autoscale.io/enabled annotation"
                );
                publish(ctx, d, EventType::Warning, "ScaledObjectConflict", note).await;
                ctx.metrics.record_result("conflict");
                return Ok(Requeue::requeue(RESYNC));
            }
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api.patch(so_name, &params, &Patch::Apply(so)).await {
        Ok(after) => {
            if before.as_ref().map(|b| b.metadata.generation) != Some(after.metadata.generation) {
                let triggers = so
                    .pointer("/spec/triggers")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let note = format!("ScaledObject {so_name} applied ({triggers} trigger(s))");
                publish(ctx, d, EventType::Normal, "ScaledObjectApplied", note).await;
                tracing::info!(namespace = %d.namespace().unwrap_or_default(), deployment = %d.name_any(), scaled_object = %so_name, "applied ScaledObject");
            }
            ctx.metrics.record_result("applied");
            Ok(Requeue::requeue(RESYNC))
        }
        Err(kube::Error::Api(e)) if (400..500).contains(&e.code) => {
            // Refused by the apiserver or an admission webhook (e.g. KEDA's): say why.
            let note = format!("ScaledObject {so_name} was refused: {}", e.message);
            publish(ctx, d, EventType::Warning, "ScaledObjectRejected", note).await;
            ctx.metrics.record_result("rejected");
            Ok(Requeue::requeue(Duration::from_secs(60)))
        }
        Err(e) => Err(e.into()),
    }
}
