//! What the kubelet does to a container spec before the runtime starts it, as far as the
//! sidecar can observe: resolve `env` (`value` with `$(VAR)` expansion, `valueFrom.fieldRef`,
//! `valueFrom.resourceFieldRef`, `valueFrom.secretKeyRef` from the namespace's Secrets) and
//! expand `$(VAR)` in `command` and `args`.
//!
//! Follows Kubernetes' rules (`third_party/forked/golang/expansion` and the kubelet's
//! `makeEnvironmentVariables`): a variable may reference only variables defined before it,
//! an unresolvable `$(VAR)` stays as written, and `$$` becomes `$`.

use std::collections::BTreeMap;

use serde_json::Value;

/// The pod the container runs in: what downward-API references resolve against.
#[derive(Clone, Debug)]
pub struct PodFacts {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub node_name: String,
    pub service_account: String,
    pub pod_ip: String,
    pub host_ip: String,
    /// Node allocatable, used by `resourceFieldRef` when the container sets no limit.
    pub node_allocatable_cpu: String,
    pub node_allocatable_memory: String,
    /// The namespace's Secrets: name → key → value (decoded).
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
}

/// The process the runtime would start: arguments after the entrypoint, and environment.
#[derive(Clone, Debug)]
pub struct ResolvedContainer {
    /// `command[1..]` followed by `args` (the entrypoint itself is replaced by the test's
    /// binary); all with `$(VAR)` expanded.
    pub argv: Vec<String>,
    /// The container's environment, in declaration order.
    pub env: Vec<(String, String)>,
}

/// Resolves `container` (a `v1.Container` as JSON) of a pod whose spec is `pod_spec`.
pub fn resolve(
    container: &Value,
    pod_spec: &Value,
    pod: &PodFacts,
) -> Result<ResolvedContainer, String> {
    if container.get("envFrom").is_some_and(|v| !is_empty(v)) {
        return Err("envFrom is not supported by this harness".into());
    }
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = var
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("env entry without a name: {var}"))?
            .to_string();
        let value = if let Some(from) = var.get("valueFrom") {
            value_from(from, container, pod_spec, pod).map_err(|e| format!("env {name}: {e}"))?
        } else {
            let raw = var.get("value").and_then(Value::as_str).unwrap_or("");
            expand(raw, |key| lookup(&env, key))
        };
        // A later definition of the same name replaces the earlier one.
        env.retain(|(n, _)| *n != name);
        env.push((name, value));
    }

    let strings = |key: &str| -> Vec<String> {
        container
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|s| expand(s, |k| lookup(&env, k)))
            .collect()
    };
    let command = strings("command");
    let args = strings("args");
    let argv = command.into_iter().skip(1).chain(args).collect();
    Ok(ResolvedContainer { argv, env })
}

fn is_empty(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(Vec::is_empty)
}

fn lookup(env: &[(String, String)], key: &str) -> Option<String> {
    env.iter()
        .rev()
        .find(|(n, _)| n == key)
        .map(|(_, v)| v.clone())
}

/// Kubernetes' `$(VAR)` expansion: `$$` → `$`; `$(NAME)` → the value, or kept verbatim when
/// unknown; `$` before anything else is kept.
pub fn expand(input: &str, mapping: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push(b'$');
                    i += 2;
                }
                b'(' => match bytes[i + 2..].iter().position(|&b| b == b')') {
                    Some(len) => {
                        let name = &input[i + 2..i + 2 + len];
                        match mapping(name) {
                            Some(v) => out.extend_from_slice(v.as_bytes()),
                            None => out.extend_from_slice(format!("$({name})").as_bytes()),
                        }
                        i += 2 + len + 1;
                    }
                    None => {
                        out.extend_from_slice(b"$(");
                        i += 2;
                    }
                },
                _ => {
                    out.push(b'$');
                    i += 1;
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("expansion splits only at ASCII bytes")
}

fn value_from(
    from: &Value,
    container: &Value,
    pod_spec: &Value,
    pod: &PodFacts,
) -> Result<String, String> {
    if let Some(field) = from.get("fieldRef") {
        let path = field
            .get("fieldPath")
            .and_then(Value::as_str)
            .ok_or("fieldRef without fieldPath")?;
        return field_ref(path, pod);
    }
    if let Some(resource) = from.get("resourceFieldRef") {
        return resource_field_ref(resource, container, pod_spec, pod);
    }
    if let Some(secret) = from.get("secretKeyRef") {
        let get = |k: &str| secret.get(k).and_then(Value::as_str).unwrap_or_default();
        let (name, key) = (get("name"), get("key"));
        return match pod.secrets.get(name).and_then(|data| data.get(key)) {
            Some(v) => Ok(v.clone()),
            // The kubelet does not start the container (CreateContainerConfigError) unless
            // the reference is optional.
            None if secret.get("optional").and_then(Value::as_bool) == Some(true) => {
                Ok(String::new())
            }
            None => Err(format!("secret {name:?} key {key:?} not found")),
        };
    }
    Err(format!(
        "unsupported valueFrom (only fieldRef, resourceFieldRef and secretKeyRef are resolved here): {from}"
    ))
}

