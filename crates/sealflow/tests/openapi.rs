//! The OpenAPI document is generated from the code and covers every route the server serves.

mod common;

use common::*;

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
            if path.starts_with("/api/") && *path != "/api/openapi.json" && !path.starts_with("/api/hooks/") {
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
