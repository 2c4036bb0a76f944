//! The RBAC the chart installs: what the reconciler calls (src/reconcile/controller.rs,
//! leader.rs; the end-to-end tests run the reconciler with this ServiceAccount's token), the
//! Lease it takes, and the read-only role of `doctor`: exactly the requests src/doctor/gather/
//! makes (its `API_READS`; the end-to-end test compares that list with the requests doctor
//! made).

use std::collections::BTreeSet;

use llm_autoscale_webhook::doctor::gather::API_READS;
use llm_autoscale_webhook::reconcile::ReconcilerSettings;
use serde_json::{Value, json};

use crate::helm;

/// Whether `rules` allow `verb` on `group`/`resource`, optionally for one name.
fn allows(rules: &Value, group: &str, resource: &str, verb: &str) -> bool {
    let has = |list: &Value, item: &str| {
        list.as_array()
            .is_some_and(|l| l.iter().any(|v| v == item || v == "*"))
    };
    rules.as_array().expect("rules").iter().any(|r| {
        has(&r["apiGroups"], group) && has(&r["resources"], resource) && has(&r["verbs"], verb)
    })
}

/// What the reconciler does, by API call: watches and reflector stores (list, watch), `get_opt`,
/// server-side apply (patch), `delete`, and kube's event Recorder (create, patch).
const RECONCILER: &[(&str, &str, &[&str])] = &[
    ("apps", "deployments", &["get", "list", "watch"]),
    (
        "keda.sh",
        "scaledobjects",
        &["get", "list", "watch", "create", "patch", "delete"],
    ),
    (
        "http.keda.sh",
        "interceptorroutes",
        &["get", "create", "patch", "delete"],
    ),
    (
        "serving.kserve.io",
        "inferenceservices",
        &["get", "list", "watch"],
    ),
    ("", "events", &["create", "patch"]),
    ("events.k8s.io", "events", &["create", "patch"]),
];

#[test]
fn the_reconciler_may_do_what_it_does_and_runs_as_the_bound_account() {
    let objects = helm::render(&[]);
    let role = helm::find(&objects, "ClusterRole", helm::RELEASE);
    for (group, resource, verbs) in RECONCILER {
        for verb in *verbs {
            assert!(
                allows(&role["rules"], group, resource, verb),
                "{verb} {group}/{resource}"
            );
        }
    }
    assert!(
        !allows(&role["rules"], "apps", "deployments", "patch"),
        "the reconciler never writes Deployments"
    );
    let sa = helm::find(&objects, "ServiceAccount", helm::RELEASE);
    let binding = helm::find(&objects, "ClusterRoleBinding", helm::RELEASE);
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let subject = json!({"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": helm::NAMESPACE});
    assert_eq!(binding["subjects"], json!([subject]));
    let d = helm::find(&objects, "Deployment", helm::RELEASE);
    assert_eq!(
        d["spec"]["template"]["spec"]["serviceAccountName"],
        sa["metadata"]["name"]
    );
}

#[test]
fn leader_election_is_limited_to_the_lease_the_binary_takes() {
    let objects = helm::render(&[]);
    let lease = ReconcilerSettings::from_env().lease_name;
    let role = helm::find(&objects, "Role", "llm-autoscale-webhook-leader-election");
    assert_eq!(role["metadata"]["namespace"], helm::NAMESPACE);
    let named = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resourceNames"].is_array())
        .expect("a rule limited by name");
    assert_eq!(named["resourceNames"], json!([lease]));
    assert_eq!(named["verbs"], json!(["get", "update"]));
    let binding = helm::find(
        &objects,
        "RoleBinding",
        "llm-autoscale-webhook-leader-election",
    );
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["name"], helm::RELEASE);
}

