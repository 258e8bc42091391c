//! Rules the generated OpenAPI document states in one place, taken from the constants the server
//! validates with, so the document cannot drift from what the server does:
//!
//! - every authenticated operation answers 401, and every authenticated write (and admin-only
//!   read) 403 (role);
//! - every operation that reads a JSON body answers 400, 408, 413 and 415;
//! - status enums, the secret name pattern, name lengths, roles and `template_id` values;
//! - `POST /workflows/{id}/run` takes an optional body that, when sent, is one JSON object
//!   (`null` is refused like any other non-object body).
//!
//! The document is patched as JSON: the rules read as the document they produce.

use serde_json::{json, Value};

use crate::domain::runs::RUN_STATUSES;
use crate::domain::secrets::NAME_PATTERN;
use crate::domain::workflows::STATUSES;

/// GET routes only admins may call (every other GET is open to every role).
const ADMIN_READS: [&str; 2] = ["/api/keys", "/api/audit"];

/// Role names the API accepts (`tech` is the spec's alias of `member`).
const ROLES: [&str; 4] = ["admin", "member", "tech", "readonly"];

/// Applies the rules; a document that does not round-trip is returned unchanged (and that is a
/// bug the OpenAPI test catches).
pub(super) fn apply(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let Ok(mut value) = serde_json::to_value(&doc) else {
        return doc;
    };
    patch(&mut value);
    serde_json::from_value(value).unwrap_or(doc)
}

fn patch(doc: &mut Value) {
    let error = json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    let add = |op: &mut Value, status: &str, description: &str| {
        let responses = &mut op["responses"];
        if responses.get(status).is_none() {
            responses[status] = json!({"description": description, "content": error.clone()});
        }
    };
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            for method in ["get", "post", "put", "delete", "patch"] {
                let Some(op) = item.get_mut(method) else { continue };
                if op.get("security").is_some() {
                    add(op, "401", "Missing, invalid or revoked credentials");
                    if method != "get" || ADMIN_READS.contains(&path.as_str()) {
                        add(op, "403", "The caller's role may not do this");
                    }
                }
                if op.get("requestBody").is_some() {
                    add(
                        op,
                        "400",
                        "Malformed JSON, a body that is not one JSON object, or a bad field",
                    );
                    add(op, "408", "The body did not arrive within the body timeout");
                    add(op, "413", "The body is over the size limit");
                    add(op, "415", "The body is not JSON");
                }
            }
        }
        if let Some(run) = paths
            .get_mut("/api/workflows/{id}/run")
            .and_then(|i| i.get_mut("post"))
        {
            run["requestBody"] = json!({
                "description": "Optional: an empty body is the same as {}. When sent it must be one \
                                JSON object; null, arrays and other values are a 400.",
                "required": false,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RunBody"}}},
            });
        }
        set_query_enum(paths, "/api/workflows", "status", &STATUSES);
        set_query_enum(paths, "/api/workflows/runs", "status", &RUN_STATUSES);
    }
    let schemas = &mut doc["components"]["schemas"];
    for schema in ["WorkflowView", "CreateWorkflow", "UpdateWorkflow", "VersionView"] {
        set_enum(&mut schemas[schema]["properties"]["status"], &STATUSES);
    }
    let templates: Vec<&str> = sealflow_workflow::catalogue::catalogue()
        .iter()
        .map(|t| t.id)
        .collect();
    set_enum(
        &mut schemas["CreateWorkflow"]["properties"]["template_id"],
        &templates,
    );
    set_enum(&mut schemas["CreateKey"]["properties"]["role"], &ROLES);
    let name = &mut schemas["CreateSecret"]["properties"]["name"];
    name["pattern"] = json!(NAME_PATTERN);
    name["minLength"] = json!(1);
    name["maxLength"] = json!(128);
    schemas["CreateSecret"]["properties"]["value"]["minLength"] = json!(1);
    schemas["CreateKey"]["properties"]["name"]["minLength"] = json!(1);
    schemas["CreateKey"]["properties"]["name"]["maxLength"] = json!(200);
    for schema in ["CreateWorkflow", "UpdateWorkflow"] {
        schemas[schema]["properties"]["name"]["minLength"] = json!(1);
        schemas[schema]["properties"]["name"]["maxLength"] = json!(200);
    }
}

/// Sets `enum` on a property schema; a nullable one (`type: [..., "null"]`) also lists `null`.
fn set_enum(property: &mut Value, values: &[&str]) {
    if !property.is_object() {
        return;
    }
    let nullable = property["type"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "null"));
    let mut list: Vec<Value> = values.iter().map(|v| json!(v)).collect();
    if nullable {
        list.push(Value::Null);
    }
    property["enum"] = Value::Array(list);
}

fn set_query_enum(paths: &mut serde_json::Map<String, Value>, path: &str, param: &str, values: &[&str]) {
    let Some(params) = paths
        .get_mut(path)
        .and_then(|i| i.get_mut("get"))
        .and_then(|op| op.get_mut("parameters"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for p in params.iter_mut().filter(|p| p["name"] == param) {
        set_enum(&mut p["schema"], values);
    }
}
