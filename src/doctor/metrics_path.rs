//! Findings about the path from the model server's metrics to KEDA: the KEDA OTel add-on or
//! Prometheus reachable, the trigger's metric there, the add-on's not-found setting, and a
//! way to wake from zero.

use std::collections::BTreeMap;

use super::finding::{Check, Finding, Severity};
use super::snapshot::{AddonSeen, AddonStore, EnvSetting, Probe, PrometheusAnswer};
use crate::config::WebhookConfig;
use crate::keda::trigger::{KnownScalers, Reader};
use crate::keda::{ScaledObject, Trigger, TriggerKind};
use crate::query::{AddonQuery, parse_addon_query};

/// The add-on's environment variable that makes a metric it has no data for an error to KEDA
/// instead of a value (kedify/otel-add-on util/config.go `MetricStoreErrIfNotFound`, default
/// false; scaler/handlers.go `getMetric` answers `METRIC_STORE_VALUE_IF_NOT_FOUND`, default 0,
/// without an error otherwise). KEDA counts only errors towards `fallback.failureThreshold`.
pub const ERROR_IF_NOT_FOUND: &str = "METRIC_STORE_ERROR_IF_NOT_FOUND";

/// The key a trigger's probe is filed under: its name, or its position.
pub fn trigger_key(index: usize, t: &Trigger) -> String {
    if t.name.is_empty() {
        format!("#{index}")
    } else {
        t.name.clone()
    }
}

/// The metric name as the add-on stores it: `/` and `.` become `_` (kedify/otel-add-on
/// metric/mem_store.go `escapeName`, applied on `Put` and `Get`); the colon stays.
pub fn store_name(metric: &str) -> String {
    metric.replace(['/', '.'], "_")
}

/// Findings for every trigger of the ScaledObject KEDA runs (or would run), then the wake path.
pub fn findings(
    so: &ScaledObject,
    target_deployment: &str,
    addon: Option<&AddonSeen>,
    prometheus: &BTreeMap<String, Probe<PrometheusAnswer>>,
    cfg: &WebhookConfig,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut uses_addon = false;
    for (i, t) in so.spec.triggers.iter().enumerate() {
        let subject = format!("trigger {}", trigger_key(i, t));
        if t.reader(&KnownScalers::of(cfg)) == Reader::OtelAddon {
            uses_addon = true;
            out.extend(addon_trigger(t, addon, &subject));
        } else if t.kind == TriggerKind::Prometheus {
            out.push(prometheus_trigger(
                prometheus.get(&trigger_key(i, t)),
                &subject,
            ));
        }
    }
    if uses_addon {
        if let Some(a) = addon {
            out.push(error_if_not_found(a, so.spec.fallback.is_some()));
        }
    }
    if let Some(f) = wake_finding(so, target_deployment, cfg) {
        out.push(f);
    }
    out
}

fn addon_trigger(t: &Trigger, addon: Option<&AddonSeen>, subject: &str) -> Vec<Finding> {
    let Some(a) = addon else {
        return vec![
            Finding::new(Check::AddonReachable, Severity::Warning, subject)
                .saying("the KEDA OTel add-on was not looked at"),
        ];
    };
    let store = match &a.store {
        Probe::Answered(s) => s,
        Probe::Failed(why) => {
            return vec![
                Finding::new(Check::AddonReachable, Severity::Error, subject)
                    .saying(format!("the KEDA OTel add-on's REST API ({}) does not answer: {why}", a.via))
                    .fix("check the add-on's pods and Service (kubectl -n keda get pods,svc); its REST API listens on REST_API_PORT, 9090 by default"),
            ];
        }
        Probe::NotTried(why) => {
            return vec![
                Finding::new(Check::AddonReachable, Severity::Warning, subject)
                    .saying(format!("the KEDA OTel add-on's store was not read: {why}"))
                    .fix("pass --addon-url http://HOST:9090 (for example through kubectl port-forward)"),
            ];
        }
    };
    let reachable = Finding::ok(
        Check::AddonReachable,
        subject,
        format!("the add-on's REST API answers ({})", a.via),
    );
    let query = t.meta("metricQuery").unwrap_or_default();
    let metric = match parse_addon_query(query) {
        Ok(q) => metric_in_store(&q, store, subject),
        Err(e) => Finding::new(Check::MetricInStore, Severity::Error, subject)
            .saying(format!(
                "metricQuery {query:?} does not parse with the add-on's grammar: {e}"
            ))
            .fix("correct the query (or the annotations it is rendered from)"),
    };
    vec![reachable, metric]
}

