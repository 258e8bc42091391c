//! The workflows API over real HTTP: CRUD, partial updates, versions, paging, isolation, roles,
//! webhook URLs and templates.

mod common;

use common::*;
use sealflow::store::Role;
use serde_json::{json, Value};

const WF: &str = "/api/workflows";

fn webhook_step(id: &str) -> Value {
    json!({"id": id, "type": "webhook", "config": {"url": "https://api.example.com/hook", "body": {"x": "{{input.x}}"}}})
}

async fn create(app: &TestApp, key: &str, body: Value) -> Value {
    let (status, wf) = app.post(WF, key, &body).await;
    assert_eq!(status, 201, "{wf}");
    wf
}

async fn put(app: &TestApp, path: &str, key: &str, body: &Value) -> (u16, Value) {
    let res = app
        .client
        .put(app.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    split(res).await
}

#[tokio::test]
async fn workflow_round_trip_with_partial_updates_and_versions() {
    let app = TestApp::spawn().await;
    let key = &app.admin_key;
    let wf = create(
        &app,
        key,
        json!({"name": "Notify", "steps": [webhook_step("notify")]}),
    )
    .await;
    let id = wf["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wf_"));
    assert_eq!(wf["status"], "draft");
    assert_eq!(wf["trigger"], json!({"type": "manual", "config": {}}));
    assert_eq!(wf["version"], 1);
    assert_eq!(wf["description"], "");
    assert_eq!(wf["template_id"], Value::Null);
    assert_eq!(wf["webhook_url"], Value::Null);
    assert_eq!(wf["steps"], json!([webhook_step("notify")]));
    assert!(wf["created_at"].as_str().unwrap().ends_with('Z'));

    let (status, got) = app.get(&format!("{WF}/{id}"), key).await;
    assert_eq!((status, &got), (200, &wf));

    // A PUT with only `status` keeps everything else and bumps the version.
    let (status, updated) = put(&app, &format!("{WF}/{id}"), key, &json!({"status": "active"})).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["status"], "active");
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["steps"], wf["steps"]);
    assert_eq!(updated["name"], "Notify");

    let (_, updated) = put(
        &app,
        &format!("{WF}/{id}"),
        key,
        &json!({"name": "Renamed", "steps": []}),
    )
    .await;
    assert_eq!(
        (updated["version"].clone(), updated["steps"].clone()),
        (json!(3), json!([]))
    );
    assert_eq!(updated["status"], "active");

    let (status, versions) = app.get(&format!("{WF}/{id}/versions"), key).await;
    assert_eq!(status, 200);
    let versions = versions["versions"].as_array().unwrap().clone();
    assert_eq!(
        versions
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(versions[0]["status"], "draft");
    assert_eq!(versions[0]["steps"], json!([webhook_step("notify")]));
    assert_eq!(versions[2]["name"], "Renamed");

    let (status, body) = app.delete(&format!("{WF}/{id}"), key, None).await;
    assert_eq!(
        (status, body),
        (200, json!({"success": true, "message": "Workflow deleted"}))
    );
    for path in [format!("{WF}/{id}"), format!("{WF}/{id}/versions")] {
        let (status, body) = app.get(&path, key).await;
        assert_eq!(status, 404, "{path}");
        assert_error_shape(&body, "not_found");
    }
    assert_eq!(app.delete(&format!("{WF}/{id}"), key, None).await.0, 404);
    let (status, body) = put(&app, &format!("{WF}/{id}"), key, &json!({"name": "x"})).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn lists_are_newest_first_with_paging_clamps_offset_and_status_filter() {
    let app = TestApp::spawn().await;
    let key = &app.admin_key;
    let mut ids = Vec::new();
    for i in 0..5 {
        let wf = create(&app, key, json!({"name": format!("wf{i}")})).await;
        ids.push(wf["id"].as_str().unwrap().to_owned());
    }
    ids.reverse(); // newest first
    put(
        &app,
        &format!("{WF}/{}", ids[0]),
        key,
        &json!({"status": "paused"}),
    )
    .await;

    let list_ids = |v: &Value| -> Vec<String> {
        v["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, all) = app.get(WF, key).await;
    assert_eq!(list_ids(&all), ids);
    assert_eq!(
        (all["total"].clone(), all["page"].clone(), all["limit"].clone()),
        (json!(5), json!(1), json!(20))
    );

    let (_, p2) = app.get(&format!("{WF}?page=2&limit=2"), key).await;
    assert_eq!(list_ids(&p2), ids[2..4]);
    let (_, off) = app.get(&format!("{WF}?offset=1&limit=2&page=9"), key).await;
    assert_eq!(list_ids(&off), ids[1..3], "offset wins over page");
    let (_, past) = app.get(&format!("{WF}?page=9&limit=2"), key).await;
    assert_eq!((list_ids(&past).len(), past["total"].clone()), (0, json!(5)));
    assert_eq!(past["workflows"], json!([]), "an empty page is [], never null");
    let (_, zero) = app.get(&format!("{WF}?limit=0"), key).await;
    assert_eq!((zero["limit"].clone(), list_ids(&zero).len()), (json!(1), 1));
    let (_, big) = app.get(&format!("{WF}?limit=1000"), key).await;
    assert_eq!(big["limit"], 100);

    let (_, paused) = app.get(&format!("{WF}?status=paused"), key).await;
    assert_eq!(
        (list_ids(&paused), paused["total"].clone()),
        (vec![ids[0].clone()], json!(1))
    );
    let (_, drafts) = app.get(&format!("{WF}?status=draft"), key).await;
    assert_eq!(drafts["total"], 4);
    let (status, body) = app.get(&format!("{WF}?status=deleted"), key).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app.get(&format!("{WF}?limit=abc"), key).await;
    assert_eq!(status, 400, "{body}");
    assert_error_shape(&body, "invalid_request");
}

#[tokio::test]
async fn other_workspaces_see_nothing_and_readonly_may_only_read() {
    let app = TestApp::spawn().await;
    let a = &app.admin_key;
    let wf = create(&app, a, json!({"name": "A's"})).await;
    let id = wf["id"].as_str().unwrap();
    let b = app.api_key("beta", Role::Admin).await;

    let (_, list) = app.get(WF, &b).await;
    assert_eq!(
        (list["workflows"].clone(), list["total"].clone()),
        (json!([]), json!(0))
    );
    assert_eq!(app.get(&format!("{WF}/{id}"), &b).await.0, 404);
    assert_eq!(app.get(&format!("{WF}/{id}/versions"), &b).await.0, 404);
    assert_eq!(
        put(&app, &format!("{WF}/{id}"), &b, &json!({"name": "stolen"}))
            .await
            .0,
        404
    );
    assert_eq!(app.delete(&format!("{WF}/{id}"), &b, None).await.0, 404);

    let ro = app.api_key("acme", Role::Readonly).await;
    assert_eq!(app.get(WF, &ro).await.0, 200);
    assert_eq!(app.get(&format!("{WF}/{id}"), &ro).await.0, 200);
    assert_eq!(app.get(&format!("{WF}/{id}/versions"), &ro).await.0, 200);
    assert_eq!(app.get("/api/workflows/templates", &ro).await.0, 200);
    let (status, body) = app.post(WF, &ro, &json!({"name": "x"})).await;
    assert_eq!(status, 403);
    assert_error_shape(&body, "forbidden");
    assert_eq!(
        put(&app, &format!("{WF}/{id}"), &ro, &json!({"name": "x"}))
            .await
            .0,
        403
    );
    assert_eq!(app.delete(&format!("{WF}/{id}"), &ro, None).await.0, 403);
    assert_eq!(app.post(WF, "sf_live_nope", &json!({"name": "x"})).await.0, 401);

    let (_, still) = app.get(&format!("{WF}/{id}"), a).await;
    assert_eq!(
        (still["name"].clone(), still["version"].clone()),
        (json!("A's"), json!(1))
    );
}

#[tokio::test]
async fn webhook_triggered_workflows_get_a_stable_url_and_lose_it_when_the_trigger_changes() {
    let app = TestApp::spawn_with(|c| c.public_url = Some("https://flows.example.com".into())).await;
    let key = &app.admin_key;
    let wf = create(&app, key, json!({"name": "Hook", "trigger": {"type": "webhook"}})).await;
    let url = wf["webhook_url"].as_str().unwrap().to_owned();
    let token = url
        .strip_prefix("https://flows.example.com/api/hooks/")
        .expect(&url);
    assert!(
        token.len() >= 32 && token.chars().all(|c| c.is_ascii_alphanumeric()),
        "{token}"
    );
    let other = create(
        &app,
        key,
        json!({"name": "Hook2", "trigger": {"type": "webhook"}}),
    )
    .await;
    assert_ne!(other["webhook_url"], wf["webhook_url"]);

    let path = format!("{WF}/{}", wf["id"].as_str().unwrap());
    let (_, renamed) = put(&app, &path, key, &json!({"name": "Hook renamed"})).await;
    assert_eq!(renamed["webhook_url"], url.as_str());
    let (_, manual) = put(&app, &path, key, &json!({"trigger": {"type": "manual"}})).await;
    assert_eq!(manual["webhook_url"], Value::Null);
}

#[tokio::test]
async fn templates_are_listed_filtered_and_instantiated_with_overrides() {
    let app = TestApp::spawn().await;
    let key = &app.admin_key;
    let (status, body) = app.get("/api/workflows/templates", key).await;
    assert_eq!(status, 200);
    let templates = body["templates"].as_array().unwrap().clone();
    assert!(templates.len() >= 4, "{body}");
    for t in &templates {
        for field in ["id", "name", "description", "category", "trigger", "steps"] {
            assert!(t.get(field).is_some(), "template lacks {field}: {t}");
        }
        // Every built-in template creates a valid workflow as it stands.
        let wf = create(&app, key, json!({"template_id": t["id"]})).await;
        assert_eq!(
            (wf["name"].clone(), wf["steps"].clone()),
            (t["name"].clone(), t["steps"].clone())
        );
        assert_eq!(wf["template_id"], t["id"]);
    }
    let category = templates[0]["category"].as_str().unwrap();
    let (_, filtered) = app
        .get(&format!("/api/workflows/templates?category={category}"), key)
        .await;
    let filtered = filtered["templates"].as_array().unwrap();
    assert!(!filtered.is_empty() && filtered.iter().all(|t| t["category"] == category));
    let (_, none) = app
        .get("/api/workflows/templates?category=no-such-category", key)
        .await;
    assert_eq!(none, json!({"templates": []}));

    let wf = create(
        &app,
        key,
        json!({"template_id": templates[0]["id"], "name": "Mine", "description": "d"}),
    )
    .await;
    assert_eq!(
        (wf["name"].clone(), wf["description"].clone()),
        (json!("Mine"), json!("d"))
    );
    assert_eq!(wf["steps"], templates[0]["steps"]);

    let (status, body) = app.post(WF, key, &json!({"template_id": "tpl_nope"})).await;
    assert_eq!(status, 422, "{body}");
    assert!(assert_error_shape(&body, "validation_failed").contains("tpl_nope"));
}

#[tokio::test]
async fn the_cli_alias_serves_the_same_workflows() {
    let app = TestApp::spawn().await;
    let (status, wf) = app
        .post(
            "/api/cli/workflows",
            &app.admin_key,
            &json!({"name": "via alias"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, got) = app
        .get(
            &format!("/api/workflows/{}", wf["id"].as_str().unwrap()),
            &app.admin_key,
        )
        .await;
    assert_eq!((status, got["name"].clone()), (200, json!("via alias")));
    let (_, list) = app.get("/api/cli/workflows", &app.admin_key).await;
    assert_eq!(list["total"], 1);
}
