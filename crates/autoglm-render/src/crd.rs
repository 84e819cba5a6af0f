//! The `modelservices.autoglm.io` CustomResourceDefinition, generated from
//! the same Rust types the console API and the local platform use, so the
//! three can never disagree on a field.
//!
//! The schema is made structural the way kube-derive makes it (inlined,
//! OpenAPI v3, enums hoisted), then given what only a CRD can say: CEL rules
//! for the cross-field checks, printer columns and the subresources.

use autoglm_core::service::{
    API_VERSION, KIND, MAX_REPLICAS, MAX_VERSIONS, ModelServiceSpec, ModelServiceStatus,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceSubresourceScale,
    CustomResourceSubresourceStatus, CustomResourceSubresources, CustomResourceValidation,
    JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_core::schema::{OptionalEnum, OptionalIntOrString, StructuralSchemaRewriter};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

/// The API group.
pub const GROUP: &str = "autoglm.io";
/// The plural resource name.
pub const PLURAL: &str = "modelservices";
/// The version served and stored.
pub const VERSION: &str = "v1alpha1";

/// The CRD, as `autoglm crd` prints it and the operator installs it.
pub fn custom_resource_definition() -> CustomResourceDefinition {
    debug_assert_eq!(API_VERSION, format!("{GROUP}/{VERSION}"));
    let mut spec = schema_of::<ModelServiceSpec>();
    add_spec_rules(&mut spec);
    let status = schema_of::<ModelServiceStatus>();
    let root = json!({
        "type": "object",
        "description": "A model from the autoglm registry served as an inference service: versions with traffic weights, runtime, replicas or autoscaling, resources.",
        "properties": {"spec": spec, "status": status},
        "required": ["spec"],
    });
    let open_api_v3_schema: JSONSchemaProps =
        serde_json::from_value(root).expect("the generated schema is a JSONSchemaProps");
    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(format!("{PLURAL}.{GROUP}")),
            labels: Some([("app.kubernetes.io/part-of".to_owned(), "autoglm".to_owned())].into()),
            ..ObjectMeta::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: GROUP.to_owned(),
            names: CustomResourceDefinitionNames {
                kind: KIND.to_owned(),
                list_kind: Some(format!("{KIND}List")),
                plural: PLURAL.to_owned(),
                singular: Some("modelservice".to_owned()),
                short_names: Some(vec!["ms".to_owned()]),
                categories: Some(vec!["autoglm".to_owned(), "all".to_owned()]),
            },
            scope: "Namespaced".to_owned(),
            versions: vec![CustomResourceDefinitionVersion {
                name: VERSION.to_owned(),
                served: true,
                storage: true,
                schema: Some(CustomResourceValidation {
                    open_api_v3_schema: Some(open_api_v3_schema),
                }),
                subresources: Some(CustomResourceSubresources {
                    status: Some(CustomResourceSubresourceStatus(json!({}))),
                    scale: Some(CustomResourceSubresourceScale {
                        spec_replicas_path: ".spec.replicas".to_owned(),
                        status_replicas_path: ".status.desiredReplicas".to_owned(),
                        label_selector_path: None,
                    }),
                }),
                additional_printer_columns: Some(printer_columns()),
                ..CustomResourceDefinitionVersion::default()
            }],
            ..CustomResourceDefinitionSpec::default()
        },
        status: None,
    }
}

/// The CRD as YAML, one document.
pub fn custom_resource_definition_yaml() -> String {
    serde_yaml_ng::to_string(&custom_resource_definition())
        .expect("a CustomResourceDefinition serialises")
}

/// The schema of `T`, structural: no `$ref`, enums hoisted into properties,
/// `additionalProperties: false` dropped (the API server prunes unknown
/// fields, and rejects them under strict field validation).
fn schema_of<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(OptionalEnum)
        .with_transform(OptionalIntOrString)
        .with_transform(StructuralSchemaRewriter)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(object) = schema.as_object_mut() {
        for key in ["$schema", "title", "definitions", "$defs"] {
            object.remove(key);
        }
    }
    strip_non_structural(&mut schema);
    schema
}

