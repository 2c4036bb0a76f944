//! The manifests under tests/fixtures and examples, for the library's own tests.

use serde_json::Value;

use crate::manifest::parse_documents;

/// Every object of the YAML files in `dirs` (relative to the crate), `List` items one by one,
/// in file-name order.
pub(crate) fn objects(dirs: &[&str]) -> Vec<Value> {
    let mut objects = Vec::new();
    for dir in dirs {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        paths.sort();
        for p in paths {
            for doc in parse_documents(&std::fs::read_to_string(&p).unwrap()).unwrap() {
                match doc.get("items").and_then(Value::as_array) {
                    Some(items) => objects.extend(items.iter().cloned()),
                    None => objects.push(doc),
                }
            }
        }
    }
    objects
}
