//! Copies of the parts of a Deployment that its mutation reads or changes, so that admission
//! does not copy (and diff) a whole object to change two entries of its pod template.
//!
//! The JSON patch between two such copies is the patch between the whole objects: the
//! copies keep, in their original order, every member on the way to a changed part, and a
//! patch only has operations where the objects differ.

use serde_json::{Map, Value};

/// A copy of `value` with only the members at `paths` (each a list of keys) and the objects
/// leading to them, in their original order. A path that reaches a non-object, or ends,
/// copies the value there whole.
pub fn members(value: &Value, paths: &[&[&str]]) -> Value {
    let Value::Object(map) = value else {
        return value.clone();
    };
    if paths.iter().any(|p| p.is_empty()) {
        return value.clone();
    }
    let mut out = Map::new();
    for (key, member) in map {
        let rest: Vec<&[&str]> = paths
            .iter()
            .filter_map(|p| p.split_first())
            .filter(|(first, _)| **first == key.as_str())
            .map(|(_, rest)| rest)
            .collect();
        if !rest.is_empty() {
            out.insert(key.clone(), members(member, &rest));
        }
    }
    Value::Object(out)
}

/// Of a container-shaped JSON object, what identifies it and what it declares: `name`,
/// `image` and `ports` (not its environment, often most of the object). Anything else is
/// copied whole.
pub fn container_outline(container: &Value) -> Value {
    match container {
        Value::Object(c) => Value::Object(
            c.iter()
                .filter(|(k, _)| matches!(k.as_str(), "name" | "image" | "ports"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_keeps_the_paths_in_their_order_and_stops_at_non_objects() {
        let v = json!({
            "b": {"x": 1, "keep": [1, 2], "y": 2},
            "a": "not an object",
            "c": {"z": 3}
        });
        let copy = members(&v, &[&["a", "deeper"], &["b", "keep"], &["missing"]]);
        assert_eq!(copy, json!({"b": {"keep": [1, 2]}, "a": "not an object"}));
        assert_eq!(
            serde_json::to_string(&copy).unwrap(),
            r#"{"b":{"keep":[1,2]},"a":"not an object"}"#
        );
        assert_eq!(members(&v, &[&[]]), v);
    }

    #[test]
    fn an_outline_has_the_name_image_and_ports() {
        let c = json!({"name": "m", "env": [{"name": "A", "value": "1"}], "image": "i",
                       "ports": [{"containerPort": 8000}]});
        assert_eq!(
            container_outline(&c),
            json!({"name": "m", "image": "i", "ports": [{"containerPort": 8000}]})
        );
        assert_eq!(container_outline(&json!("x")), json!("x"));
    }
}
