//! What the reconciler reads: the parts that live as long as the process ([`Shared`]) and,
//! for one term as leader, the watches of [`super::watches`] and the stores they fill
//! ([`Context`]). A lookup finds an object in its store, or reads it with a GET when the
//! store does not have it (not delivered yet, or its CRD was not installed when the term
//! started).

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use super::metadata::{AUTOSCALER_CLASS, DeploymentMeta, InferenceServiceMeta};
use super::metrics::ReconcileMetrics;
use super::plan::{self, InferenceServiceId, KserveOwner};
use super::watches;
use crate::config::WebhookConfig;
use crate::keda::ScaledObject;
use crate::keda::names::{MAX_NAME, bounded_name};

/// What lives as long as the process: the client, configuration, event recorder, metrics.
pub struct Shared {
    pub client: Client,
    pub config: WebhookConfig,
    pub recorder: Recorder,
    pub metrics: ReconcileMetrics,
    /// The built-in scaler's trust key (namespace tokens).
    pub trust_key: Option<crate::scaler::trust::TrustKey>,
    /// The built-in scaler's CA (PEM), for the sidecars' TLS (`--builtin-scaler-tls`).
    pub scaler_ca: Option<String>,
    /// Namespaces whose token Secret was applied, and when.
    pub tokens: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// A watch stream, as the controller takes it.
pub type Watch<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// What one term reads: [`Shared`] and the stores.
pub struct Context {
    shared: Arc<Shared>,
    /// Deployments labelled by the webhook, in full (without managedFields).
    deployments: Store<Deployment>,
    /// ScaledObjects labelled as managed by this product.
    scaled_objects: Store<ScaledObject>,
    /// InterceptorRoutes labelled as managed by this product, if their CRD is installed.
    routes: Option<Store<DynamicObject>>,
    /// Every InferenceService's uid and autoscaler class, if KServe's CRD is installed.
    inference_services: Option<Store<InferenceServiceMeta>>,
}

/// The watch streams that fill a [`Context`]'s stores, for the controller to run.
pub struct Watches {
    /// Every Deployment's trimmed metadata: the controller's own objects.
    pub all_metadata: Watch<DeploymentMeta>,
    pub metadata: Store<DeploymentMeta>,
    pub labelled: Watch<Deployment>,
    pub scaled_objects: Watch<ScaledObject>,
    pub routes: Option<Watch<DynamicObject>>,
    pub inference_services: Option<Watch<InferenceServiceMeta>>,
}

impl std::ops::Deref for Context {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// The KEDA HTTP add-on's InterceptorRoute (kedacore/http-add-on v0.15.0).
pub fn interceptor_route_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "http.keda.sh",
        "v1beta1",
        "InterceptorRoute",
    ))
}

/// Whether the API server serves `plural` in `group_version` (its CRD is installed), from
/// discovery (`GET /apis/<group>/<version>`, readable by every authenticated user). When
/// discovery fails the answer is no: the objects are then read with a GET when needed.
async fn serves(client: &Client, group_version: &str, plural: &str) -> bool {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => list.resources.iter().any(|r| r.name == plural),
        Err(kube::Error::Api(e)) if e.code == 404 => false,
        Err(e) => {
            tracing::warn!(error = %e, group_version, "reconciler: API discovery failed; {plural} are read with a GET when needed");
            false
        }
    }
}

impl Context {
    /// The managed ScaledObjects of namespace `ns` (from the store).
    pub fn managed_scaled_objects_in(&self, ns: &str) -> Vec<Arc<ScaledObject>> {
        self.scaled_objects
            .state()
            .into_iter()
            .filter(|so| so.metadata.namespace.as_deref() == Some(ns))
            .collect()
    }

