//! Findings about the path through the built-in scaler (`llm-autoscale-webhook scaler`): it
//! answers, it holds fresh series for each builtin trigger (asked the way KEDA asks:
//! `GetMetricSpec`, then `GetMetrics`; src/scaler/service/keda.rs answers an error with its
//! reason when it has none), and the namespace's token Secret that the sidecars present.

use std::collections::BTreeMap;

use super::finding::{Check, Finding, Severity};
use super::metrics_path::trigger_key;
use super::snapshot::{BuiltinReading, BuiltinSeen, Probe, TokenSecret};
use crate::config::WebhookConfig;
use crate::keda::ScaledObject;
use crate::keda::trigger::{KnownScalers, Reader};
use crate::scaler::trust;

/// Whether any trigger of `so` is read by the built-in scaler.
pub fn reads_builtin(so: &ScaledObject, cfg: &WebhookConfig) -> bool {
    so.spec
        .triggers
        .iter()
        .any(|t| t.reader(&KnownScalers::of(cfg)) == Reader::Builtin)
}

/// Where the scaler runs, for the fixes: its Service when the address names one.
fn where_it_runs(seen: Option<&BuiltinSeen>, cfg: &WebhookConfig) -> String {
    match seen.and_then(|s| s.service.as_ref()) {
        Some(s) => format!(
            "kubectl -n {} get pods,endpointslices -l app.kubernetes.io/name={}",
            s.namespace, s.name
        ),
        None => format!("the scaler at {}", cfg.builtin_scaler_address),
    }
}

/// The scaler's reachability, each builtin trigger's series, and the token Secret; nothing
/// when no trigger reads the built-in scaler.
pub fn findings(
    so: &ScaledObject,
    seen: Option<&BuiltinSeen>,
    readings: &BTreeMap<String, Probe<BuiltinReading>>,
    token: Option<TokenSecret>,
    cfg: &WebhookConfig,
) -> Vec<Finding> {
    if !reads_builtin(so, cfg) {
        return Vec::new();
    }
    let mut out = vec![reachable(seen, cfg)];
    let answers = seen.is_some_and(|s| matches!(s.health, Probe::Answered(())));
    if answers {
        for (i, t) in so.spec.triggers.iter().enumerate() {
            if t.reader(&KnownScalers::of(cfg)) == Reader::Builtin {
                let key = trigger_key(i, t);
                out.push(series(readings.get(&key), &format!("trigger {key}")));
            }
        }
    }
    if cfg.builtin_scaler_auth {
        out.push(token_finding(
            token,
            so.metadata.namespace.as_deref().unwrap_or_default(),
        ));
    }
    out
}

fn reachable(seen: Option<&BuiltinSeen>, cfg: &WebhookConfig) -> Finding {
    let subject = "built-in scaler";
    let Some(s) = seen else {
        return Finding::new(Check::BuiltinScalerReachable, Severity::Warning, subject)
            .saying("the built-in scaler was not looked at");
    };
    match &s.health {
        Probe::Answered(()) => Finding::ok(
            Check::BuiltinScalerReachable,
            subject,
            format!("it answers ({})", s.via),
        ),
        Probe::Failed(why) => Finding::new(Check::BuiltinScalerReachable, Severity::Error, subject)
            .saying(format!(
                "the built-in scaler ({}) does not answer: {why}. KEDA's reads fail, so builtin workloads run the fallback replica count or stay where they are",
                s.via
            ))
            .fix(format!(
                "check its pods and Service ({}); install it with Helm (--set scaler.enabled=true) or kubectl apply -k deploy/scaler/",
                where_it_runs(seen, cfg)
            )),
        Probe::NotTried(why) => Finding::new(Check::BuiltinScalerReachable, Severity::Warning, subject)
            .saying(format!("the built-in scaler was not asked: {why}"))
            .fix("pass --builtin-scaler-url http://HOST:4318 (for example through kubectl port-forward to its scaler port)"),
    }
}

