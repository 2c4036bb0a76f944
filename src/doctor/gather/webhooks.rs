//! The product's webhooks: their configurations, the ready endpoints of a Service they call,
//! and a TLS handshake trusting only their `caBundle`.

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Client;
use kube::api::{Api, ListParams};

use super::{GatherError, GatherOptions, api};
use crate::doctor::address::ServiceRef;
use crate::doctor::probe::tls_handshake;
use crate::doctor::snapshot::{HookKind, Probe, ServedCertificate, WebhookSeen, WebhookTarget};

/// Suffix of the product's webhook names.
const HOOK_SUFFIX: &str = ".llm-autoscale.io";

pub(super) async fn webhooks(
    client: &Client,
    opts: &GatherOptions,
) -> Result<Vec<WebhookSeen>, GatherError> {
    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(api("listing MutatingWebhookConfigurations"))?;
    let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(api("listing ValidatingWebhookConfigurations"))?;
    // Both kinds as (configuration, kind, parts): their webhooks are different types with the
    // same fields.
    macro_rules! hooks_of {
        ($configs:expr, $kind:expr) => {
            $configs.into_iter().flat_map(|c| {
                let config = c.metadata.name.clone().unwrap_or_default();
                c.webhooks.into_iter().flatten().map(move |h| {
                    let parts: HookParts = (
                        h.name,
                        h.client_config,
                        h.failure_policy,
                        h.namespace_selector,
                        h.object_selector,
                    );
                    (config.clone(), $kind, parts)
                })
            })
        };
    }
    let hooks: Vec<(String, HookKind, HookParts)> = hooks_of!(mutating, HookKind::Mutating)
        .chain(hooks_of!(validating, HookKind::Validating))
        .collect();
    let mut out = Vec::new();
    for (config, kind, parts) in hooks {
        if parts.0.ends_with(HOOK_SUFFIX) {
            out.push(webhook(client, opts, &config, kind, parts).await?);
        }
    }
    Ok(out)
}

type HookParts = (
    String,
    WebhookClientConfig,
    Option<String>,
    Option<LabelSelector>,
    Option<LabelSelector>,
);

async fn webhook(
    client: &Client,
    opts: &GatherOptions,
    configuration: &str,
    kind: HookKind,
    (name, cc, failure_policy, namespace_selector, object_selector): HookParts,
) -> Result<WebhookSeen, GatherError> {
    let ca_bundle = cc.ca_bundle.map(|b| b.0).unwrap_or_default();
    let (target, ready_endpoints) = match (cc.url, cc.service) {
        (Some(url), _) => (WebhookTarget::Url(url), None),
        (None, Some(s)) => {
            let service = ServiceRef {
                namespace: s.namespace,
                name: s.name,
                port: u16::try_from(s.port.unwrap_or(443)).ok(),
            };
            let ready = ready_endpoints(client, &service).await?;
            let path = s.path.unwrap_or_default();
            (WebhookTarget::Service { service, path }, Some(ready))
        }
        (None, None) => (WebhookTarget::Url(String::new()), None),
    };
    let tls = webhook_tls(&target, &ca_bundle, opts).await;
    Ok(WebhookSeen {
        configuration: configuration.to_string(),
        kind,
        name,
        target,
        ca_bundle,
        // The API's default (admissionregistration.k8s.io/v1).
        failure_policy: failure_policy.unwrap_or_else(|| "Fail".into()),
        namespace_selector,
        object_selector,
        ready_endpoints,
        tls,
    })
}

async fn ready_endpoints(client: &Client, service: &ServiceRef) -> Result<usize, GatherError> {
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), &service.namespace)
        .list(
            &ListParams::default().labels(&format!("kubernetes.io/service-name={}", service.name)),
        )
        .await
        .map_err(api(format!(
            "listing the EndpointSlices of Service {service}"
        )))?;
    Ok(slices
        .items
        .iter()
        .flat_map(|s| &s.endpoints)
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .count())
}

/// The TLS check: a URL directly; a Service by its DNS name in the cluster, or through
/// `--webhook-address` from outside, verified for the name the API server uses
/// (`<service>.<namespace>.svc`).
async fn webhook_tls(
    target: &WebhookTarget,
    ca_bundle: &[u8],
    opts: &GatherOptions,
) -> Probe<ServedCertificate> {
    match target {
        WebhookTarget::Url(u) => match url::Url::parse(u) {
            Ok(parsed) => {
                let host = parsed
                    .host_str()
                    .unwrap_or_default()
                    .trim_matches(['[', ']']);
                let port = parsed.port_or_known_default().unwrap_or(443);
                let address = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                tls_handshake(&address, host, ca_bundle).await
            }
            Err(e) => Probe::Failed(format!("clientConfig.url {u:?}: {e}")),
        },
        WebhookTarget::Service { service, .. } => {
            let name = format!("{}.{}.svc", service.name, service.namespace);
            let port = service.port.unwrap_or(443);
            match (&opts.webhook_address, opts.in_cluster) {
                (Some(a), _) => tls_handshake(a, &name, ca_bundle).await,
                (None, true) => tls_handshake(&format!("{name}:{port}"), &name, ca_bundle).await,
                (None, false) => Probe::NotTried(format!(
                    "outside the cluster {name} does not resolve: run doctor in the cluster, or kubectl port-forward -n {} svc/{} 8443:{port} and pass --webhook-address 127.0.0.1:8443",
                    service.namespace, service.name
                )),
            }
        }
    }
}
