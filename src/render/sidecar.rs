//! The collector sidecar container.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    ObjectFieldSelector, Probe, ResourceRequirements, SeccompProfile, SecretKeySelector,
    SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::collector_config::{
    self, BuiltinExport, CollectorInputs, ENV_POD_IP, ENV_POD_NAME, ENV_POD_NAMESPACE,
};
use super::scaler_tls;
use crate::annotations::{AutoscalingSpec, Backend};
use crate::config::WebhookConfig;
use crate::scaler::trust;

/// Name of the injected container; a user container with this name is an override.
pub const SIDECAR_NAME: &str = "llm-autoscale-collector";
/// Environment variable holding the collector configuration (`--config=env:…`).
pub const CONFIG_ENV: &str = "LLM_AUTOSCALE_COLLECTOR_CONFIG";

const TELEMETRY_PORTS: [u16; 4] = [8888, 18888, 28888, 38888];
const HEALTH_PORTS: [u16; 4] = [13133, 23133, 33133, 43133];

/// The first candidate port not used by the pod (or by the other collector port).
fn free_port(candidates: &[u16], taken: &[u16]) -> u16 {
    candidates
        .iter()
        .copied()
        .find(|p| !taken.contains(p))
        .unwrap_or_else(|| {
            // Every candidate is taken (unlikely): walk upwards from the last one.
            let mut p = candidates.last().copied().unwrap_or(1024);
            while taken.contains(&p) {
                p = p.wrapping_add(1).max(1024);
            }
            p
        })
}

/// Renders the sidecar for `spec`, avoiding the ports in `taken` (declared by the pod).
pub fn render(
    spec: &AutoscalingSpec,
    cfg: &WebhookConfig,
    taken: &[u16],
) -> Result<Container, super::RenderError> {
    let mut taken: Vec<u16> = taken.to_vec();
    taken.push(spec.scrape.port);
    let telemetry_port = free_port(&TELEMETRY_PORTS, &taken);
    taken.push(telemetry_port);
    let health_port = free_port(&HEALTH_PORTS, &taken);

    let limit_mib = cfg.collector_memory_limit_mib.max(32);
    // Leave the Go runtime and the limiter headroom below the container limit.
    let soft_mib = limit_mib * 4 / 5;
    let inputs = CollectorInputs {
        scrape_port: spec.scrape.port,
        scrape_path: spec.scrape.path.clone(),
        scrape_interval_seconds: spec.scrape.interval_seconds,
        metrics: spec.sidecar_metrics(),
        percentiles: spec.sidecar_percentiles(),
        collector_version: collector_config::collector_version(&cfg.collector_image),
        deployment: spec.target_deployment.clone(),
        otlp_endpoint: match spec.backend {
            Backend::Builtin => cfg.builtin_otlp_endpoint.clone(),
            _ => cfg.otlp_endpoint.clone(),
        },
        exporter_type: collector_config::exporter_type_for(collector_config::collector_version(
            &cfg.collector_image,
        )),
        memory_limit_mib: soft_mib,
        telemetry_port,
        health_port,
        builtin: spec.sidecar_deltas().then(|| BuiltinExport {
            token_env: cfg.builtin_scaler_auth.then_some(trust::TOKEN_ENV),
            ca_env: cfg.builtin_scaler_tls.then_some(scaler_tls::CA_ENV),
        }),
    };
    let config_yaml = collector_config::to_yaml(&collector_config::render(&inputs))?;
    Ok(Container {
        name: SIDECAR_NAME.into(),
        image: Some(cfg.collector_image.clone()),
        args: Some(vec![format!("--config=env:{CONFIG_ENV}")]),
        env: Some(sidecar_env(inputs.builtin.as_ref(), soft_mib, config_yaml)),
        ports: Some(vec![ContainerPort {
            name: Some("llmas-telemetry".into()),
            container_port: i32::from(telemetry_port),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        resources: Some(resources(limit_mib)),
        liveness_probe: Some(liveness(health_port)),
        security_context: Some(restricted()),
        ..Container::default()
    })
}

/// The sidecar's environment: the pod's identity, the Go memory limit, the built-in scaler's
/// token and CA from the namespace's Secret (when used), and the collector configuration.
fn sidecar_env(builtin: Option<&BuiltinExport>, soft_mib: u32, config_yaml: String) -> Vec<EnvVar> {
    let token = builtin
        .and_then(|b| b.token_env)
        .map(|env| secret_env(env, trust::SECRET_KEY));
    let ca = builtin
        .and_then(|b| b.ca_env)
        .map(|env| secret_env(env, scaler_tls::CA_KEY));
    vec![
        field_env(ENV_POD_NAME, "metadata.name"),
        field_env(ENV_POD_NAMESPACE, "metadata.namespace"),
        field_env(ENV_POD_IP, "status.podIP"),
        value_env("GOMEMLIMIT", format!("{soft_mib}MiB")),
    ]
    .into_iter()
    .chain(token)
    .chain(ca)
    .chain([value_env(CONFIG_ENV, config_yaml)])
    .collect()
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
        value: None,
    }
}

/// `name` from `key` of the namespace's Secret, which the reconciler provisions (a pod that
/// starts before it exists waits: the reference is not optional).
fn secret_env(name: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: trust::SECRET_NAME.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        value: None,
    }
}

fn value_env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    }
}

fn resources(limit_mib: u32) -> ResourceRequirements {
    let quantities = |pairs: &[(&str, String)]| -> BTreeMap<String, Quantity> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.clone())))
            .collect()
    };
    ResourceRequirements {
        requests: Some(quantities(&[
            ("cpu", "20m".into()),
            ("memory", "64Mi".into()),
        ])),
        limits: Some(quantities(&[("memory", format!("{limit_mib}Mi"))])),
        ..ResourceRequirements::default()
    }
}

/// The collector's health_check extension on `health_port`.
fn liveness(health_port: u16) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/".into()),
            port: IntOrString::Int(i32::from(health_port)),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(30),
        timeout_seconds: Some(5),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// Compliant with the "restricted" Pod Security Standard.
fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(10001),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_skip_taken_ones() {
        assert_eq!(free_port(&TELEMETRY_PORTS, &[8000]), 8888);
        assert_eq!(free_port(&TELEMETRY_PORTS, &[8888]), 18888);
        assert_eq!(free_port(&[1, 2], &[1, 2, 3]), 1024);
    }
}