fn series(probe: Option<&Probe<BuiltinReading>>, subject: &str) -> Finding {
    let f = |sev| Finding::new(Check::BuiltinSeries, sev, subject);
    match probe {
        Some(Probe::Answered(BuiltinReading::Value(v))) => Finding::ok(
            Check::BuiltinSeries,
            subject,
            format!("the scaler holds fresh series for it: GetMetrics answers {v}"),
        ),
        Some(Probe::Answered(BuiltinReading::Refused { code, reason })) => f(Severity::Error)
            .saying(format!(
                "the scaler answers KEDA's GetMetrics with an error ({code}): {reason}. KEDA's read fails: after fallback.failureThreshold reads it runs the fallback replica count"
            ))
            .fix(series_fix(code)),
        Some(Probe::Failed(why)) => f(Severity::Error)
            .saying(format!("asking the scaler for this trigger failed: {why}"))
            .fix("check the scaler's logs and that --builtin-scaler-url reaches its scaler port (4318)"),
        Some(Probe::NotTried(why)) => f(Severity::Warning)
            .saying(format!("the trigger's series were not asked for: {why}"))
            .fix("pass --builtin-scaler-url http://HOST:4318 (for example through kubectl port-forward to the scaler's port 4318)"),
        None => f(Severity::Warning).saying("the trigger's series were not asked for"),
    }
}

/// What to do about an error answer, by its gRPC code (src/scaler/service/keda.rs `status_of`:
/// NotFound for no series, Unavailable for stale series or an empty window, InvalidArgument for
/// metadata it cannot read).
fn series_fix(code: &str) -> String {
    match code {
        "NotFound" => format!(
            "the sidecars send nothing the scaler accepted for this workload: check that the sidecar is injected and running (its logs), that it exports to the scaler's OTLP port, that the namespace's token Secret {} exists, and the scaler's rejected-points metric",
            trust::SECRET_NAME
        ),
        "Unavailable" => "the series stopped arriving: the pods or their sidecars stopped reporting (check the sidecar's logs and the model server's /metrics); series come back with the next export".to_string(),
        "InvalidArgument" => "the trigger's metadata is not what the scaler reads: re-render it from the annotations (the reconciler does on its next pass) or correct the hand-written trigger".to_string(),
        _ => "read the scaler's reason above and its logs".to_string(),
    }
}

