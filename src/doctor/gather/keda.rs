//! KEDA in the cluster: its ScaledObject CRD, its operator's Deployments (their readiness, and
//! the CA directories they trust), and the APIService of its metrics server.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};

use super::{GatherError, api};
use crate::doctor::scaler_tls;
use crate::doctor::snapshot::{ApiServiceSeen, DeploymentReadiness, KedaSeen};

fn api_service_resource() -> ApiResource {
    ApiResource {
        group: "apiregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "apiregistration.k8s.io/v1".into(),
        kind: "APIService".into(),
        plural: "apiservices".into(),
    }
}

pub(super) async fn keda(client: &Client) -> Result<KedaSeen, GatherError> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let crd = crds
        .get_opt("scaledobjects.keda.sh")
        .await
        .map_err(api("reading CRD scaledobjects.keda.sh"))?
        .is_some();
    let found = Api::<Deployment>::all(client.clone())
        .list(&ListParams::default().labels("app.kubernetes.io/name=keda-operator"))
        .await
        .map_err(api(
            "listing Deployments labelled app.kubernetes.io/name=keda-operator",
        ))?
        .items;
    let operator_ca = found.iter().map(scaler_tls::ca_dirs_of).collect();
    let operators = found
        .into_iter()
        .map(|d| DeploymentReadiness {
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            name: d.metadata.name.clone().unwrap_or_default(),
            ready: d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
            wanted: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        })
        .collect();
    let apiservice = Api::<DynamicObject>::all_with(client.clone(), &api_service_resource())
        .get_opt("v1beta1.external.metrics.k8s.io")
        .await
        .map_err(api("reading APIService v1beta1.external.metrics.k8s.io"))?;
    let metrics_api = match apiservice {
        None => ApiServiceSeen::Missing,
        Some(o) => {
            let v = serde_json::to_value(&o).unwrap_or_default();
            match crate::doctor::keda::condition(&v, "Available") {
                Some(c) if c.status == "True" => ApiServiceSeen::Available,
                Some(c) => ApiServiceSeen::Unavailable(format!("{}: {}", c.reason, c.message)),
                None => ApiServiceSeen::Unavailable("no Available condition yet".into()),
            }
        }
    };
    Ok(KedaSeen {
        crd,
        operators,
        metrics_api,
        operator_ca,
    })
}
