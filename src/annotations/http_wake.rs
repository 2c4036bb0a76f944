//! HTTP wake: the `http-wake-*` annotations, which route the model's traffic through the KEDA
//! HTTP add-on's interceptor so that a Deployment scaled to zero wakes up on a request.
//!
//! The interceptor holds the request while the add-on's external scaler (an `external-push`
//! trigger of our ScaledObject) activates the Deployment; the vLLM triggers then drive 1→N.
//! What the add-on expects is checked in its source, kedacore/http-add-on v0.15.0:
//! `operator/apis/http/v1beta1/interceptorroute_types.go` (hosts are a set, wildcards such as
//! `*.example.com` and a lone `*` are allowed, paths are prefixes) and `pkg/routing/key.go`
//! (the port of the Host header is ignored when matching).

use super::keys::{self, Group};
use super::reader::Reader;
use super::values::{self, is_dns_label};
use super::{PREFIX, TriggerSpec, key};
use crate::config::WebhookConfig;
use crate::problem::Problem;

/// Name of the ScaledObject trigger that asks the HTTP add-on whether requests are waiting.
pub const HTTP_WAKE_TRIGGER: &str = "http_wake";

/// Where the interceptor sends the requests it held, and which requests are this model's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpWake {
    /// The Service in the workload's namespace that fronts the model server.
    pub service: String,
    pub port: u16,
    /// Host names the interceptor routes here (the Host header, port ignored).
    pub hosts: Vec<String>,
    /// Path prefixes (empty: every path of those hosts).
    pub path_prefixes: Vec<String>,
    /// `scalerAddress` of the `external-push` trigger: the add-on's external scaler.
    pub scaler_address: String,
}

impl Reader<'_> {
    /// `None` when HTTP wake is not asked for (no `http-wake-*` key) or invalid (the
    /// problems are recorded).
    pub(super) fn http_wake(
        &mut self,
        cfg: &WebhookConfig,
        scales_to_zero: bool,
        triggers: &[TriggerSpec],
    ) -> Option<HttpWake> {
        if keys::of(Group::HttpWake).all(|k| self.raw(k.name).is_none()) {
            return None;
        }
        if self.raw("http-wake-service").is_none() {
            self.missing(
                "http-wake-service",
                "required with the other http-wake annotations: the Service the interceptor forwards requests to",
                "add llm-autoscale.io/http-wake-service: \"my-model\" (the Service in front of the model server)",
            );
        }
        let service = self.get("http-wake-service", service_name);
        let port = self.http_wake_port();
        let hosts = self.http_wake_hosts();
        let path_prefixes = self
            .get("http-wake-path-prefixes", path_prefixes)
            .unwrap_or_default();
        if let Some(t) = triggers.iter().find(|t| t.name == HTTP_WAKE_TRIGGER) {
            self.f.problem(Problem::new(
                key("triggers"),
                Some(&t.name),
                format!("the trigger name {HTTP_WAKE_TRIGGER} is taken by HTTP wake"),
                "give the trigger another name",
            ));
        }
        if !scales_to_zero {
            self.f.warn(format!(
                "{PREFIX}http-wake-service with {PREFIX}min-replicas above 0 (and no idle-replica-count of 0): there is nothing to wake; the interceptor still routes the requests and the add-on's concurrency counts as a trigger"
            ));
        }
        Some(HttpWake {
            service: service?,
            port: port?,
            hosts: hosts?,
            path_prefixes,
            scaler_address: cfg.http_scaler_address.clone(),
        })
    }

    fn missing(&mut self, short: &str, reason: &str, fix: &str) {
        self.f.problem(Problem::new(key(short), None, reason, fix));
    }

    fn http_wake_port(&mut self) -> Option<u16> {
        if self.raw("http-wake-port").is_none() {
            self.missing(
                "http-wake-port",
                "required with http-wake-service: the port of that Service",
                "add llm-autoscale.io/http-wake-port: \"8000\"",
            );
        }
        self.get("http-wake-port", values::port)
    }

    fn http_wake_hosts(&mut self) -> Option<Vec<String>> {
        if self.raw("http-wake-hosts").is_none() {
            self.missing(
                "http-wake-hosts",
                "required with http-wake-service: the interceptor routes requests by their Host header, and a Deployment has no host to default to",
                "add llm-autoscale.io/http-wake-hosts: \"qwen.example.com\" (comma-separated for several)",
            );
        }
        self.get("http-wake-hosts", hosts)
    }
}

