//! Findings about TLS towards the built-in scaler (`--builtin-scaler-tls`): the two clients
//! must trust the scaler's CA.
//!
//! - The sidecars read it from key `ca.crt` of their namespace's Secret
//!   `llm-autoscale-scaler-token` (src/render/scaler_tls.rs; the reference is not optional, so
//!   a pod waits for it), which the reconciler writes from `--scaler-tls-ca`.
//! - KEDA's operator dials the scaler with TLS for triggers with `enableTLS` and verifies it
//!   against the system roots plus every file in its `--ca-dir` directories (repeatable,
//!   default `/custom/ca`, read once: kedacore/keda v2.21.0 `cmd/operator/main.go`,
//!   `pkg/util/certificates.go` `getRootCAs`). A directory with nothing mounted is empty or
//!   absent in KEDA's image, and public CAs do not sign certificates for in-cluster `.svc`
//!   names, so such a KEDA cannot verify the scaler.
//!
//! What the Deployment and the Secret say is read into plain data here ([`ca_dirs_of`],
//! [`secret_ca`]); the findings are pure functions of it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec, Secret};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::finding::{Check, Finding, Severity};
use super::snapshot::{CaDir, CaDirs, DirMount, OperatorCaDirs, SecretCa};
use crate::render::scaler_tls;
use crate::scaler::trust;

/// KEDA's operator flag naming a directory of trusted CA files.
const CA_DIR_FLAG: &str = "--ca-dir";
/// Its default (kedacore/keda v2.21.0 `cmd/operator/main.go`).
pub const DEFAULT_CA_DIR: &str = "/custom/ca";
/// The operator's container in KEDA's manifests and chart (kedacore/keda
/// `config/manager/manager.yaml`; kedacore/charts 2.20.2 `keda/templates/manager/deployment.yaml`).
const OPERATOR_CONTAINER: &str = "keda-operator";

/// The CA directories of KEDA's operator in `d`, and what is mounted at each.
pub fn ca_dirs_of(d: &Deployment) -> OperatorCaDirs {
    OperatorCaDirs {
        namespace: d.metadata.namespace.clone().unwrap_or_default(),
        name: d.metadata.name.clone().unwrap_or_default(),
        dirs: match d.spec.as_ref().and_then(|s| s.template.spec.as_ref()) {
            Some(pod) => pod_ca_dirs(pod),
            None => CaDirs::Unknown("the Deployment has no pod template".into()),
        },
    }
}

fn pod_ca_dirs(pod: &PodSpec) -> CaDirs {
    let container = match pod.containers.as_slice() {
        [only] => only,
        all => match all.iter().find(|c| c.name == OPERATOR_CONTAINER) {
            Some(c) => c,
            None => {
                return CaDirs::Unknown(format!(
                    "none of its {} containers is named {OPERATOR_CONTAINER}",
                    all.len()
                ));
            }
        },
    };
    let flags = match flag_values(container) {
        Ok(f) => f,
        Err(why) => return CaDirs::Unknown(why),
    };
    let dirs = if flags.is_empty() {
        vec![DEFAULT_CA_DIR.to_string()]
    } else {
        flags
    };
    let volumes = volume_sources(pod);
    CaDirs::Known(
        dirs.into_iter()
            .map(|path| CaDir {
                mount: mount_at(container, &volumes, &path),
                path,
            })
            .collect(),
    )
}

/// Every `--ca-dir` value of the container's command and arguments (`--ca-dir=DIR` or
/// `--ca-dir DIR`, as pflag reads them).
fn flag_values(c: &Container) -> Result<Vec<String>, String> {
    let words: Vec<&String> = c.command.iter().chain(c.args.iter()).flatten().collect();
    let mut out = Vec::new();
    let mut words = words.into_iter();
    while let Some(w) = words.next() {
        let value = if w == CA_DIR_FLAG {
            words.next().cloned()
        } else {
            w.strip_prefix(CA_DIR_FLAG)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_string)
        };
        if let Some(v) = value {
            if v.contains("$(") {
                return Err(format!(
                    "{CA_DIR_FLAG} {v} refers to an environment variable"
                ));
            }
            out.push(v);
        }
    }
    Ok(out)
}

/// Each volume of the pod by name, described by its source.
fn volume_sources(pod: &PodSpec) -> BTreeMap<String, String> {
    pod.volumes
        .iter()
        .flatten()
        .map(|v| {
            let source = if let Some(s) = &v.secret {
                format!("Secret {}", s.secret_name.as_deref().unwrap_or_default())
            } else if let Some(c) = &v.config_map {
                format!("ConfigMap {}", c.name)
            } else if v.projected.is_some() {
                format!("projected volume {}", v.name)
            } else {
                format!("volume {}", v.name)
            };
            (v.name.clone(), source)
        })
        .collect()
}