/// Whether the add-on holds the query's metric, and series of it that the query's labels
/// match (a label a series lacks matches any value: mem_store.go `get`).
pub fn metric_in_store(q: &AddonQuery, store: &AddonStore, subject: &str) -> Finding {
    let name = store_name(&q.metric);
    let Some(series) = store.series.get(&name) else {
        return Finding::new(Check::MetricInStore, Severity::Error, subject)
            .saying(format!(
                "the add-on has no {name} at all: KEDA reads METRIC_STORE_VALUE_IF_NOT_FOUND (0) or, with {ERROR_IF_NOT_FOUND}, an error, so the workload never scales up"
            ))
            .fix("check that the sidecar runs and exports to the add-on (its logs; the webhook's otlp-endpoint), and that the model server exposes this metric under this name (vLLM renames metrics between versions)");
    };
    let matching = series
        .iter()
        .filter(|labels| {
            q.labels
                .iter()
                .all(|(k, v)| labels.get(k).is_none_or(|have| have == v))
        })
        .count();
    let wanted: Vec<String> = q.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if matching == 0 {
        return Finding::new(Check::MetricInStore, Severity::Error, subject)
            .saying(format!(
                "the add-on holds {} series of {name}, none with {}: KEDA reads 0 for this workload",
                series.len(),
                wanted.join(",")
            ))
            .fix("this workload's sidecar sends nothing: check that it is injected and running, and its logs");
    }
    Finding::ok(
        Check::MetricInStore,
        subject,
        format!("{matching} series of {name} match {}", wanted.join(",")),
    )
}