fn field_ref(path: &str, pod: &PodFacts) -> Result<String, String> {
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_prefix("['")?;
        Some(rest.strip_suffix("']")?.to_string())
    };
    if let Some(key) = subscript("metadata.labels") {
        return Ok(pod.labels.get(&key).cloned().unwrap_or_default());
    }
    if let Some(key) = subscript("metadata.annotations") {
        return Ok(pod.annotations.get(&key).cloned().unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => pod.name.clone(),
        "metadata.namespace" => pod.namespace.clone(),
        "metadata.uid" => pod.uid.clone(),
        "spec.nodeName" => pod.node_name.clone(),
        "spec.serviceAccountName" => pod.service_account.clone(),
        "status.podIP" | "status.podIPs" => pod.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => pod.host_ip.clone(),
        other => return Err(format!("unsupported fieldRef.fieldPath {other:?}")),
    })
}

fn resource_field_ref(
    reference: &Value,
    container: &Value,
    pod_spec: &Value,
    pod: &PodFacts,
) -> Result<String, String> {
    let resource = reference
        .get("resource")
        .and_then(Value::as_str)
        .ok_or("resourceFieldRef without resource")?;
    let target = match reference.get("containerName").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => ["containers", "initContainers"]
            .iter()
            .flat_map(|k| {
                pod_spec
                    .get(*k)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
            .ok_or_else(|| format!("resourceFieldRef names unknown container {name:?}"))?,
        _ => container,
    };
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported resource {resource:?}"))?;
    let declared = target
        .get("resources")
        .and_then(|r| r.get(kind))
        .and_then(|m| m.get(name))
        .map(|q| match q {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    let quantity = match (declared, kind, name) {
        (Some(q), _, _) => q,
        // Unset limits (and requests) resolve to the node's allocatable.
        (None, _, "cpu") => pod.node_allocatable_cpu.clone(),
        (None, _, "memory") => pod.node_allocatable_memory.clone(),
        (None, _, _) => return Err(format!("no value for resource {resource:?}")),
    };
    let divisor = match reference.get("divisor") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "1".to_string(),
    };
    let value = parse_quantity(&quantity)?;
    let divisor = parse_quantity(&divisor)?;
    if divisor <= 0.0 {
        return Err(format!("divisor {divisor} must be positive"));
    }
    // The kubelet rounds up (and reports at least 1 for a non-zero CPU value).
    let mut result = (value / divisor - 1e-9).ceil().max(0.0);
    if name == "cpu" && value > 0.0 {
        result = result.max(1.0);
    }
    Ok(format!("{}", result as u64))
}

/// A Kubernetes resource quantity (`128Mi`, `0.5`, `250m`, `1e3`, `2G`) in base units.
pub fn parse_quantity(q: &str) -> Result<f64, String> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid quantity {q:?}"))?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..]
                .parse()
                .map_err(|_| format!("invalid quantity {q:?}"))?;
            10f64.powi(exp)
        }
        _ => return Err(format!("invalid quantity suffix in {q:?}")),
    };
    Ok(number * factor)
}

#[test]
fn expansion_follows_kubernetes_rules() {
    let env = [("A".to_string(), "x".to_string())];
    let map = |k: &str| lookup(&env, k);
    assert_eq!(expand("$(A)-$(B)", map), "x-$(B)");
    assert_eq!(expand("$$(A) $$ $x $", map), "$(A) $ $x $");
    assert_eq!(expand("${env:POD_NAME}", map), "${env:POD_NAME}");
    assert_eq!(expand("$(A", map), "$(A");
    assert_eq!(expand("é$(A)é", map), "éxé");
}

#[test]
fn quantities_parse() {
    assert_eq!(parse_quantity("128Mi").unwrap(), 134217728.0);
    assert_eq!(parse_quantity("250m").unwrap(), 0.25);
    assert_eq!(parse_quantity("1e3").unwrap(), 1000.0);
    assert_eq!(parse_quantity("2G").unwrap(), 2e9);
}
