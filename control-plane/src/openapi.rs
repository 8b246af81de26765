//! The API's one contract: an OpenAPI 3.1 document generated from the
//! handlers themselves (each carries a `#[utoipa::path]`, and the routers
//! are built with `utoipa-axum`, so a route cannot be served without being
//! in the document), served at `/openapi.json` and checked into the repo
//! as `api/openapi.json` (a test fails when they differ). What every
//! operation shares is added here: the two ways to authenticate, and the
//! one error shape (Confluent's for the schema registry's routes).

use serde_json::{json, Value};
use utoipa::PartialSchema;

/// The registry's routes, which answer in Confluent's error shape.
const REGISTRY_PREFIX: &str = "/schema-registry/";
const REGISTRY_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The document of the routes `api` serves.
pub fn document(api: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(&api).expect("an OpenAPI document serializes");
    doc["info"] = json!({
        "title": "Weir API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Flink SQL statements, compute pools, the schema registry, identity and access, and usage, for every organization and environment of a Weir server. Errors have one shape (`ErrorBody`); the schema registry's routes answer in Confluent's (`RegistryError`).",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    });
    let components = doc
        .as_object_mut()
        .expect("an object")
        .entry("components")
        .or_insert_with(|| json!({}));
    components["securitySchemes"] = json!({
        "api_key": {"type": "http", "scheme": "basic",
                    "description": "An API key and its secret as HTTP Basic credentials."},
        "oauth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                  "description": "A token from an identity provider registered under /iam/v2/identity-providers."},
    });
    let schemas = components
        .as_object_mut()
        .expect("an object")
        .entry("schemas")
        .or_insert_with(|| json!({}));
    for (name, schema) in [
        ("ErrorBody", weir_api::ErrorBody::schema()),
        ("ErrorItem", weir_api::ErrorItem::schema()),
        ("ErrorSource", weir_api::ErrorSource::schema()),
        // Reached only through a recursive type, which utoipa does not
        // follow into the components.
        ("RowFieldDescriptor", weir_api::RowFieldDescriptor::schema()),
    ] {
        schemas[name] = serde_json::to_value(schema).expect("a schema serializes");
    }
    schemas["RegistryError"] = json!({
        "type": "object",
        "description": "The Confluent Schema Registry's error shape.",
        "required": ["error_code", "message"],
        "properties": {
            "error_code": {"type": "integer", "description": "40401 subject not found, 40402 version not found, 40403 schema not found, 409 incompatible, 42201 invalid schema, ..."},
            "message": {"type": "string"},
        },
    });
    doc["security"] = json!([{"api_key": []}, {"oauth": []}]);
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let (media, schema) = if path.starts_with(REGISTRY_PREFIX) {
                (REGISTRY_TYPE, "RegistryError")
            } else {
                ("application/json", "ErrorBody")
            };
            for op in item
                .as_object_mut()
                .into_iter()
                .flat_map(|o| o.values_mut())
            {
                if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
                    responses.insert(
                        "default".into(),
                        json!({
                            "description": "An error: a 4xx says what to change (the request, the credentials, a role, a limit); a 5xx is the server's",
                            "content": {media: {"schema": {"$ref": format!("#/components/schemas/{schema}")}}},
                        }),
                    );
                }
            }
        }
    }
    doc
}