/// Every (group, resource, verb, names) that `rules` grant (names: the `resourceNames`, empty
/// for any); panics on rules for non-resource URLs, which doctor's role has none of.
fn granted(rules: &Value) -> BTreeSet<(String, String, String, Vec<String>)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|s| s.as_str().expect("a string").to_string())
            .collect()
    };
    let mut out = BTreeSet::new();
    for r in rules.as_array().expect("rules") {
        assert!(r.get("nonResourceURLs").is_none(), "{r}");
        let names = r.get("resourceNames").map(&strings).unwrap_or_default();
        for group in strings(&r["apiGroups"]) {
            for resource in strings(&r["resources"]) {
                for verb in strings(&r["verbs"]) {
                    out.insert((group.clone(), resource.clone(), verb, names.clone()));
                }
            }
        }
    }
    out
}

/// What src/doctor/gather/api_reads.rs lists, with or without the built-in scaler's reads.
fn doctor_reads(with_scaler: bool) -> BTreeSet<(String, String, String, Vec<String>)> {
    API_READS
        .iter()
        .filter(|r| with_scaler || !r.builtin_only)
        .flat_map(|r| {
            r.verbs.iter().map(|v| {
                (
                    r.group.to_string(),
                    r.resource.to_string(),
                    v.to_string(),
                    r.names.iter().map(|n| n.to_string()).collect(),
                )
            })
        })
        .collect()
}

#[test]
fn doctor_may_make_exactly_the_requests_it_makes_and_writes_nothing() {
    let with_scaler = helm::render(&["--set", "scaler.enabled=true"]);
    let role = helm::find(&with_scaler, "ClusterRole", "llm-autoscale-webhook-doctor");
    assert_eq!(
        granted(&role["rules"]),
        doctor_reads(true),
        "the doctor ClusterRole (scaler.enabled) and src/doctor/gather/api_reads.rs"
    );
    let objects = helm::render(&[]);
    let role = helm::find(&objects, "ClusterRole", "llm-autoscale-webhook-doctor");
    let wanted = doctor_reads(false);
    for (_, resource, _, names) in &doctor_reads(true) {
        assert!(
            resource != "secrets" || !names.is_empty(),
            "doctor reads no Secret but the token's"
        );
    }
    assert_eq!(
        granted(&role["rules"]),
        wanted,
        "the doctor ClusterRole and src/doctor/gather/api_reads.rs"
    );
    for (_, _, verb, _) in &wanted {
        assert!(
            verb == "get" || verb == "list",
            "doctor is read-only: {verb}"
        );
    }
    assert!(
        helm::all_of(&objects, "ClusterRoleBinding")
            .iter()
            .all(|b| b["roleRef"]["name"] != role["metadata"]["name"]),
        "bound to nobody by default"
    );

    let bound = helm::render(&[
        "--set",
        "doctor.bindServiceAccount=true",
        "--set",
        "doctor.subjects[0].kind=Group,doctor.subjects[0].name=oncall,doctor.subjects[0].apiGroup=rbac.authorization.k8s.io",
    ]);
    let binding = helm::find(&bound, "ClusterRoleBinding", "llm-autoscale-webhook-doctor");
    assert_eq!(
        binding["subjects"],
        json!([
            {"kind": "Group", "name": "oncall", "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "ServiceAccount", "name": helm::RELEASE, "namespace": helm::NAMESPACE},
        ])
    );
    let without = helm::render(&["--set", "doctor.clusterRole=false"]);
    assert!(
        helm::all_of(&without, "ClusterRole")
            .iter()
            .all(|r| r["metadata"]["name"] == helm::RELEASE)
    );
}

#[test]
fn without_rbac_nothing_is_granted_and_an_existing_account_must_be_named() {
    let objects = helm::render(&[
        "--set",
        "rbac.create=false,serviceAccount.create=false,serviceAccount.name=platform-sa",
    ]);
    for kind in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ] {
        assert!(helm::all_of(&objects, kind).is_empty(), "{kind}");
    }
    let d = helm::find(&objects, "Deployment", helm::RELEASE);
    assert_eq!(
        d["spec"]["template"]["spec"]["serviceAccountName"],
        "platform-sa"
    );
    let err = helm::try_render(&["--set", "serviceAccount.create=false"]).unwrap_err();
    assert!(err.contains("serviceAccount.name"), "{err}");
}
