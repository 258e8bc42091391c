//! The OpenAPI document is generated from the code and covers every route the server serves.

mod common;

use common::*;
use serde_json::{json, Value};

/// The routes of spec §3 to §9 that are built.
const REQUIRED: &[(&str, &str)] = &[
    ("get", "/api/workflows/secrets"),
    ("post", "/api/workflows/secrets"),
    ("delete", "/api/workflows/secrets"),
    ("get", "/api/workflows"),
    ("post", "/api/workflows"),
    ("get", "/api/workflows/{id}"),
    ("put", "/api/workflows/{id}"),
    ("delete", "/api/workflows/{id}"),
    ("get", "/api/workflows/{id}/versions"),
    ("get", "/api/workflows/templates"),
    ("post", "/api/workflows/{id}/run"),
    ("get", "/api/workflows/runs"),
    ("get", "/api/workflows/runs/{id}"),
    ("post", "/api/workflows/runs/{id}/cancel"),
    ("post", "/api/workflows/{id}/webhook/rotate"),
    ("post", "/api/hooks/{token}"),
    ("get", "/api/keys"),
    ("post", "/api/keys"),
    ("delete", "/api/keys"),
    ("put", "/api/keys"),
    ("patch", "/api/keys"),
    ("post", "/api/keys/limit"),
    ("get", "/api/me"),
    ("post", "/api/workflows/files"),
    ("get", "/api/workflows/runs/{id}/download"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/api/openapi.json"),
    ("post", "/api/auth/login"),
    ("get", "/api/users"),
    ("post", "/api/users"),
    ("patch", "/api/users/{id}"),
    ("delete", "/api/users/{id}"),
    ("get", "/api/audit"),
];

#[tokio::test]
async fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let app = TestApp::spawn().await;
    let res = app.client.get(app.url("/api/openapi.json")).send().await.unwrap();
    let (status, doc) = split(res).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();

    for (method, path) in REQUIRED {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is not documented"
        );
    }

    // Each documented operation reaches a handler: never the router's 404/405 fallbacks.
    let mut operations = 0;
    for (path, item) in paths {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let url = app.url(&path.replace("{id}", "wf_doesnotexist"));
            let req = app
                .client
                .request(method.to_uppercase().parse().unwrap(), url)
                .bearer_auth(&app.admin_key)
                .header("content-type", "application/json")
                .body("{}");
            let (status, body) = split(req.send().await.unwrap()).await;
            assert_ne!(status, 405, "{method} {path}");
            let fallback = body["message"].as_str() == Some("no such route");
            assert!(!fallback, "{method} {path} is documented but not served");
            // Authenticated routes declare the bearer scheme.
            if path.starts_with("/api/")
                && *path != "/api/openapi.json"
                && *path != "/api/auth/login"
                && !path.starts_with("/api/hooks/")
            {
                assert!(
                    item[method]["security"].is_array(),
                    "{method} {path} lacks security"
                );
            }
        }
    }
    assert_eq!(
        operations,
        REQUIRED.len(),
        "documented operations: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    assert!(doc["components"]["schemas"].get("ErrorBody").is_some());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

async fn document(app: &TestApp) -> Value {
    let res = app.client.get(app.url("/api/openapi.json")).send().await.unwrap();
    let (status, doc) = split(res).await;
    assert_eq!(status, 200);
    doc
}

fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn every_authenticated_operation_documents_401_and_every_body_its_400_413_and_415() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let responses = &op["responses"];
            if op.get("security").is_some() {
                assert!(responses.get("401").is_some(), "{method} {path} lacks 401");
                if method != "get" || ["/api/keys", "/api/audit"].contains(&path.as_str()) {
                    assert!(responses.get("403").is_some(), "{method} {path} lacks 403");
                }
                // And the server does answer 401 there without credentials.
                let url = app.url(&path.replace("{id}", "wf_x"));
                let res = app
                    .client
                    .request(method.to_uppercase().parse().unwrap(), url)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 401, "{method} {path}");
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415"] {
                    assert!(responses.get(status).is_some(), "{method} {path} lacks {status}");
                }
            }
        }
    }
}