fn token_finding(token: Option<TokenSecret>, namespace: &str) -> Finding {
    let subject = format!("Secret {namespace}/{}", trust::SECRET_NAME);
    let fix = "the reconciler writes it when it holds the scaler's trust key and may write Secrets: install the scaler with Helm (--set scaler.enabled=true) or apply deploy/scaler/ (its rbac.yaml), create Secret llm-autoscale-scaler-trust-key in the webhook's namespace, and look for ScalerTokenUnavailable Events on the Deployment";
    match token {
        Some(TokenSecret::Present) => Finding::ok(
            Check::BuiltinToken,
            subject,
            "the namespace's token for the built-in scaler exists",
        ),
        Some(TokenSecret::Missing) => Finding::new(Check::BuiltinToken, Severity::Error, subject)
            .saying("it does not exist: sidecars that read it do not start, and the scaler refuses points without the token")
            .fix(fix),
        Some(TokenSecret::Forbidden) => Finding::new(Check::BuiltinToken, Severity::Warning, subject)
            .saying("not looked at: reading it was forbidden")
            .fix("the chart's doctor ClusterRole may read it when the chart installs the scaler (scaler.enabled=true); otherwise grant get on secrets named llm-autoscale-scaler-token"),
        None => Finding::new(Check::BuiltinToken, Severity::Warning, subject)
            .saying("it was not looked at"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::address::ServiceRef;
    use serde_json::json;

    fn so() -> ScaledObject {
        serde_json::from_value(json!({
            "metadata": {"name": "m", "namespace": "llm"},
            "spec": {"scaleTargetRef": {"name": "m"}, "minReplicaCount": 1, "maxReplicaCount": 4, "triggers": [
                {"type": "external", "name": "queue", "metadata": {
                    "scalerAddress": WebhookConfig::default().builtin_scaler_address,
                    "metricQuery": "sum(vllm:num_requests_waiting{deployment=m,namespace=llm})", "targetValue": "5"}},
                {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "80"}}
            ]}
        }))
        .unwrap()
    }

    fn seen(health: Probe<()>) -> BuiltinSeen {
        BuiltinSeen {
            service: Some(ServiceRef {
                namespace: "llm-autoscale-system".into(),
                name: "llm-autoscale-scaler".into(),
                port: Some(4318),
            }),
            via: "http://127.0.0.1:4318".into(),
            health,
        }
    }

    fn readings(p: Probe<BuiltinReading>) -> BTreeMap<String, Probe<BuiltinReading>> {
        BTreeMap::from([("queue".to_string(), p)])
    }

    fn of(f: &[Finding], check: Check) -> Vec<Severity> {
        f.iter()
            .filter(|f| f.check == check)
            .map(|f| f.severity)
            .collect()
    }

    #[test]
    fn a_scaler_holding_fresh_series_and_the_token_is_ok() {
        let cfg = WebhookConfig::default();
        let f = findings(
            &so(),
            Some(&seen(Probe::Answered(()))),
            &readings(Probe::Answered(BuiltinReading::Value(3.0))),
            Some(TokenSecret::Present),
            &cfg,
        );
        assert_eq!(of(&f, Check::BuiltinScalerReachable), vec![Severity::Ok]);
        assert_eq!(of(&f, Check::BuiltinSeries), vec![Severity::Ok], "{f:#?}");
        assert_eq!(of(&f, Check::BuiltinToken), vec![Severity::Ok]);
        assert!(
            f.iter()
                .any(|f| f.subject == "Secret llm/llm-autoscale-scaler-token")
        );
    }

    #[test]
    fn the_scalers_reason_is_the_finding() {
        let cfg = WebhookConfig::default();
        for (code, fix) in [
            ("NotFound", "sidecar is injected"),
            ("Unavailable", "stopped arriving"),
            ("InvalidArgument", "metadata"),
        ] {
            let refused = BuiltinReading::Refused {
                code: code.into(),
                reason: "no series of vllm:num_requests_waiting for llm/m".into(),
            };
            let f = findings(
                &so(),
                Some(&seen(Probe::Answered(()))),
                &readings(Probe::Answered(refused)),
                Some(TokenSecret::Present),
                &cfg,
            );
            let e = f.iter().find(|f| f.check == Check::BuiltinSeries).unwrap();
            assert_eq!(e.severity, Severity::Error);
            assert!(
                e.message.contains("no series of vllm:num_requests_waiting"),
                "{}",
                e.message
            );
            assert!(e.message.contains(code));
            assert!(e.fix.contains(fix), "{code}: {}", e.fix);
        }
    }

    #[test]
    fn an_unreachable_scaler_blocks_and_its_series_are_not_judged() {
        let cfg = WebhookConfig::default();
        let f = findings(
            &so(),
            Some(&seen(Probe::Failed("connection refused".into()))),
            &BTreeMap::new(),
            Some(TokenSecret::Present),
            &cfg,
        );
        let e = f
            .iter()
            .find(|f| f.check == Check::BuiltinScalerReachable)
            .unwrap();
        assert_eq!(e.severity, Severity::Error);
        assert!(
            e.fix.contains("kubectl -n llm-autoscale-system get pods"),
            "{}",
            e.fix
        );
        assert!(of(&f, Check::BuiltinSeries).is_empty());
        // Only the proxy's /readyz: reachable, series not asked (gRPC does not pass the proxy).
        let f = findings(
            &so(),
            Some(&seen(Probe::Answered(()))),
            &readings(Probe::NotTried("gRPC does not pass the proxy".into())),
            Some(TokenSecret::Present),
            &cfg,
        );
        let w = f.iter().find(|f| f.check == Check::BuiltinSeries).unwrap();
        assert_eq!(w.severity, Severity::Warning);
        assert!(w.fix.contains("--builtin-scaler-url"));
    }

    #[test]
    fn a_missing_token_secret_blocks_unless_sidecars_present_none() {
        let mut cfg = WebhookConfig::default();
        for (token, want) in [
            (Some(TokenSecret::Missing), Severity::Error),
            (Some(TokenSecret::Forbidden), Severity::Warning),
            (None, Severity::Warning),
        ] {
            let f = findings(
                &so(),
                Some(&seen(Probe::Answered(()))),
                &BTreeMap::new(),
                token,
                &cfg,
            );
            assert_eq!(of(&f, Check::BuiltinToken), vec![want], "{token:?}");
        }
        cfg.builtin_scaler_auth = false;
        let f = findings(
            &so(),
            Some(&seen(Probe::Answered(()))),
            &BTreeMap::new(),
            None,
            &cfg,
        );
        assert!(of(&f, Check::BuiltinToken).is_empty());
    }

    #[test]
    fn triggers_of_other_scalers_are_not_its_business() {
        let cfg = WebhookConfig::default();
        let mut other = so();
        other.spec.triggers.truncate(0);
        assert!(findings(&other, None, &BTreeMap::new(), None, &cfg).is_empty());
    }
}
