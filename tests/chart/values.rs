//! The chart's values: impossible ones are refused at install with the value and the fix
//! (values.schema.json, and the checks in templates/_helpers.tpl), every key is documented and
//! in the schema, and the README's values table is values.yaml's documentation
//! (`UPDATE_GOLDEN=1` rewrites it).

use serde_json::Value;

use crate::helm;

#[test]
fn impossible_values_are_refused_with_the_value_and_the_fix() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--set", "webhook.failurePolicy=Never"],
            &["/webhook/failurePolicy", "'Ignore', 'Fail'"],
        ),
        (
            &["--set", "webhook.timeoutSeconds=31"],
            &["/webhook/timeoutSeconds", "30"],
        ),
        (&["--set", "replicaCout=3"], &["'replicaCout' not allowed"]),
        (
            &["--set", "certificates.mode=self-signed"],
            &[
                "/certificates/mode",
                "'cert-manager', 'generate', 'provided'",
            ],
        ),
        (
            &["--set", "config.sidecarMode=sometimes"],
            &["/config/sidecarMode"],
        ),
        (
            &["--set", "config.onInvalid=ignore"],
            &["/config/onInvalid", "'deny', 'warn'"],
        ),
        (
            &["--set", "config.otlpEndpoint=keda-otel-scaler.keda.svc"],
            &["/config/otlpEndpoint"],
        ),
        (
            &["--set", "config.prometheusAddress=prometheus:9090"],
            &["/config/prometheusAddress"],
        ),
        (
            &["--set", "replicaCount=1"],
            &[
                "podDisruptionBudget.minAvailable=1 with replicaCount=1",
                "Raise replicaCount",
            ],
        ),
        (
            &[
                "--set",
                "config.sidecarMode=native",
                "--kube-version",
                "1.28.4",
            ],
            &[
                "config.sidecarMode=native",
                "1.29",
                "Use sidecarMode auto or container",
            ],
        ),
        (
            &["--set", "config.kedaVersion=2.13.0"],
            &["config.kedaVersion=2.13.0", "2.14.0"],
        ),
        (
            &[
                "--set",
                "certificates.mode=provided,certificates.provided.caBundle=bm90IGEgY2VydA==",
            ],
            &[
                "certificates.provided.caBundle",
                "llm-autoscale-webhook certs",
            ],
        ),
        (
            &[
                "--set",
                "certificates.mode=provided,serviceMonitor.enabled=true",
            ],
            &["serviceMonitor.tlsConfig"],
        ),
        (&["--kube-version", "1.27.9"], &["kubeVersion", "1.27.9"]),
        (
            &["--set", "scaler.enabled=true,scaler.replicas=1"],
            &[
                "scaler.podDisruptionBudget.minAvailable=1 with scaler.replicas=1",
                "Raise scaler.replicas",
            ],
        ),
        (
            &[
                "--set",
                "scaler.enabled=true,rbac.create=false,serviceAccount.create=false,serviceAccount.name=sa",
            ],
            &[
                "scaler.trustKey.enabled with rbac.create=false",
                "scaler.trustKey.enabled=false",
            ],
        ),
        (
            &["--set", "scaler.trustKey.value=too-short"],
            &["/scaler/trustKey/value", "minLength"],
        ),
        (&["--set", "scaler.replica=3"], &["'replica' not allowed"]),
    ];
    for (args, needles) in cases {
        let err = match helm::try_render(args) {
            Ok(_) => panic!("{args:?} was rendered"),
            Err(e) => e,
        };
        for n in *needles {
            assert!(err.contains(n), "{args:?}: {n:?} not in\n{err}");
        }
    }
}

/// The oldest KEDA release the chart accepts is the binary's.
#[test]
fn the_oldest_keda_release_is_the_binarys() {
    let oldest = String::from(llm_autoscale_webhook::keda::OLDEST_SUPPORTED);
    helm::render(&["--set", &format!("config.kedaVersion={oldest}")]);
}

/// One documented key of values.yaml.
struct Row {
    path: Vec<String>,
    doc: String,
}