/// What is mounted at `dir` (or inside it), else at a directory above it.
fn mount_at(c: &Container, volumes: &BTreeMap<String, String>, dir: &str) -> DirMount {
    let dir = dir.trim_end_matches('/');
    let describe = |name: &String| {
        volumes
            .get(name)
            .cloned()
            .unwrap_or_else(|| format!("volume {name}"))
    };
    let mounts: Vec<(&str, &String)> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.mount_path.trim_end_matches('/'), &m.name))
        .collect();
    let inside = |p: &str| p == dir || p.strip_prefix(dir).is_some_and(|r| r.starts_with('/'));
    let above = |p: &str| dir.strip_prefix(p).is_some_and(|r| r.starts_with('/'));
    if let Some((_, name)) = mounts.iter().find(|(p, _)| inside(p)) {
        return DirMount::Volume(describe(name));
    }
    match mounts.iter().find(|(p, _)| above(p)) {
        Some((p, name)) => DirMount::Above {
            path: (*p).to_string(),
            source: describe(name),
        },
        None => DirMount::Nothing,
    }
}

/// What key `ca.crt` of the namespace's token Secret holds. The token next to it is not
/// looked at.
pub fn secret_ca(secret: &Secret) -> SecretCa {
    let Some(pem) = secret.data.as_ref().and_then(|d| d.get(scaler_tls::CA_KEY)) else {
        return SecretCa::NoKey;
    };
    match CertificateDer::pem_slice_iter(&pem.0)
        .filter(Result::is_ok)
        .count()
    {
        0 => SecretCa::NotPem,
        n => SecretCa::Certificates(n),
    }
}

/// One `keda-ca-dir` finding per KEDA operator Deployment (a warning when there is none).
pub fn keda_findings(operators: &[OperatorCaDirs]) -> Vec<Finding> {
    if operators.is_empty() {
        return vec![
            Finding::new(Check::KedaCaDir, Severity::Warning, "KEDA's operator")
                .saying(format!("no Deployment labelled app.kubernetes.io/name={OPERATOR_CONTAINER} was found, so whether KEDA trusts the built-in scaler's CA is not known"))
                .fix(KEDA_FIX),
        ];
    }
    operators.iter().map(keda_finding).collect()
}

const KEDA_FIX: &str = "mount a Secret or ConfigMap holding the scaler's CA (the ca.crt of its certificate, copied into KEDA's namespace) at /custom/ca in KEDA's operator, or at a directory named by --ca-dir (KEDA's chart: values volumes.keda.extraVolumes and volumes.keda.extraVolumeMounts, certificates.operator.caDirs), and restart it; or run the webhook with --builtin-scaler-tls=false";

fn keda_finding(op: &OperatorCaDirs) -> Finding {
    let subject = format!("Deployment {}/{}", op.namespace, op.name);
    let f = |severity| Finding::new(Check::KedaCaDir, severity, subject.clone());
    let dirs = match &op.dirs {
        CaDirs::Unknown(why) => {
            return f(Severity::Warning)
                .saying(format!(
                    "which CA files KEDA's operator trusts is not known: {why}"
                ))
                .fix(KEDA_FIX);
        }
        CaDirs::Known(dirs) => dirs,
    };
    let paths: Vec<&str> = dirs.iter().map(|d| d.path.as_str()).collect();
    let paths = paths.join(", ");
    if let Some((d, source)) = dirs.iter().find_map(|d| match &d.mount {
        DirMount::Volume(s) => Some((d, s)),
        _ => None,
    }) {
        return Finding::ok(
            Check::KedaCaDir,
            subject,
            format!(
                "its CA directories ({paths}) include {}, where {source} is mounted; it reads them once at start, so restart it after the CA changes",
                d.path
            ),
        );
    }
    if let Some((d, path, source)) = dirs.iter().find_map(|d| match &d.mount {
        DirMount::Above { path, source } => Some((d, path, source)),
        _ => None,
    }) {
        return f(Severity::Warning)
            .saying(format!("{source} is mounted at {path}, above its CA directory {}: whether it holds the scaler's CA there is not known", d.path))
            .fix(KEDA_FIX);
    }
    f(Severity::Error)
        .saying(format!("nothing is mounted at its CA directories ({paths}; --ca-dir, default {DEFAULT_CA_DIR}): it trusts only the system roots, which do not sign the scaler's in-cluster name, so every read of a builtin trigger with enableTLS fails its TLS handshake and KEDA runs the fallback"))
        .fix(KEDA_FIX)
}