/// Removes what a structural schema may not carry: `format`s Kubernetes does
/// not know (`uint32`, `uint16`) are replaced by the bounds they imply.
fn strip_non_structural(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            // A 64-bit bound is no bound: the API server reads numbers as
            // floats, and i64::MAX as a float is beyond int64, which it
            // refuses when it validates an object.
            let bounds = match object.get("format").and_then(Value::as_str) {
                Some("uint32") => Some(Some(u64::from(u32::MAX))),
                Some("uint16") => Some(Some(u64::from(u16::MAX))),
                Some("uint") | Some("uint64") => Some(None),
                _ => None,
            };
            if let Some(max) = bounds {
                object.insert("format".to_owned(), json!("int64"));
                object.entry("minimum").or_insert(json!(0));
                if let Some(max) = max {
                    object.entry("maximum").or_insert(json!(max));
                }
            }
            object.values_mut().for_each(strip_non_structural);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_non_structural),
        _ => {}
    }
}

/// The cross-field rules of `ModelServiceSpec::validate` that a schema alone
/// cannot state, as CEL, so the API server refuses what the console refuses.
fn add_spec_rules(spec: &mut Value) {
    let set = |schema: &mut Value, pointer: &str, key: &str, value: Value| {
        if let Some(Value::Object(object)) = schema.pointer_mut(pointer) {
            object.insert(key.to_owned(), value);
        }
    };
    set(
        spec,
        "",
        "x-kubernetes-validations",
        json!([
            {
                "rule": "self.versions.map(v, v.weight).sum() == 100",
                "message": "the weights of spec.versions must sum to exactly 100",
                "reason": "FieldValueInvalid",
                "fieldPath": ".versions",
            },
            {
                "rule": "!(has(self.replicas) && has(self.autoscaling))",
                "message": "replicas and autoscaling are mutually exclusive: set replicas for a fixed count or autoscaling for a range",
                "reason": "FieldValueForbidden",
                "fieldPath": ".replicas",
            },
        ]),
    );
    // The console defaults a missing list to empty and then refuses it; the
    // API server may not default to a value its own schema refuses.
    if let Some(Value::Object(versions)) = spec.pointer_mut("/properties/versions") {
        versions.remove("default");
    }
    if let Some(Value::Array(required)) = spec.pointer_mut("/required") {
        required.push(json!("versions"));
    }
    set(spec, "/properties/versions", "minItems", json!(1));
    set(
        spec,
        "/properties/versions",
        "maxItems",
        json!(MAX_VERSIONS),
    );
    set(
        spec,
        "/properties/versions",
        "x-kubernetes-validations",
        json!([{
            "rule": "self.all(v, self.exists_one(w, w.version == v.version))",
            "message": "each version may be listed only once",
        }]),
    );
    set(
        spec,
        "/properties/versions/items/properties/weight",
        "maximum",
        json!(100),
    );
    set(
        spec,
        "/properties/versions/items/properties/version",
        "maxLength",
        json!(63),
    );
    set(spec, "/properties/replicas", "maximum", json!(MAX_REPLICAS));
    set(
        spec,
        "/properties/runtime",
        "x-kubernetes-validations",
        json!([
            {
                "rule": "[has(self.builtin), has(self.command), has(self.image)].filter(x, x).size() == 1",
                "message": "set exactly one of runtime.builtin, runtime.command or runtime.image",
            },
            {
                "rule": "!has(self.command)",
                "message": "runtime.command runs a program on the local platform only; on Kubernetes use runtime.image, or runtime.builtin",
                "reason": "FieldValueForbidden",
                "fieldPath": ".command",
            },
        ]),
    );
    set(
        spec,
        "/properties/autoscaling",
        "x-kubernetes-validations",
        json!([{
            "rule": "!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
            "message": "minReplicas must not be above maxReplicas",
            "reason": "FieldValueInvalid",
            "fieldPath": ".minReplicas",
        }]),
    );
    for field in ["minReplicas", "maxReplicas"] {
        set(
            spec,
            &format!("/properties/autoscaling/properties/{field}"),
            "maximum",
            json!(MAX_REPLICAS),
        );
    }
    set(
        spec,
        "/properties/autoscaling/properties/maxReplicas",
        "minimum",
        json!(1),
    );
    set(
        spec,
        "/properties/autoscaling/properties/targetInFlight",
        "minimum",
        json!(1),
    );
}

