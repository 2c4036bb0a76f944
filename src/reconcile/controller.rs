//! The kube-runtime controller: Deployments (and the ScaledObjects they own) → apply, repair,
//! delete, and report; with HTTP wake the same for their InterceptorRoutes, and KServe's
//! leftover ScaledObject removed. Thin: every decision comes from [`super::plan`] and
//! [`super::watches`], which also says what is watched and kept.
//!
//! The controller's own objects are the Deployments' trimmed metadata (every Deployment of
//! the cluster); a reconcile takes the full Deployment from the store of labelled ones, or
//! reads it when its metadata calls for it, and the ScaledObjects from the store of managed
//! ones. At most [`CONCURRENCY`] reconciles run at once, and a stop lets the running ones
//! finish (kube-runtime `src/controller/mod.rs`: `Config::concurrency`,
//! `Controller::graceful_shutdown_on`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::controller::{Action as Requeue, Config, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::Value;

use super::metrics::ReconcileMetrics;
use super::plan::{
    self, Action, FIELD_MANAGER, Holder, InferenceServiceId, KserveOwner, SidecarState,
};
use super::token;
use super::watches::{self, DeploymentMeta, Source};
use crate::config::WebhookConfig;
use crate::keda::ScaledObject;
use crate::keda::names::{MAX_NAME, bounded_name};
use crate::keda::trigger::KnownScalers;
use crate::scaler::trust::{self, TrustKey};

/// Reconciles running at once, at most.
pub const CONCURRENCY: u16 = 8;
/// Until the next reconcile of an opted-in Deployment (drift is repaired sooner: the managed
/// ScaledObjects are watched).
const RESYNC: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
}

/// What lives as long as the process: the client, configuration, event recorder, metrics.
pub struct Shared {
    pub client: Client,
    pub config: WebhookConfig,
    pub recorder: Recorder,
    pub metrics: ReconcileMetrics,
    /// The built-in scaler's trust key (namespace tokens).
    pub trust_key: Option<TrustKey>,
    /// Namespaces whose token Secret was applied, and when.
    pub tokens: Mutex<HashMap<String, Instant>>,
}

/// What one run of the controller (one term as leader) reads: [`Shared`] and its stores.
pub struct Context {
    shared: Arc<Shared>,
    /// Deployments labelled by the webhook, in full (without managedFields).
    deployments: Store<Deployment>,
    /// ScaledObjects labelled as managed by this product.
    scaled_objects: Store<ScaledObject>,
}

impl std::ops::Deref for Context {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Context {
    /// Both stores have been filled once (the metadata store is awaited by the controller).
    fn stores_ready(&self) -> bool {
        let ready =
            |f: Option<Result<(), reflector::store::WriterDropped>>| matches!(f, Some(Ok(())));
        ready(self.deployments.wait_until_ready().now_or_never())
            && ready(self.scaled_objects.wait_until_ready().now_or_never())
    }

    /// The managed ScaledObject of this name, from the store.
    fn managed_scaled_object(&self, ns: &str, name: &str) -> Option<Arc<ScaledObject>> {
        self.scaled_objects.get(&ObjectRef::new(name).within(ns))
    }
}

/// The KEDA HTTP add-on's InterceptorRoute (kedacore/http-add-on v0.15.0).
fn interceptor_route_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "http.keda.sh",
        "v1beta1",
        "InterceptorRoute",
    ))
}

fn inference_service_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "serving.kserve.io",
        "v1beta1",
        "InferenceService",
    ))
}