/// The `builtin-scaler-ca` finding for the namespace's token Secret.
pub fn namespace_ca_finding(ca: Option<SecretCa>, namespace: &str) -> Finding {
    let subject = format!("Secret {namespace}/{}", trust::SECRET_NAME);
    let f = |severity| Finding::new(Check::BuiltinScalerCa, severity, subject.clone());
    let wait = format!(
        "the sidecars read key {} and do not start until it is there (the kubelet reports CreateContainerConfigError)",
        scaler_tls::CA_KEY
    );
    let fix = "the reconciler writes it from --scaler-tls-ca (LLM_AUTOSCALE_SCALER_TLS_CA, the PEM file of the CA of the scaler's certificate; with Helm, scaler.tls.secretName mounts it): give it the CA, and look for ScalerTokenUnavailable Events on the Deployment; or run the webhook with --builtin-scaler-tls=false";
    match ca {
        Some(SecretCa::Certificates(n)) => Finding::ok(
            Check::BuiltinScalerCa,
            subject,
            format!("key {} holds {n} PEM certificate(s) the sidecars verify the scaler with", scaler_tls::CA_KEY),
        ),
        Some(SecretCa::NoKey) => f(Severity::Error)
            .saying(format!("it has no key {}: {wait}", scaler_tls::CA_KEY))
            .fix(fix),
        Some(SecretCa::NoSecret) => f(Severity::Error)
            .saying(format!("it does not exist: {wait}"))
            .fix(fix),
        Some(SecretCa::NotPem) => f(Severity::Error)
            .saying(format!("key {} holds no PEM certificate: the sidecar's exporter cannot verify the scaler, so its exports fail", scaler_tls::CA_KEY))
            .fix(fix),
        Some(SecretCa::Forbidden) => f(Severity::Warning)
            .saying("not looked at: reading it was forbidden")
            .fix("the chart's doctor ClusterRole may read it when the chart installs the scaler with TLS (scaler.tls.secretName); otherwise grant get on secrets named llm-autoscale-scaler-token"),
        None => f(Severity::Warning).saying("it was not looked at"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// KEDA's operator Deployment as kedacore/keda `config/manager/manager.yaml` has it (two
    /// of its arguments, its certificates volume), with `extra` merged into the container and
    /// `volumes` added to the pod.
    fn operator(extra: Value, volumes: Value) -> Deployment {
        let mut container = json!({
            "name": "keda-operator",
            "args": ["--leader-elect", "--zap-log-level=info"],
            "volumeMounts": [{"name": "certificates", "mountPath": "/certs", "readOnly": true}]
        });
        if let (Some(c), Some(e)) = (container.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                c.insert(k.clone(), v.clone());
            }
        }
        let mut all_volumes =
            vec![json!({"name": "certificates", "secret": {"secretName": "kedaorg-certs"}})];
        all_volumes.extend(volumes.as_array().cloned().unwrap_or_default());
        serde_json::from_value(json!({
            "metadata": {"name": "keda-operator", "namespace": "keda"},
            "spec": {"selector": {}, "template": {"spec": {
                "containers": [container], "volumes": all_volumes
            }}}
        }))
        .unwrap()
    }

    fn severity(d: &Deployment) -> Severity {
        let f = keda_findings(&[ca_dirs_of(d)]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].check, Check::KedaCaDir);
        f[0].severity
    }

    fn ca_volume() -> Value {
        json!([{"name": "scaler-ca", "secret": {"secretName": "llm-autoscale-scaler-ca"}}])
    }

    #[test]
    fn kedas_own_manifests_trust_no_extra_ca() {
        let d = operator(json!({}), json!([]));
        assert_eq!(
            ca_dirs_of(&d).dirs,
            CaDirs::Known(vec![CaDir {
                path: DEFAULT_CA_DIR.into(),
                mount: DirMount::Nothing
            }])
        );
        let f = keda_findings(&[ca_dirs_of(&d)]);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(f[0].message.contains("/custom/ca"), "{}", f[0].message);
        assert!(
            f[0].fix.contains("volumes.keda.extraVolumes"),
            "{}",
            f[0].fix
        );
        assert_eq!(f[0].subject, "Deployment keda/keda-operator");
    }

    #[test]
    fn a_ca_mounted_at_the_default_directory_is_trusted() {
        // As KEDA's own end-to-end setup mounts it (kedacore/keda config/e2e/patch_operator.yml).
        let d = operator(
            json!({"volumeMounts": [{"name": "scaler-ca", "mountPath": "/custom/ca", "readOnly": true}]}),
            ca_volume(),
        );
        let f = keda_findings(&[ca_dirs_of(&d)]);
        assert_eq!(f[0].severity, Severity::Ok);
        assert!(
            f[0].message.contains("Secret llm-autoscale-scaler-ca"),
            "{}",
            f[0].message
        );
        // One file of it, by subPath, inside the directory.
        let file = operator(
            json!({"volumeMounts": [{"name": "scaler-ca", "mountPath": "/custom/ca/scaler.crt", "subPath": "ca.crt"}]}),
            ca_volume(),
        );
        assert_eq!(severity(&file), Severity::Ok);
    }

    #[test]
    fn ca_dir_flags_replace_the_default_in_both_spellings() {
        // KEDA's chart: certificates.operator.caDirs renders "--ca-dir=DIR" arguments.
        let elsewhere = operator(
            json!({
                "args": ["--leader-elect", "--ca-dir=/etc/extra-ca/", "--ca-dir", "/etc/more-ca"],
                "volumeMounts": [{"name": "scaler-ca", "mountPath": "/etc/more-ca"}]
            }),
            ca_volume(),
        );
        let CaDirs::Known(dirs) = ca_dirs_of(&elsewhere).dirs else {
            panic!()
        };
        let paths: Vec<&str> = dirs.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["/etc/extra-ca/", "/etc/more-ca"]);
        assert_eq!(severity(&elsewhere), Severity::Ok);
        // Mounted at the default while the flag moved the directory: not trusted.
        let moved = operator(
            json!({
                "args": ["--ca-dir=/etc/extra-ca"],
                "volumeMounts": [{"name": "scaler-ca", "mountPath": "/custom/ca"}]
            }),
            ca_volume(),
        );
        assert_eq!(severity(&moved), Severity::Error);
    }

    #[test]
    fn what_the_deployment_cannot_tell_is_a_warning() {
        let above = operator(
            json!({"volumeMounts": [{"name": "scaler-ca", "mountPath": "/custom"}]}),
            ca_volume(),
        );
        assert_eq!(
            ca_dirs_of(&above).dirs,
            CaDirs::Known(vec![CaDir {
                path: "/custom/ca".into(),
                mount: DirMount::Above {
                    path: "/custom".into(),
                    source: "Secret llm-autoscale-scaler-ca".into()
                }
            }])
        );
        assert_eq!(severity(&above), Severity::Warning);
        let from_env = operator(json!({"args": ["--ca-dir=$(CA_DIR)"]}), json!([]));
        assert_eq!(severity(&from_env), Severity::Warning);
        let mut two = operator(json!({}), json!([]));
        if let Some(pod) = two.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            pod.containers[0].name = "manager".into();
            pod.containers.push(pod.containers[0].clone());
        }
        assert!(matches!(ca_dirs_of(&two).dirs, CaDirs::Unknown(_)));
        assert_eq!(severity(&two), Severity::Warning);
        let none = keda_findings(&[]);
        assert_eq!(none[0].severity, Severity::Warning);
    }

    fn token_secret(data: Value) -> Secret {
        serde_json::from_value(json!({"metadata": {"name": trust::SECRET_NAME}, "data": data}))
            .unwrap()
    }

    #[test]
    fn the_namespaces_ca_is_read_from_the_secret_and_judged() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let ca = rcgen::generate_simple_self_signed(vec!["scaler".to_string()])
            .unwrap()
            .cert
            .pem();
        let two = format!("{ca}{ca}");
        assert_eq!(
            secret_ca(&token_secret(
                json!({"token": b64("t"), "ca.crt": b64(&two)})
            )),
            SecretCa::Certificates(2)
        );
        assert_eq!(
            secret_ca(&token_secret(json!({"token": b64("t")}))),
            SecretCa::NoKey
        );
        assert_eq!(
            secret_ca(&token_secret(json!({"ca.crt": b64("not a certificate")}))),
            SecretCa::NotPem
        );
        for (seen, want) in [
            (Some(SecretCa::Certificates(1)), Severity::Ok),
            (Some(SecretCa::NoKey), Severity::Error),
            (Some(SecretCa::NoSecret), Severity::Error),
            (Some(SecretCa::NotPem), Severity::Error),
            (Some(SecretCa::Forbidden), Severity::Warning),
            (None, Severity::Warning),
        ] {
            let f = namespace_ca_finding(seen, "llm");
            assert_eq!(
                (f.check, f.severity),
                (Check::BuiltinScalerCa, want),
                "{seen:?}"
            );
            assert_eq!(f.subject, "Secret llm/llm-autoscale-scaler-token");
            if want == Severity::Error {
                assert!(f.fix.contains("--scaler-tls-ca"), "{}", f.fix);
                assert!(f.fix.contains("scaler.tls.secretName"), "{}", f.fix);
            }
        }
    }
}
