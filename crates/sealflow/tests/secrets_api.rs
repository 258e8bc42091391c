//! The secrets API over real HTTP: round trip, replace semantics, the alias, allowed_hosts.

mod common;

use common::*;
use serde_json::json;

const SECRETS: &str = "/api/workflows/secrets";

#[tokio::test]
async fn secrets_round_trip_create_list_replace_delete() {
    let app = TestApp::spawn().await;
    let key = &app.admin_key;

    let (status, body) = app
        .post(SECRETS, key, &json!({"name": "CRM_API_KEY", "value": "v1-value"}))
        .await;
    assert_eq!(
        (status, body.clone()),
        (201, json!({"success": true, "name": "CRM_API_KEY"}))
    );
    app.post(SECRETS, key, &json!({"name": "A_FIRST", "value": "x-value"}))
        .await;

    let (status, list) = app.get(SECRETS, key).await;
    assert_eq!(status, 200);
    let items = list["secrets"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["name"], "A_FIRST", "sorted by name: {list}");
    let crm = &items[1];
    assert_eq!(crm["name"], "CRM_API_KEY");
    assert!(crm["created_at"].as_str().unwrap().ends_with('Z'));
    let keys: Vec<&str> = crm.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["created_at", "name", "updated_at"],
        "no value field: {crm}"
    );
    assert!(!list.to_string().contains("v1-value"));

    // Replace: 200, same body, created_at kept, updated_at moves forward.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = app
        .post(SECRETS, key, &json!({"name": "CRM_API_KEY", "value": "v2-value"}))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"success": true, "name": "CRM_API_KEY"}))
    );
    let (_, list2) = app.get(SECRETS, key).await;
    let crm2 = &list2["secrets"][1];
    assert_eq!(crm2["created_at"], crm["created_at"]);
    assert!(
        crm2["updated_at"].as_str().unwrap() > crm["updated_at"].as_str().unwrap(),
        "{crm2} vs {crm}"
    );

    // The replaced value is the one stored (read through the vault, as the engine will).
    let ws = app.store.find_workspace("acme").await.unwrap().unwrap();
    let row = app
        .store
        .get_secret(&ws.id, "CRM_API_KEY")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.version, 2);

    let (status, body) = app
        .delete(SECRETS, key, Some(&json!({"name": "CRM_API_KEY"})))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"success": true, "message": "Secret deleted"}))
    );
    assert_eq!(app.secret_names(key).await, ["A_FIRST"]);

    let (status, body) = app
        .delete(SECRETS, key, Some(&json!({"name": "CRM_API_KEY"})))
        .await;
    assert_eq!(status, 404);
    assert!(assert_error_shape(&body, "not_found").contains("CRM_API_KEY"));
}

#[tokio::test]
async fn delete_by_query_and_the_cli_alias_reach_the_same_secrets() {
    let app = TestApp::spawn().await;
    let key = &app.admin_key;
    let (status, _) = app
        .post(
            "/api/cli/workflows/secrets",
            key,
            &json!({"name": "VIA_ALIAS", "value": "x1-value"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(app.secret_names(key).await, ["VIA_ALIAS"]);
    let (status, _) = app
        .delete("/api/workflows/secrets?name=VIA_ALIAS", key, None)
        .await;
    assert_eq!(status, 200);
    let (status, list) = app.get("/api/cli/workflows/secrets", key).await;
    assert_eq!((status, list), (200, json!({"secrets": []})));
    let (status, body) = app.delete(SECRETS, key, None).await;
    assert_eq!(status, 400);
    assert!(assert_error_shape(&body, "invalid_request").contains("name is required"));
}

#[tokio::test]
async fn get_with_a_json_content_type_and_empty_body_is_accepted() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url(SECRETS))
        .bearer_auth(&app.admin_key)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

#[tokio::test]
async fn allowed_hosts_are_validated_stored_listed_kept_on_replace_and_cleared_by_null() {
    let app = TestApp::spawn().await;
    let key = &app.admin_key;
    let body = json!({"name": "SLACK", "value": "https://hooks/x", "allowed_hosts": ["Hooks.Slack.com", "*.example.com"]});
    assert_eq!(app.post(SECRETS, key, &body).await.0, 201);
    let (_, list) = app.get(SECRETS, key).await;
    assert_eq!(
        list["secrets"][0]["allowed_hosts"],
        json!(["*.example.com", "hooks.slack.com"])
    );

    // A replace that does not mention allowed_hosts keeps the restriction.
    assert_eq!(
        app.post(SECRETS, key, &json!({"name": "SLACK", "value": "rotated"}))
            .await
            .0,
        200
    );
    let (_, list) = app.get(SECRETS, key).await;
    assert_eq!(
        list["secrets"][0]["allowed_hosts"],
        json!(["*.example.com", "hooks.slack.com"])
    );

    for bad in [
        json!([]),
        json!(["https://x.com/path"]),
        json!("hooks.slack.com"),
        json!([""]),
    ] {
        let (status, body) = app
            .post(
                SECRETS,
                key,
                &json!({"name": "SLACK", "value": "value", "allowed_hosts": bad}),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            assert_error_shape(&body, "invalid_request").contains("allowed_hosts"),
            "{body}"
        );
    }

    assert_eq!(
        app.post(
            SECRETS,
            key,
            &json!({"name": "SLACK", "value": "value", "allowed_hosts": null})
        )
        .await
        .0,
        200
    );
    let (_, list) = app.get(SECRETS, key).await;
    assert!(list["secrets"][0].get("allowed_hosts").is_none(), "{list}");
}

#[tokio::test]
async fn concurrent_creates_of_one_name_make_one_secret_and_every_call_succeeds() {
    let app = TestApp::spawn().await;
    let calls = (0..10).map(|i| {
        let app = &app;
        async move {
            app.post(
                SECRETS,
                &app.admin_key,
                &json!({"name": "RACE", "value": format!("value-{i}")}),
            )
            .await
            .0
        }
    });
    let mut statuses = futures::future::join_all(calls).await;
    statuses.sort();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 201), "{statuses:?}");
    let ws = app.store.find_workspace("acme").await.unwrap().unwrap();
    assert_eq!(
        app.store
            .get_secret(&ws.id, "RACE")
            .await
            .unwrap()
            .unwrap()
            .version,
        10
    );
}
