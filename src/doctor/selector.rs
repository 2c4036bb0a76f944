//! Label selectors as the API server applies them to webhook namespace and object selectors
//! (k8s.io/apimachinery pkg/apis/meta/v1 `LabelSelectorAsSelector`: `matchLabels` and every
//! `matchExpressions` requirement must hold; an absent or empty selector selects everything).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Whether `selector` selects an object with `labels`.
pub fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(s) = selector else { return true };
    let labels_hold = s
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    labels_hold
        && s.match_expressions
            .iter()
            .flatten()
            .all(|r| requirement_holds(r, labels))
}

fn requirement_holds(r: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let value = labels.get(&r.key);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        // The API server refuses any other operator when the configuration is stored.
        _ => false,
    }
}

/// The selector as `kubectl` would print it: `a=b,key notin (x,y)`.
pub fn describe(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for r in selector.match_expressions.iter().flatten() {
        let values = r.values.as_deref().unwrap_or_default().join(",");
        parts.push(match r.operator.as_str() {
            "Exists" => r.key.clone(),
            "DoesNotExist" => format!("!{}", r.key),
            op => format!("{} {} ({values})", r.key, op.to_ascii_lowercase()),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn expressions(rs: Vec<LabelSelectorRequirement>) -> LabelSelector {
        LabelSelector {
            match_expressions: Some(rs),
            match_labels: None,
        }
    }

    #[test]
    fn absent_and_empty_select_everything() {
        assert!(selects(None, &labels(&[])));
        assert!(selects(
            Some(&LabelSelector::default()),
            &labels(&[("a", "b")])
        ));
    }

    #[test]
    fn the_deploy_namespace_selector_excludes_its_namespaces() {
        let s = expressions(vec![req(
            "kubernetes.io/metadata.name",
            "NotIn",
            &["llm-autoscale-system", "kube-system"],
        )]);
        let ns = |n: &str| labels(&[("kubernetes.io/metadata.name", n)]);
        assert!(selects(Some(&s), &ns("llm")));
        assert!(!selects(Some(&s), &ns("kube-system")));
        assert!(!selects(Some(&s), &ns("llm-autoscale-system")));
        assert_eq!(
            describe(&s),
            "kubernetes.io/metadata.name notin (llm-autoscale-system,kube-system)"
        );
    }

    #[test]
    fn every_operator() {
        let l = labels(&[("team", "ml"), ("tier", "gpu")]);
        let one = |r| selects(Some(&expressions(vec![r])), &l);
        assert!(one(req("team", "In", &["ml", "web"])));
        assert!(!one(req("team", "In", &["web"])));
        assert!(!one(req("absent", "In", &["x"])));
        assert!(one(req("absent", "NotIn", &["x"])));
        assert!(!one(req("team", "NotIn", &["ml"])));
        assert!(one(req("tier", "Exists", &[])));
        assert!(!one(req("absent", "Exists", &[])));
        assert!(one(req("absent", "DoesNotExist", &[])));
        assert!(!one(req("tier", "DoesNotExist", &[])));
        assert!(!one(req("tier", "Gt", &["1"])));
    }

    #[test]
    fn match_labels_and_expressions_must_all_hold() {
        let s = LabelSelector {
            match_labels: Some(labels(&[("opt", "in")])),
            match_expressions: Some(vec![req("team", "In", &["ml"])]),
        };
        assert!(selects(Some(&s), &labels(&[("opt", "in"), ("team", "ml")])));
        assert!(!selects(Some(&s), &labels(&[("team", "ml")])));
        assert!(!selects(Some(&s), &labels(&[("opt", "in")])));
        assert_eq!(describe(&s), "opt=in,team in (ml)");
    }
}