fn service_name(v: &str) -> Result<String, values::Refusal> {
    if is_dns_label(v) {
        Ok(v.to_string())
    } else {
        Err(values::Refusal {
            reason: "not a Service name".into(),
            fix: "write the name of a Service in the workload's namespace: a lowercase DNS label of at most 63 characters, e.g. \"qwen2-7b-vllm\"".into(),
        })
    }
}

/// Items of a comma-separated list, trimmed; refuses empty items and repeats.
fn list(v: &str, example: &str) -> Result<Vec<String>, values::Refusal> {
    let mut out: Vec<String> = Vec::new();
    for item in v.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(values::Refusal {
                reason: "an empty item in the list".into(),
                fix: format!("write comma-separated values without empty ones, e.g. {example:?}"),
            });
        }
        if out.iter().any(|o| o == item) {
            return Err(values::Refusal {
                reason: format!("{item:?} is listed twice"),
                fix: "list each value once".into(),
            });
        }
        out.push(item.to_string());
    }
    Ok(out)
}

fn hosts(v: &str) -> Result<Vec<String>, values::Refusal> {
    let hosts = list(v, "qwen.example.com,qwen.llm.svc")?;
    if let Some(bad) = hosts.iter().find(|h| !is_route_host(h)) {
        return Err(values::Refusal {
            reason: format!("{bad:?} is not a host name"),
            fix: "write lowercase host names without scheme, port or path, e.g. \"qwen.example.com\"; a leading \"*.\" matches subdomains and \"*\" alone every host".into(),
        });
    }
    Ok(hosts)
}

/// A lowercase DNS name (RFC 1123), optionally `*.` + name, or `*` alone.
fn is_route_host(h: &str) -> bool {
    if h == "*" {
        return true;
    }
    let name = h.strip_prefix("*.").unwrap_or(h);
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns_label)
}

