//! The HPA's scaling behaviour per direction: `scale-{up,down}-stabilization`,
//! `scale-{up,down}-policies` (a JSON list) and `scale-{up,down}-select-policy`, into the
//! `HPAScalingRules` KEDA copies into its HPA (`advanced.horizontalPodAutoscalerConfig.behavior`).
//!
//! Limits are the Kubernetes API's: k8s.io/api v0.34.4 autoscaling/v2/types.go
//! (`PodsScalingPolicy`, `PercentScalingPolicy`; `MaxChangePolicySelect`,
//! `MinChangePolicySelect`, `DisabledPolicySelect`) and the field documentation of
//! `HPAScalingPolicy` and `HPAScalingRules` (value greater than zero, periodSeconds 1–1800,
//! stabilizationWindowSeconds 0–3600, `Max` the default select policy).

use k8s_openapi::api::autoscaling::v2::{HPAScalingPolicy, HPAScalingRules};
use serde::Deserialize;

use super::key;
use super::reader::Reader;
use super::values::{self, Refusal};
use crate::problem::Problem;

/// `scale-up` or `scale-down`.
#[derive(Clone, Copy, Debug)]
pub(super) enum Direction {
    Up,
    Down,
}

impl Direction {
    fn key(self, what: &str) -> String {
        match self {
            Direction::Up => format!("scale-up-{what}"),
            Direction::Down => format!("scale-down-{what}"),
        }
    }
}

pub(super) const SELECT_POLICIES: [&str; 3] = ["Max", "Min", "Disabled"];

/// One entry of a policies list, as the HPA spells it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyEntry {
    #[serde(rename = "type")]
    kind: String,
    value: i64,
    period_seconds: i64,
}

const POLICIES_EXAMPLE: &str = r#"write a JSON list such as [{"type":"Percent","value":100,"periodSeconds":30},{"type":"Pods","value":5,"periodSeconds":15}]"#;

impl Reader<'_> {
    /// The rules of one direction, `None` when none of its keys is set.
    pub(super) fn scaling_rules(&mut self, d: Direction) -> Option<HPAScalingRules> {
        let (window, policies, select) = (
            d.key("stabilization"),
            d.key("policies"),
            d.key("select-policy"),
        );
        if [&window, &policies, &select]
            .iter()
            .all(|k| self.raw(k).is_none())
        {
            return None;
        }
        let stabilization_window_seconds = self.stabilization(&window);
        let policies = self.policies(&policies);
        let select_policy = self.get(&select, |v| {
            SELECT_POLICIES
                .contains(&v)
                .then(|| v.to_string())
                .ok_or(Refusal {
                    reason: "unknown select policy".into(),
                    fix: format!("write one of {}", SELECT_POLICIES.join(", ")),
                })
        });
        Some(HPAScalingRules {
            stabilization_window_seconds,
            policies,
            select_policy,
            ..HPAScalingRules::default()
        })
    }

    fn stabilization(&mut self, short: &str) -> Option<i32> {
        let v = self.get(short, values::seconds)?;
        if v > 3600 {
            self.bad(
                short,
                "the HPA accepts at most 3600 seconds",
                "write a duration up to \"1h\"",
            );
            return None;
        }
        Some(v)
    }

    /// A policies list; every entry's problem is reported.
    fn policies(&mut self, short: &str) -> Option<Vec<HPAScalingPolicy>> {
        let raw = self.raw(short)?;
        let entries: Vec<serde_json::Value> = match serde_json::from_str(raw) {
            Ok(serde_json::Value::Array(list)) if !list.is_empty() => list,
            Ok(_) => {
                self.bad(short, "not a non-empty JSON list", POLICIES_EXAMPLE);
                return None;
            }
            Err(e) => {
                self.bad(short, format!("not valid JSON ({e})"), POLICIES_EXAMPLE);
                return None;
            }
        };
        let mut out = Vec::new();
        let mut valid = true;
        for (i, entry) in entries.into_iter().enumerate() {
            match PolicyEntry::deserialize(entry)
                .map_err(|e| e.to_string())
                .and_then(policy)
            {
                Ok(p) => out.push(p),
                Err(reason) => {
                    valid = false;
                    self.f.problem(Problem::new(
                        format!("{}[{i}]", key(short)),
                        None,
                        reason,
                        POLICIES_EXAMPLE,
                    ));
                }
            }
        }
        valid.then_some(out)
    }
}

fn policy(e: PolicyEntry) -> Result<HPAScalingPolicy, String> {
    if !matches!(e.kind.as_str(), "Pods" | "Percent") {
        return Err(format!("type {:?}: the HPA knows Pods and Percent", e.kind));
    }
    let value = i32::try_from(e.value)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("value {}: must be a whole number above 0", e.value))?;
    let period_seconds = i32::try_from(e.period_seconds)
        .ok()
        .filter(|p| (1..=1800).contains(p))
        .ok_or_else(|| {
            format!(
                "periodSeconds {}: the HPA accepts 1 to 1800 seconds",
                e.period_seconds
            )
        })?;
    Ok(HPAScalingPolicy {
        type_: e.kind,
        value,
        period_seconds,
    })
}
