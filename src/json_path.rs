//! Reaching into JSON values by a path of object keys, without the allocations of
//! `Value::pointer` (which unescapes every token of a `/a/b` string into a new `String`).

use serde_json::{Map, Value};

/// The value at `path` (object keys), if every step is an object holding the next key.
pub fn get<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// [`get`], mutable.
pub fn get_mut<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, key| v.get_mut(key))
}

/// The JSON object at `path`, created along the way; `None` when a non-object is in the way.
pub fn ensure_object<'a>(
    value: &'a mut Value,
    path: &[&str],
) -> Option<&'a mut Map<String, Value>> {
    let mut cur = value;
    for key in path {
        let map = cur.as_object_mut()?;
        if !map.contains_key(*key) {
            map.insert((*key).to_string(), Value::Object(Map::new()));
        }
        cur = map.get_mut(*key)?;
    }
    cur.as_object_mut()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_reach_objects_and_create_missing_ones() {
        let mut v = json!({"a": {"b": {"c": 1}}, "x": 3, "s~1": {"t": 2}});
        assert_eq!(get(&v, &["a", "b", "c"]), Some(&json!(1)));
        assert_eq!(get(&v, &["s~1", "t"]), Some(&json!(2)));
        assert_eq!(get(&v, &["x", "y"]), None);
        assert_eq!(get(&v, &[]), Some(&v.clone()));
        if let Some(c) = get_mut(&mut v, &["a", "b", "c"]) {
            *c = json!(5);
        }
        assert_eq!(v["a"]["b"]["c"], 5);
        ensure_object(&mut v, &["a", "n", "m"]).map(|m| m.insert("k".into(), json!(true)));
        assert_eq!(v["a"]["n"], json!({"m": {"k": true}}));
        assert!(ensure_object(&mut v, &["x", "y"]).is_none());
    }
}