fn path_prefixes(v: &str) -> Result<Vec<String>, values::Refusal> {
    let paths = list(v, "/v1,/health")?;
    for p in &paths {
        if !p.starts_with('/') {
            return Err(values::Refusal {
                reason: format!("{p:?} does not start with /"),
                fix: format!("write absolute path prefixes, e.g. \"/{}\"", p),
            });
        }
        if p.chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'))
        {
            return Err(values::Refusal {
                reason: format!("{p:?} is not a path prefix (spaces, ? or # found)"),
                fix: "write path prefixes such as \"/v1\" without query or fragment".into(),
            });
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::annotations::{AutoscalingSpec, parse};
    use crate::problem::Invalid;
    use crate::workload::{Workload, WorkloadKind};

    fn parse_with(extra: &[(&str, &str)]) -> Result<(AutoscalingSpec, Vec<String>), Invalid> {
        let mut ann = serde_json::Map::new();
        for (k, v) in [("enabled", "true"), ("max-replicas", "4")]
            .iter()
            .chain(extra)
        {
            ann.insert(format!("{PREFIX}{k}"), json!(v));
        }
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "qwen", "namespace": "llm", "annotations": ann},
            "spec": {"template": {"spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.11.0"}]}}}
        });
        let w = Workload::from_object(WorkloadKind::Deployment, &d);
        parse(&w, &WebhookConfig::default()).map(|(s, w)| (s.expect("opted in"), w))
    }

    const GOOD: [(&str, &str); 4] = [
        ("min-replicas", "0"),
        ("http-wake-service", "qwen"),
        ("http-wake-port", "8000"),
        ("http-wake-hosts", "qwen.example.com, *.llm.example.com"),
    ];

    /// The single problem of `GOOD` with `change` applied (`""` removes the key).
    fn problem(change: (&str, &str)) -> String {
        let mut ann: Vec<(&str, &str)> = GOOD
            .iter()
            .copied()
            .filter(|(k, _)| *k != change.0)
            .collect();
        if !change.1.is_empty() {
            ann.push(change);
        }
        let e = parse_with(&ann).expect_err("refused");
        assert_eq!(e.problems.len(), 1, "{e}");
        e.problems[0].to_string()
    }

    #[test]
    fn parsed_with_the_configured_scaler() {
        let mut ann = GOOD.to_vec();
        ann.push(("http-wake-path-prefixes", "/v1,/health"));
        let (spec, warnings) = parse_with(&ann).unwrap();
        assert_eq!(
            spec.http_wake,
            Some(HttpWake {
                service: "qwen".into(),
                port: 8000,
                hosts: vec!["qwen.example.com".into(), "*.llm.example.com".into()],
                path_prefixes: vec!["/v1".into(), "/health".into()],
                scaler_address: "keda-add-ons-http-external-scaler.keda:9090".into(),
            })
        );
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn absent_means_off() {
        assert_eq!(parse_with(&[]).unwrap().0.http_wake, None);
    }

    #[test]
    fn every_refusal_names_key_value_and_fix() {
        for (change, needles) in [
            (
                ("http-wake-service", "Qwen_7B"),
                [
                    "http-wake-service: \"Qwen_7B\"",
                    "not a Service name",
                    "fix: write the name",
                ],
            ),
            (
                ("http-wake-service", ""),
                [
                    "http-wake-service: required",
                    "",
                    "fix: add llm-autoscale.io/http-wake-service",
                ],
            ),
            (
                ("http-wake-port", "0"),
                [
                    "http-wake-port: \"0\"",
                    "not a port number",
                    "fix: write a port",
                ],
            ),
            (
                ("http-wake-port", ""),
                [
                    "http-wake-port: required",
                    "",
                    "fix: add llm-autoscale.io/http-wake-port",
                ],
            ),
            (
                ("http-wake-hosts", ""),
                [
                    "http-wake-hosts: required",
                    "Host header",
                    "fix: add llm-autoscale.io/http-wake-hosts",
                ],
            ),
            (
                ("http-wake-hosts", "https://qwen.example.com"),
                [
                    "http-wake-hosts: \"https://qwen.example.com\"",
                    "not a host name",
                    "fix: write lowercase host names",
                ],
            ),
            (
                ("http-wake-hosts", "a.example.com,,b"),
                [
                    "http-wake-hosts: \"a.example.com,,b\"",
                    "empty item",
                    "fix:",
                ],
            ),
            (
                ("http-wake-hosts", "a.example.com,a.example.com"),
                [
                    "http-wake-hosts",
                    "listed twice",
                    "fix: list each value once",
                ],
            ),
            (
                ("http-wake-path-prefixes", "v1"),
                [
                    "http-wake-path-prefixes: \"v1\"",
                    "does not start with /",
                    "fix: write absolute path prefixes, e.g. \"/v1\"",
                ],
            ),
            (
                ("http-wake-path-prefixes", "/v1?x=1"),
                ["http-wake-path-prefixes", "not a path prefix", "fix:"],
            ),
        ] {
            let p = problem(change);
            for n in needles {
                assert!(p.contains(n), "{change:?}: {n:?} not in {p}");
            }
        }
    }

    #[test]
    fn a_trigger_may_not_take_the_http_wake_name() {
        let mut ann = GOOD.to_vec();
        ann.push((
            "triggers",
            r#"[{"name": "http_wake", "preset": "queue-depth"}]"#,
        ));
        let e = parse_with(&ann).expect_err("refused");
        assert!(
            e.to_string()
                .contains("the trigger name http_wake is taken"),
            "{e}"
        );
    }

    #[test]
    fn above_zero_there_is_nothing_to_wake() {
        let ann: Vec<_> = GOOD
            .iter()
            .copied()
            .filter(|(k, _)| *k != "min-replicas")
            .collect();
        let (spec, warnings) = parse_with(&ann).unwrap();
        assert!(spec.http_wake.is_some());
        assert!(
            warnings.iter().any(|w| w.contains("nothing to wake")),
            "{warnings:?}"
        );
    }

    #[test]
    fn hosts() {
        for ok in ["*", "*.example.com", "a-b.c", "qwen"] {
            assert!(is_route_host(ok), "{ok}");
        }
        for bad in [
            "",
            "*.",
            "a..b",
            "A.example.com",
            "a.example.com:80",
            "a/b",
            "-a.b",
        ] {
            assert!(!is_route_host(bad), "{bad}");
        }
    }
}