fn printer_columns() -> Vec<CustomResourceColumnDefinition> {
    let column = |name: &str, type_: &str, json_path: &str, description: &str| {
        CustomResourceColumnDefinition {
            name: name.to_owned(),
            type_: type_.to_owned(),
            json_path: json_path.to_owned(),
            description: Some(description.to_owned()),
            ..CustomResourceColumnDefinition::default()
        }
    };
    vec![
        column(
            "Model",
            "string",
            ".spec.model",
            "The registry model served",
        ),
        column(
            "Ready",
            "integer",
            ".status.readyReplicas",
            "Replicas ready to serve, all versions together",
        ),
        column(
            "Desired",
            "integer",
            ".status.desiredReplicas",
            "Replicas wanted now, all versions together",
        ),
        column(
            "Status",
            "string",
            ".status.conditions[?(@.type==\"Ready\")].reason",
            "Why the service is or is not Ready",
        ),
        column(
            "Age",
            "date",
            ".metadata.creationTimestamp",
            "Since the ModelService was created",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        serde_json::to_value(custom_resource_definition().spec.versions[0].schema.clone())
            .expect("schema")
    }

    /// Walks every sub-schema, calling `check` with its JSON pointer.
    fn walk(value: &Value, at: &str, check: &mut dyn FnMut(&str, &serde_json::Map<String, Value>)) {
        match value {
            Value::Object(object) => {
                check(at, object);
                for (key, child) in object {
                    walk(child, &format!("{at}/{key}"), check);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{at}/{i}"), check);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn the_schema_is_structural() {
        let mut problems = Vec::new();
        walk(&schema(), "", &mut |at, object| {
            for forbidden in ["$ref", "definitions", "$defs", "$schema", "const"] {
                if object.contains_key(forbidden) {
                    problems.push(format!("{at}: {forbidden}"));
                }
            }
            if object.get("additionalProperties") == Some(&Value::Bool(false)) {
                problems.push(format!("{at}: additionalProperties false"));
            }
            if let Some(format) = object.get("format").and_then(Value::as_str)
                && format.starts_with("uint")
            {
                problems.push(format!("{at}: format {format}"));
            }
        });
        assert_eq!(problems, Vec::<String>::new());
    }

    #[test]
    fn every_spec_field_has_a_description() {
        let root = schema();
        let spec = root
            .pointer("/openAPIV3Schema/properties/spec/properties")
            .and_then(Value::as_object)
            .expect("spec properties");
        for field in [
            "model",
            "versions",
            "runtime",
            "replicas",
            "autoscaling",
            "resources",
            "env",
            "stateful",
            "ingress",
        ] {
            let description = spec
                .get(field)
                .and_then(|f| f.get("description"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            assert!(!description.is_empty(), "spec.{field} has no description");
        }
    }

    #[test]
    fn names_subresources_and_columns_follow_the_contract() {
        let crd = custom_resource_definition();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("modelservices.autoglm.io")
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names, Some(vec!["ms".to_owned()]));
        let version = &crd.spec.versions[0];
        assert_eq!(
            (version.name.as_str(), version.served, version.storage),
            ("v1alpha1", true, true)
        );
        let sub = version.subresources.as_ref().expect("subresources");
        assert!(sub.status.is_some());
        assert_eq!(
            sub.scale.as_ref().map(|s| s.spec_replicas_path.as_str()),
            Some(".spec.replicas")
        );
        let columns: Vec<_> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(columns, ["Model", "Ready", "Desired", "Status", "Age"]);
        assert!(
            custom_resource_definition_yaml().starts_with(
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
            )
        );
    }
}