    /// Starts the watches of one term: the CRDs of KServe and of the KEDA HTTP add-on are
    /// looked up once, and their objects watched only when installed.
    pub async fn watch(shared: Arc<Shared>) -> (Arc<Context>, Watches) {
        let client = shared.client.clone();
        // The one typed model of a ScaledObject (crate::keda), read and written as it is.
        let (scaled_objects, writer) = reflector::store::<ScaledObject>();
        let managed = watched(Api::all(client.clone()), &watches::managed_by_us(), writer);

        let (metadata, metadata_writer) = reflector::store::<DeploymentMeta>();
        let (owned, metrics) = (scaled_objects.clone(), shared.metrics.clone());
        let all_metadata = watcher(
            Api::<DeploymentMeta>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(metadata_writer)
        .applied_objects()
        // Only the Deployments with something to reconcile reach the controller.
        .try_filter(move |d| {
            let (ns, name) = (d.namespace().unwrap_or_default(), d.name_any());
            let has_so = owns_managed_scaled_object(&owned, &d.metadata);
            let reported = metrics.is_reported(&ns, &name);
            std::future::ready(watches::passes_on(&d.metadata, has_so, reported))
        })
        .boxed();

        let (deployments, writer) = reflector::store::<Deployment>();
        let labelled = watched(
            Api::all(client.clone()),
            &watches::labelled_deployments(),
            writer,
        );

        let (routes, route_watch) = route_watch(&client).await.unzip();
        let (inference_services, isvc_watch) = inference_service_watch(&client).await.unzip();

        let ctx = Context {
            shared,
            deployments,
            scaled_objects,
            routes,
            inference_services,
        };
        let watches = Watches {
            all_metadata,
            metadata,
            labelled,
            scaled_objects: managed,
            routes: route_watch,
            inference_services: isvc_watch,
        };
        (Arc::new(ctx), watches)
    }

    /// Every store has been filled once (the metadata store is awaited by the controller).
    pub fn stores_ready(&self) -> bool {
        fn ready<K: Resource<DynamicType = D> + Clone, D>(store: &Store<K>) -> bool
        where
            D: Eq + std::hash::Hash + Clone,
        {
            matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
        }
        ready(&self.deployments)
            && ready(&self.scaled_objects)
            && self.routes.as_ref().is_none_or(ready)
            && self.inference_services.as_ref().is_none_or(ready)
    }

    /// The labelled Deployment of this name, from the store.
    pub fn labelled_deployment(&self, ns: &str, name: &str) -> Option<Arc<Deployment>> {
        self.deployments.get(&ObjectRef::new(name).within(ns))
    }

    /// Whether the store holds a ScaledObject managed for this Deployment.
    pub fn owns_managed_scaled_object(&self, meta: &ObjectMeta) -> bool {
        owns_managed_scaled_object(&self.scaled_objects, meta)
    }

    /// The managed ScaledObject of this name, from the store.
    pub fn managed_scaled_object(&self, ns: &str, name: &str) -> Option<Arc<ScaledObject>> {
        self.scaled_objects.get(&ObjectRef::new(name).within(ns))
    }

    /// The InterceptorRoute of this name: the managed one from the store, else whatever a GET
    /// finds (someone else's, or one not delivered yet).
    pub async fn route(&self, ns: &str, name: &str) -> Result<Option<DynamicObject>, kube::Error> {
        let resource = interceptor_route_resource();
        if let Some(store) = &self.routes {
            let key = ObjectRef::new_with(name, resource.clone()).within(ns);
            if let Some(found) = store.get(&key) {
                return Ok(Some(found.as_ref().clone()));
            }
        }
        // A missing CRD reads as "not found".
        Api::<DynamicObject>::namespaced_with(self.client.clone(), ns, &resource)
            .get_opt(name)
            .await
    }

    /// The InferenceService named `isvc` (a predictor's owner): from the store, else read.
    pub async fn inference_service(
        &self,
        ns: &str,
        isvc: &str,
    ) -> Result<KserveOwner, kube::Error> {
        if let Some(found) = self
            .inference_services
            .as_ref()
            .and_then(|store| store.get(&ObjectRef::new(isvc).within(ns)))
        {
            return Ok(kserve_owner(&found.metadata));
        }
        let api: Api<InferenceServiceMeta> = Api::namespaced(self.client.clone(), ns);
        match api.get_opt(isvc).await {
            Ok(Some(found)) => Ok(kserve_owner(&found.metadata)),
            Ok(None) => Ok(KserveOwner::Missing),
            // No InferenceService CRD in this cluster.
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(KserveOwner::Missing),
            Err(e) => Err(e),
        }
    }
}

/// A store and the watch that fills it, when the resource's CRD is installed.
type Optional<K> = Option<(Store<K>, Watch<K>)>;

/// The managed InterceptorRoutes, in full.
async fn route_watch(client: &Client) -> Optional<DynamicObject> {
    let route = interceptor_route_resource();
    if !serves(client, &route.api_version, &route.plural).await {
        return None;
    }
    let writer = Writer::new(route.clone());
    let store = writer.as_reader();
    let api = Api::<DynamicObject>::all_with(client.clone(), &route);
    Some((store, watched(api, &watches::managed_by_us(), writer)))
}

/// Every InferenceService, metadata only.
async fn inference_service_watch(client: &Client) -> Optional<InferenceServiceMeta> {
    let version = InferenceServiceMeta::api_version(&());
    if !serves(client, &version, &InferenceServiceMeta::plural(&())).await {
        return None;
    }
    let (store, writer) = reflector::store::<InferenceServiceMeta>();
    let watch = watcher(Api::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .boxed();
    Some((store, watch))
}

/// Whether `store` holds a ScaledObject managed for the Deployment of this metadata.
fn owns_managed_scaled_object(store: &Store<ScaledObject>, meta: &ObjectMeta) -> bool {
    let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return false;
    };
    let key = ObjectRef::new(&bounded_name(name, MAX_NAME)).within(ns);
    store.get(&key).is_some_and(|so| {
        plan::is_managed_for(&so.metadata, meta.uid.as_deref().unwrap_or_default())
    })
}

/// An InferenceService found: who it is (for the ownerReferences KServe sets) and its class.
fn kserve_owner(meta: &ObjectMeta) -> KserveOwner {
    KserveOwner::Found {
        id: InferenceServiceId {
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
        },
        class: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(AUTOSCALER_CLASS))
            .cloned(),
    }
}

/// A label-selected watch of full objects into `writer`'s store, without managedFields;
/// deletions are passed on too (an object that loses the label leaves the watch).
fn watched<K>(api: Api<K>, selector: &str, writer: Writer<K>) -> Watch<K>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync,
    K: 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    watcher(api, watcher::Config::default().labels(selector))
        .default_backoff()
        .modify(|o| watches::trim_managed_fields(o.meta_mut()))
        .reflect(writer)
        .touched_objects()
        .boxed()
}