#[tokio::test]
async fn documented_enums_and_patterns_are_exactly_what_the_server_accepts() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];

    // Workflow statuses: each documented value is accepted, nothing else.
    let statuses = strings(&schemas["CreateWorkflow"]["properties"]["status"]["enum"]);
    assert_eq!(statuses, sealflow::domain::workflows::STATUSES);
    assert_eq!(
        strings(&schemas["WorkflowView"]["properties"]["status"]["enum"]),
        statuses
    );
    for status in &statuses {
        let (code, body) = app
            .post(
                "/api/workflows",
                &app.admin_key,
                &json!({"name": "s", "status": status}),
            )
            .await;
        assert_eq!(code, 201, "{status}: {body}");
    }
    let (code, _) = app
        .post(
            "/api/workflows",
            &app.admin_key,
            &json!({"name": "s", "status": "archived"}),
        )
        .await;
    assert_eq!(code, 422);

    // Run statuses on the list filter.
    let params = doc["paths"]["/api/workflows/runs"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let status_param = params.iter().find(|p| p["name"] == "status").unwrap();
    let run_statuses = strings(&status_param["schema"]["enum"]);
    assert_eq!(run_statuses, sealflow::domain::runs::RUN_STATUSES);
    for status in &run_statuses {
        let (code, body) = app
            .get(&format!("/api/workflows/runs?status={status}"), &app.admin_key)
            .await;
        assert_eq!(code, 200, "{status}: {body}");
    }
    assert_eq!(
        app.get("/api/workflows/runs?status=done", &app.admin_key).await.0,
        400
    );

    // Template ids.
    let templates = strings(&schemas["CreateWorkflow"]["properties"]["template_id"]["enum"]);
    assert!(!templates.is_empty());
    for id in &templates {
        let (code, body) = app
            .post("/api/workflows", &app.admin_key, &json!({"template_id": id}))
            .await;
        assert_eq!(code, 201, "{id}: {body}");
    }
    let (code, _) = app
        .post(
            "/api/workflows",
            &app.admin_key,
            &json!({"template_id": "tpl_nope"}),
        )
        .await;
    assert_eq!(code, 422);

    // Roles of a new key.
    for role in strings(&schemas["CreateKey"]["properties"]["role"]["enum"]) {
        let (code, body) = app
            .post("/api/keys", &app.admin_key, &json!({"name": "k", "role": role}))
            .await;
        assert_eq!(code, 201, "{role}: {body}");
    }
    let key_name = &schemas["CreateKey"]["properties"]["name"];
    let max = key_name["maxLength"].as_u64().unwrap() as usize;
    let (code, _) = app
        .post("/api/keys", &app.admin_key, &json!({"name": "k".repeat(max)}))
        .await;
    assert_eq!(code, 201);
    let (code, _) = app
        .post("/api/keys", &app.admin_key, &json!({"name": "k".repeat(max + 1)}))
        .await;
    assert_eq!(code, 400);

    // Secret names.
    let name = &schemas["CreateSecret"]["properties"]["name"];
    assert_eq!(name["pattern"], "^[A-Za-z_][A-Za-z0-9_]{0,127}$");
    let max = name["maxLength"].as_u64().unwrap() as usize;
    for (candidate, code) in [
        ("A".repeat(max), 201),
        ("A".repeat(max + 1), 400),
        ("_x9".into(), 201),
        ("9x".into(), 400),
        ("a-b".into(), 400),
    ] {
        let (got, body) = app
            .post(
                "/api/workflows/secrets",
                &app.admin_key,
                &json!({"name": candidate, "value": "v-1234"}),
            )
            .await;
        assert_eq!(got, code, "{candidate}: {body}");
    }
}

#[tokio::test]
async fn the_run_body_is_documented_as_optional_and_never_null() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let body = &doc["paths"]["/api/workflows/{id}/run"]["post"]["requestBody"];
    assert_eq!(body["required"], false, "{body}");
    let schema = &body["content"]["application/json"]["schema"];
    assert_eq!(
        schema,
        &json!({"$ref": "#/components/schemas/RunBody"}),
        "not nullable"
    );
    let id = app.workflow(&app.admin_key, json!({"name": "w"})).await;
    let post = |body: &'static str| {
        app.client
            .post(app.url(&format!("/api/workflows/{id}/run")))
            .bearer_auth(&app.admin_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(post("").await.unwrap().status(), 201, "no body");
    assert_eq!(post(r#"{"input": {"a": 1}}"#).await.unwrap().status(), 201);
    assert_eq!(post("null").await.unwrap().status(), 400);
}

#[tokio::test]
async fn the_audit_listing_documents_its_filters_paging_and_admin_only_access() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let op = &doc["paths"]["/api/audit"]["get"];
    let mut params: Vec<String> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    params.sort();
    assert_eq!(params, ["limit", "offset", "page", "run_id", "secret", "since"]);
    for status in ["200", "400", "401", "403"] {
        assert!(
            op["responses"].get(status).is_some(),
            "GET /api/audit lacks {status}"
        );
    }
    // What it documents is what it does: a member is refused, a bad filter is a 400.
    let member = app.api_key("acme", sealflow::store::Role::Member).await;
    assert_eq!(app.get("/api/audit", &member).await.0, 403);
    assert_eq!(app.get("/api/audit?since=soon", &app.admin_key).await.0, 400);
    assert_eq!(app.get("/api/audit", &app.admin_key).await.0, 200);
}