/// Runs the controller until `stop` completes and the reconciles running then have finished.
pub async fn run(shared: Arc<Shared>, stop: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = shared.client.clone();

    let (metadata, metadata_writer) = reflector::store::<DeploymentMeta>();
    let all_metadata = watcher(
        Api::<DeploymentMeta>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(metadata_writer)
    .applied_objects();

    let (deployments, deployments_writer) = reflector::store::<Deployment>();
    let labelled = watcher(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default().labels(&watches::labelled_deployments()),
    )
    .default_backoff()
    .modify(|d| watches::trim_managed_fields(&mut d.metadata))
    .reflect(deployments_writer)
    // Deleted too: a Deployment that loses the label leaves this watch.
    .touched_objects();

    // The one typed model of a ScaledObject (crate::keda), read and written as it is.
    let (scaled_objects, so_writer) = reflector::store::<ScaledObject>();
    let managed = watcher(
        Api::<ScaledObject>::all(client),
        watcher::Config::default().labels(&watches::managed_scaled_objects()),
    )
    .default_backoff()
    .modify(|so| watches::trim_managed_fields(&mut so.metadata))
    .reflect(so_writer)
    .touched_objects();

    let ctx = Arc::new(Context {
        shared,
        deployments,
        scaled_objects,
    });
    Controller::for_stream(all_metadata, metadata)
        .owns_stream(managed)
        .watches_stream(labelled, |d: Deployment| {
            Some(ObjectRef::new(&d.name_any()).within(&d.namespace().unwrap_or_default()))
        })
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

/// The predictor's InferenceService: who it is (for ownerReferences) and its autoscaler class.
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
        Ok(Some(obj)) => Ok(KserveOwner::Found {
            id: InferenceServiceId {
                name: obj.name_any(),
                uid: obj.uid().unwrap_or_default(),
            },
            class: obj
                .annotations()
                .get("serving.kserve.io/autoscalerClass")
                .cloned(),
        }),
        Ok(None) => Ok(KserveOwner::Missing),
        // No InferenceService CRD in this cluster.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(KserveOwner::Missing),
        Err(e) => Err(e),
    }
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
    let uid = meta.uid().unwrap_or_default();
    let owns_scaled_object = match ctx.managed_scaled_object(&ns, &bounded_name(&name, MAX_NAME)) {
        Some(so) => plan::is_managed_for(&so.metadata, &uid),
        None => false,
    };
    let deployment = match watches::source_of(&meta.metadata, owns_scaled_object) {
        Source::Store => match ctx.deployments.get(&ObjectRef::new(&name).within(&ns)) {
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

async fn reconcile_deployment(d: &Deployment, ctx: &Context) -> Result<Requeue, ReconcileError> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let uid = d.uid().unwrap_or_default();
    let json = serde_json::to_value(d)?;
    let kserve = kserve_owner(ctx, &ns, &json).await?;
    let p = plan::plan(&json, &kserve, &ctx.config);

    ctx.metrics.record_sidecar(&ns, &name, p.sidecar);
    if let Some((reason, note)) = p.sidecar.event() {
        publish(ctx, d, EventType::Warning, reason, note.to_string()).await;
    }
    if let Some(msg) = &p.invalid {
        publish(
            ctx,
            d,
            EventType::Warning,
            "InvalidAnnotations",
            msg.clone(),
        )
        .await;
    }

    let so_api: Api<ScaledObject> = Api::namespaced(ctx.client.clone(), &ns);
    match p.action {
        Action::Apply(so) => {
            let so_name = name_of(&so);
            // The store holds the managed ones; anything else of that name (KServe's, someone
            // else's) or nothing is only ever looked up before a first apply.
            let before = match ctx.managed_scaled_object(&ns, so_name) {
                Some(stored) => Some(stored.as_ref().clone()),
                None => so_api.get_opt(so_name).await?,
            };
            if plan::route_needs_reconcile(&p.route, before.as_ref()) {
                reconcile_route(ctx, d, &ns, &uid, &p.route).await?;
            }
            reconcile_token(ctx, d, &ns, before.as_ref(), Some(&so)).await?;
            let target = ScaledObjectTarget {
                uid: &uid,
                kserve: &kserve,
            };
            return apply_scaled_object(ctx, d, &so_api, &so, before, target).await;
        }
        Action::DeleteManaged(so_name) => {
            if let Some(existing) = ctx.managed_scaled_object(&ns, &so_name) {
                if plan::is_managed_for(&existing.metadata, &uid) {
                    // The route first: once the ScaledObject is gone this branch is not
                    // reached again for a Deployment that opted out.
                    if plan::route_needs_reconcile(&p.route, Some(existing.as_ref())) {
                        reconcile_route(ctx, d, &ns, &uid, &p.route).await?;
                    }
                    delete_scaled_object(ctx, d, &so_api, &so_name).await?;
                    reconcile_token(ctx, d, &ns, Some(existing.as_ref()), None).await?;
                }
            }
            // Not opted in: nothing to repair periodically. A change of the Deployment, or of
            // a ScaledObject it owns, wakes this up again.
            return Ok(Requeue::await_change());
        }
        Action::Skip(reason) => {
            if p.invalid.is_none() {
                publish(
                    ctx,
                    d,
                    EventType::Warning,
                    "Skipped",
                    format!("no ScaledObject: {reason}"),
                )
                .await;
            }
            ctx.metrics.record_result("skipped");
        }
    }
    Ok(Requeue::requeue(RESYNC))
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
            let others: Vec<Arc<ScaledObject>> = ctx
                .scaled_objects
                .state()
                .into_iter()
                .filter(|so| so.namespace().as_deref() == Some(ns) && so.name_any() != name)
                .collect();
            if token::still_needed(others.iter().map(Arc::as_ref), &known) {
                return Ok(());
            }
            delete_token(ctx, ns).await
        }
        (false, false) => Ok(()),
    }
}

async fn apply_token(ctx: &Context, d: &Deployment, ns: &str) -> Result<(), ReconcileError> {
    if !ctx.config.builtin_scaler_auth {
        return Ok(());
    }
    let Some(key) = &ctx.trust_key else {
        let note = format!(
            "the built-in scaler's sidecars read their namespace's token from Secret {}, which this reconciler cannot make without the scaler's trust key (--trust-key-file / LLM_AUTOSCALE_SCALER_TRUST_KEY_FILE): give it the key, or run the webhook with --builtin-scaler-auth=false",
            trust::SECRET_NAME
        );
        publish(ctx, d, EventType::Warning, "ScalerTokenUnavailable", note).await;
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
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(ctx.client.clone(), ns);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(
        trust::SECRET_NAME,
        &params,
        &Patch::Apply(token::secret(key, ns)),
    )
    .await?;
    ctx.tokens
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(ns.to_string(), Instant::now());
    tracing::info!(namespace = %ns, secret = trust::SECRET_NAME, "applied the built-in scaler's namespace token");
    Ok(())
}

async fn delete_token(ctx: &Context, ns: &str) -> Result<(), ReconcileError> {
    ctx.tokens
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(ns);
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(ctx.client.clone(), ns);
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
            let Some(existing) = api.get_opt(name).await? else {
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
    let before = api.get_opt(name).await?;
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
