//! Validates objects against a CRD's OpenAPI schema, strictly: a field the schema does not
//! declare is an error (as the apiserver's strict field validation reports). Used for KEDA's
//! ScaledObject and the KEDA HTTP add-on's InterceptorRoute (CEL `x-kubernetes-validations`
//! rules are not evaluated here).

use serde_json::Value;

/// Adds `additionalProperties: false` to every object schema that lists its properties and
/// does not preserve unknown fields.
fn make_strict(schema: &mut Value) {
    if let Some(obj) = schema.as_object_mut() {
        let preserves = obj
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            == Some(true);
        if obj.contains_key("properties") && !obj.contains_key("additionalProperties") && !preserves
        {
            obj.insert("additionalProperties".into(), Value::Bool(false));
        }
        for v in obj.values_mut() {
            make_strict(v);
        }
    } else if let Some(arr) = schema.as_array_mut() {
        for v in arr {
            make_strict(v);
        }
    }
}

/// The schema of one version of a CRD in tests/fixtures/crds.
pub struct CrdSchema {
    validator: jsonschema::Validator,
}

/// KEDA's ScaledObject (keda.sh/v1alpha1).
pub struct ScaledObjectSchema;

impl ScaledObjectSchema {
    pub fn load() -> CrdSchema {
        CrdSchema::load("keda-scaledobjects.yaml", "v1alpha1")
    }
}

/// The KEDA HTTP add-on's InterceptorRoute (http.keda.sh/v1beta1), from http-add-on v0.15.0
/// `config/crd/bases/http.keda.sh_interceptorroutes.yaml`.
pub struct InterceptorRouteSchema;

impl InterceptorRouteSchema {
    pub fn load() -> CrdSchema {
        CrdSchema::load("keda-http-interceptorroutes.yaml", "v1beta1")
    }
}

impl CrdSchema {
    fn load(file: &str, version: &str) -> Self {
        let path = format!("{}/tests/fixtures/crds/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("CRD fixture");
        let crd: Value = serde_yaml_ng::from_str(&text).expect("CRD YAML");
        let version = crd["spec"]["versions"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["name"] == version))
            .expect("the version in the CRD");
        let mut schema = version["schema"]["openAPIV3Schema"].clone();
        make_strict(&mut schema);
        // metadata is validated by the apiserver, not by the CRD schema.
        schema["properties"]["metadata"] = serde_json::json!({"type": "object"});
        let validator = jsonschema::validator_for(&schema).expect("compilable schema");
        CrdSchema { validator }
    }

    /// Every schema violation, as readable strings.
    pub fn errors(&self, object: &Value) -> Vec<String> {
        self.validator
            .iter_errors(object)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }
}