/// The keys documented with a `# --` line, in file order; keys inside a documented key are
/// part of its value. An undocumented key must be a map whose keys are documented.
fn documented_keys(text: &str, values: &Value) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut stack: Vec<(usize, String, bool)> = Vec::new();
    let mut pending: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(doc) = trimmed.strip_prefix("# -- ") {
            pending = Some(doc.to_string());
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            continue;
        }
        let Some((key, _)) = trimmed.split_once(':') else {
            continue;
        };
        let indent = line.len() - trimmed.len();
        while stack.last().is_some_and(|(i, _, _)| *i >= indent) {
            stack.pop();
        }
        let inside = stack.iter().any(|(_, _, documented)| *documented);
        let mut path: Vec<String> = stack.iter().map(|(_, k, _)| k.clone()).collect();
        path.push(key.to_string());
        let doc = pending.take();
        if !inside {
            match doc {
                Some(doc) => rows.push(Row {
                    path: path.clone(),
                    doc,
                }),
                None => assert!(
                    at(values, &path).is_object(),
                    "values.yaml: {} has no `# --` line",
                    path.join(".")
                ),
            }
        }
        stack.push((
            indent,
            key.to_string(),
            inside || rows.last().is_some_and(|r| r.path == path),
        ));
    }
    rows
}

fn at<'a>(v: &'a Value, path: &[String]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[k.as_str()])
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(_) => "int",
        Value::Bool(_) => "bool",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

fn markdown_table(rows: &[Row], values: &Value) -> String {
    let mut t = String::from("| Key | Type | Default | Description |\n| --- | --- | --- | --- |\n");
    for r in rows {
        let v = at(values, &r.path);
        t.push_str(&format!(
            "| `{}` | {} | `{}` | {} |\n",
            r.path.join("."),
            type_of(v),
            serde_json::to_string(v).unwrap(),
            r.doc
        ));
    }
    t
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(helm::repo_path(rel)).unwrap()
}

fn values() -> (String, Value) {
    let text = read("charts/llm-autoscale-webhook/values.yaml");
    let values: Value = serde_yaml_ng::from_str(&text).unwrap();
    (text, values)
}

/// The schema of `path`, following `$ref`s into `$defs`.
fn schema_at<'a>(schema: &'a Value, root: &'a Value, path: &[String]) -> Option<&'a Value> {
    let resolve = |s: &'a Value| match s["$ref"].as_str() {
        Some(r) => &root["$defs"][r.trim_start_matches("#/$defs/")],
        None => s,
    };
    let mut s = resolve(schema);
    for k in path {
        let next = s["properties"].get(k.as_str())?;
        s = resolve(next);
    }
    Some(s)
}

#[test]
fn every_value_is_documented_and_in_the_schema_and_back() {
    let (text, values) = values();
    let schema: Value =
        serde_json::from_str(&read("charts/llm-autoscale-webhook/values.schema.json")).unwrap();
    let rows = documented_keys(&text, &values);
    assert!(rows.len() > 50, "{} documented keys", rows.len());
    for r in &rows {
        assert!(
            schema_at(&schema, &schema, &r.path).is_some(),
            "{} is not in values.schema.json",
            r.path.join(".")
        );
    }
    // Every structured key of the schema has a default in values.yaml.
    fn walk(s: &Value, root: &Value, values: &Value, path: &mut Vec<String>) {
        let Some(props) = s["properties"].as_object() else {
            return;
        };
        for (k, sub) in props {
            if path.is_empty() && k == "global" {
                continue;
            }
            path.push(k.clone());
            assert!(
                !at(values, path).is_null(),
                "values.schema.json: {} has no default in values.yaml",
                path.join(".")
            );
            // Keys whose default is an empty map ({}) are optional inside.
            if at(values, path).as_object().is_some_and(|m| !m.is_empty()) {
                walk(schema_at(sub, root, &[]).unwrap(), root, values, path);
            }
            path.pop();
        }
    }
    walk(&schema, &schema, &values, &mut Vec::new());
}

const START: &str =
    "<!-- values-table: generated from charts/llm-autoscale-webhook/values.yaml -->\n";
const END: &str = "<!-- values-table: end -->";

#[test]
fn the_readme_values_table_is_values_yaml() {
    let (text, values) = values();
    let table = markdown_table(&documented_keys(&text, &values), &values);
    let path = helm::repo_path("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme
        .find(START)
        .expect("README marks the values table's start")
        + START.len();
    let end = start
        + readme[start..]
            .find(END)
            .expect("README marks the values table's end");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(
            &path,
            format!("{}{table}{}", &readme[..start], &readme[end..]),
        )
        .unwrap();
        return;
    }
    assert_eq!(
        &readme[start..end],
        table,
        "README.md's values table differs from values.yaml: run UPDATE_GOLDEN=1 cargo test --test chart"
    );
}