/// How Go's `strconv.ParseBool` (which envconfig uses) reads true.
fn parses_true(v: &str) -> bool {
    matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

fn error_if_not_found(a: &AddonSeen, has_fallback: bool) -> Finding {
    let subject = "KEDA OTel add-on";
    let setting = match &a.error_if_not_found {
        EnvSetting::Value(v) if parses_true(v) => {
            return Finding::ok(
                Check::AddonErrorIfNotFound,
                subject,
                format!(
                    "{ERROR_IF_NOT_FOUND}={v}: a missing metric is an error to KEDA, so fallback can fire"
                ),
            );
        }
        EnvSetting::Value(v) => format!("{ERROR_IF_NOT_FOUND}={v}"),
        EnvSetting::Unset => format!("{ERROR_IF_NOT_FOUND} is not set (default false)"),
        EnvSetting::Elsewhere => {
            return Finding::new(Check::AddonErrorIfNotFound, Severity::Info, subject).saying(
                format!("{ERROR_IF_NOT_FOUND} comes from envFrom/valueFrom: not known here"),
            );
        }
        EnvSetting::NoDeployment => {
            return Finding::new(Check::AddonErrorIfNotFound, Severity::Info, subject).saying(
                format!("the add-on's Deployment was not found (Service {}), so {ERROR_IF_NOT_FOUND} is not known", a.service.as_ref().map(ToString::to_string).unwrap_or_default()),
            );
        }
    };
    let fix = format!(
        "set {ERROR_IF_NOT_FOUND}=true on the add-on (Helm: settings.metricStore.errIfNotFound=true)"
    );
    if has_fallback {
        Finding::new(Check::AddonErrorIfNotFound, Severity::Warning, subject)
            .saying(format!("{setting}: a metric the add-on lacks reads as 0, never as an error, so this ScaledObject's fallback never fires"))
            .fix(fix)
    } else {
        Finding::new(Check::AddonErrorIfNotFound, Severity::Info, subject)
            .saying(format!(
                "{setting}: a metric the add-on lacks reads as 0, never as an error"
            ))
            .fix(fix)
    }
}

fn prometheus_trigger(probe: Option<&Probe<PrometheusAnswer>>, subject: &str) -> Finding {
    match probe {
        Some(Probe::Answered(a)) if a.series == 0 => {
            Finding::new(Check::PrometheusQuery, Severity::Error, subject)
                .saying(format!("Prometheus ({}) answers the query with no series: KEDA reads 0 (ignoreNullValues, default true) or an error (false), so the workload never scales up", a.via))
                .fix("check that Prometheus scrapes the pods (its targets page) and that the query's labels match them")
        }
        Some(Probe::Answered(a)) => Finding::ok(
            Check::PrometheusQuery,
            subject,
            format!("Prometheus ({}) answers with {} series", a.via, a.series),
        ),
        Some(Probe::Failed(why)) => Finding::new(Check::PrometheusQuery, Severity::Error, subject)
            .saying(format!("Prometheus does not answer the query: {why}"))
            .fix("check serverAddress and Prometheus' pods and Service"),
        Some(Probe::NotTried(why)) => Finding::new(Check::PrometheusQuery, Severity::Warning, subject)
            .saying(format!("the query was not run: {why}"))
            .fix("pass --prometheus-url http://HOST:9090 (for example through kubectl port-forward)"),
        None => Finding::new(Check::PrometheusQuery, Severity::Warning, subject)
            .saying("the query was not run"),
    }
}

/// A ScaledObject that may take the workload to zero pods needs a trigger whose data exists
/// at zero pods. An add-on trigger scoped to this Deployment (`deployment=<name>`, how the
/// product scopes a workload's own metrics) reads the sidecar of pods that no longer exist;
/// every other trigger (a gateway metric, Prometheus, an external scaler, HTTP wake) is
/// taken to be able to wake it.
pub fn wake_finding(
    so: &ScaledObject,
    target_deployment: &str,
    cfg: &WebhookConfig,
) -> Option<Finding> {
    // KEDA's default minReplicaCount is 0 (scaledobject_types.go).
    let min = so.spec.min_replica_count.unwrap_or(0);
    if !crate::annotations::scales_to_zero(min, so.spec.idle_replica_count) {
        return None;
    }
    let reads_own_pods = |t: &Trigger| {
        matches!(
            t.reader(&KnownScalers::of(cfg)),
            Reader::OtelAddon | Reader::Builtin
        ) && t
            .meta("metricQuery")
            .and_then(|q| parse_addon_query(q).ok())
            .is_some_and(|q| q.label("deployment") == Some(target_deployment))
    };
    let subject = format!("ScaledObject {}", so.name());
    if so.spec.triggers.iter().any(|t| !reads_own_pods(t)) {
        return Some(Finding::ok(
            Check::ScaleToZeroWake,
            subject,
            "scales to zero, and a trigger reads something that exists at zero pods",
        ));
    }
    Some(
        Finding::new(Check::ScaleToZeroWake, Severity::Error, subject)
            .saying("scales to zero, but every trigger reads this Deployment's own pods through their sidecars: at zero pods there is no data, the add-on answers 0, and it never wakes")
            .fix("set llm-autoscale.io/min-replicas \"1\", or add a wake path: HTTP wake (llm-autoscale.io/http-wake-*) or a trigger with source \"gateway\""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::address::ServiceRef;
    use serde_json::json;

    fn so(min: Option<i32>, triggers: serde_json::Value, fallback: bool) -> ScaledObject {
        let mut v = json!({
            "metadata": {"name": "m", "namespace": "llm"},
            "spec": {"scaleTargetRef": {"name": "m"}, "maxReplicaCount": 4, "triggers": triggers}
        });
        if let Some(m) = min {
            v["spec"]["minReplicaCount"] = json!(m);
        }
        if fallback {
            v["spec"]["fallback"] = json!({"failureThreshold": 3, "replicas": 2});
        }
        serde_json::from_value(v).unwrap()
    }

    fn otel(name: &str, query: &str) -> serde_json::Value {
        json!({"type": "external", "name": name, "metadata": {
            "scalerAddress": "keda-otel-scaler.keda.svc:4318", "metricQuery": query, "targetValue": "5"}})
    }

    const OWN: &str = "sum(vllm:num_requests_waiting{deployment=m,namespace=llm})";

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn addon(store: Probe<AddonStore>, setting: EnvSetting) -> AddonSeen {
        AddonSeen {
            service: Some(ServiceRef {
                namespace: "keda".into(),
                name: "keda-otel-scaler".into(),
                port: Some(4318),
            }),
            via: "http://127.0.0.1:9090".into(),
            error_if_not_found: setting,
            store,
        }
    }

    fn store(series: &[(&str, Vec<BTreeMap<String, String>>)]) -> Probe<AddonStore> {
        Probe::Answered(AddonStore {
            series: series
                .iter()
                .map(|(n, s)| (n.to_string(), s.clone()))
                .collect(),
        })
    }

    fn of(f: &[Finding], check: Check) -> Vec<Severity> {
        f.iter()
            .filter(|f| f.check == check)
            .map(|f| f.severity)
            .collect()
    }

    fn run(so: &ScaledObject, a: &AddonSeen) -> Vec<Finding> {
        findings(
            so,
            "m",
            Some(a),
            &BTreeMap::new(),
            &WebhookConfig::default(),
        )
    }

    #[test]
    fn the_metric_with_this_workloads_series_is_ok() {
        let a = addon(
            store(&[(
                "vllm:num_requests_waiting",
                vec![
                    labels(&[("deployment", "m"), ("namespace", "llm"), ("pod", "m-1")]),
                    labels(&[
                        ("deployment", "other"),
                        ("namespace", "llm"),
                        ("pod", "o-1"),
                    ]),
                ],
            )]),
            EnvSetting::Value("true".into()),
        );
        let f = run(&so(Some(1), json!([otel("queue", OWN)]), false), &a);
        assert!(f.iter().all(|f| f.severity == Severity::Ok), "{f:#?}");
        assert!(
            f.iter()
                .any(|f| f.message.contains("1 series of vllm:num_requests_waiting"))
        );
    }

    #[test]
    fn a_metric_absent_from_the_store_blocks() {
        let a = addon(store(&[("other", vec![])]), EnvSetting::Unset);
        let f = run(&so(Some(1), json!([otel("queue", OWN)]), false), &a);
        assert_eq!(of(&f, Check::MetricInStore), vec![Severity::Error]);
        assert!(
            f.iter()
                .any(|f| f.message.contains("no vllm:num_requests_waiting at all"))
        );
    }

    #[test]
    fn series_of_other_workloads_only_block() {
        let a = addon(
            store(&[(
                "vllm:num_requests_waiting",
                vec![labels(&[("deployment", "other")])],
            )]),
            EnvSetting::Unset,
        );
        let f = run(&so(Some(1), json!([otel("queue", OWN)]), false), &a);
        assert_eq!(of(&f, Check::MetricInStore), vec![Severity::Error]);
        // A series without the label matches any value, as in the add-on.
        let a = addon(
            store(&[("vllm:num_requests_waiting", vec![labels(&[("pod", "x")])])]),
            EnvSetting::Unset,
        );
        let f = run(&so(Some(1), json!([otel("queue", OWN)]), false), &a);
        assert_eq!(of(&f, Check::MetricInStore), vec![Severity::Ok]);
    }

    #[test]
    fn dotted_names_are_looked_up_as_the_add_on_stores_them() {
        assert_eq!(store_name("http.server/requests"), "http_server_requests");
        assert_eq!(
            store_name("vllm:num_requests_waiting"),
            "vllm:num_requests_waiting"
        );
    }

    #[test]
    fn an_unreachable_add_on_blocks_and_an_unasked_one_warns() {
        let f = run(
            &so(Some(1), json!([otel("queue", OWN)]), false),
            &addon(
                Probe::Failed("connection refused".into()),
                EnvSetting::Unset,
            ),
        );
        assert_eq!(of(&f, Check::AddonReachable), vec![Severity::Error]);
        assert!(of(&f, Check::MetricInStore).is_empty());
        let f = run(
            &so(Some(1), json!([otel("queue", OWN)]), false),
            &addon(Probe::NotTried("no Service".into()), EnvSetting::Unset),
        );
        assert_eq!(of(&f, Check::AddonReachable), vec![Severity::Warning]);
    }

    #[test]
    fn error_if_not_found_matters_with_a_fallback() {
        let s = store(&[(
            "vllm:num_requests_waiting",
            vec![labels(&[("deployment", "m")])],
        )]);
        let with_fallback = so(Some(1), json!([otel("queue", OWN)]), true);
        let without = so(Some(1), json!([otel("queue", OWN)]), false);
        for (setting, fb, want) in [
            (EnvSetting::Unset, &with_fallback, Severity::Warning),
            (
                EnvSetting::Value("false".into()),
                &with_fallback,
                Severity::Warning,
            ),
            (EnvSetting::Unset, &without, Severity::Info),
            (
                EnvSetting::Value("TRUE".into()),
                &with_fallback,
                Severity::Ok,
            ),
            (EnvSetting::Value("1".into()), &with_fallback, Severity::Ok),
            (EnvSetting::Elsewhere, &with_fallback, Severity::Info),
            (EnvSetting::NoDeployment, &with_fallback, Severity::Info),
        ] {
            let f = run(fb, &addon(s.clone(), setting.clone()));
            assert_eq!(
                of(&f, Check::AddonErrorIfNotFound),
                vec![want],
                "{setting:?}"
            );
        }
        let f = run(&with_fallback, &addon(s, EnvSetting::Unset));
        let e = f
            .iter()
            .find(|f| f.check == Check::AddonErrorIfNotFound)
            .unwrap();
        assert!(e.message.contains("fallback never fires"));
        assert!(e.fix.contains("errIfNotFound"));
    }

    #[test]
    fn prometheus_answers() {
        let prom = json!([{"type": "prometheus", "name": "queue", "metadata": {
            "serverAddress": "http://prometheus-operated.monitoring.svc:9090", "query": "sum(x)", "threshold": "5"}}]);
        let s = so(Some(1), prom, false);
        let answer = |n| {
            Probe::Answered(PrometheusAnswer {
                series: n,
                via: "http://127.0.0.1:9090".into(),
            })
        };
        for (probe, want) in [
            (Some(answer(2)), Severity::Ok),
            (Some(answer(0)), Severity::Error),
            (Some(Probe::Failed("503".into())), Severity::Error),
            (Some(Probe::NotTried("outside".into())), Severity::Warning),
            (None, Severity::Warning),
        ] {
            let mut probes = BTreeMap::new();
            if let Some(p) = probe.clone() {
                probes.insert("queue".to_string(), p);
            }
            let f = findings(&s, "m", None, &probes, &WebhookConfig::default());
            assert_eq!(of(&f, Check::PrometheusQuery), vec![want], "{probe:?}");
        }
    }

    #[test]
    fn scale_to_zero_needs_a_trigger_that_exists_at_zero_pods() {
        let cfg = WebhookConfig::default();
        let own_only = so(Some(0), json!([otel("queue", OWN)]), false);
        let f = wake_finding(&own_only, "m", &cfg).unwrap();
        assert_eq!(f.severity, Severity::Error);
        // KEDA's default minimum is 0.
        let defaulted = so(None, json!([otel("queue", OWN)]), false);
        assert_eq!(
            wake_finding(&defaulted, "m", &cfg).unwrap().severity,
            Severity::Error
        );
        let gateway = so(
            Some(0),
            json!([
                otel("queue", OWN),
                otel("router", "sum(router_queue_depth{model=m})")
            ]),
            false,
        );
        assert_eq!(
            wake_finding(&gateway, "m", &cfg).unwrap().severity,
            Severity::Ok
        );
        let http = so(
            Some(0),
            json!([otel("queue", OWN), {"type": "external-push", "name": "http-wake", "metadata": {"scalerAddress": "keda-add-ons-http-external-scaler.keda:9090", "interceptorRoute": "m"}}]),
            false,
        );
        assert_eq!(
            wake_finding(&http, "m", &cfg).unwrap().severity,
            Severity::Ok
        );
        assert!(
            wake_finding(&so(Some(1), json!([otel("queue", OWN)]), false), "m", &cfg).is_none()
        );
        let mut idle = so(Some(1), json!([otel("queue", OWN)]), false);
        idle.spec.idle_replica_count = Some(0);
        assert_eq!(
            wake_finding(&idle, "m", &cfg).unwrap().severity,
            Severity::Error
        );
    }
}
