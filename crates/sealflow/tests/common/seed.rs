//! Putting state in place for a test: secrets through the API, and workflows written straight
//! into the store (as a definition saved before a validation rule existed would be).

use serde_json::{json, Value};

use super::TestApp;
use sealflow::store::WorkflowRecord;

/// Stores a new secret through the API.
pub async fn store_secret(app: &TestApp, name: &str, value: &str) {
    let body = json!({"name": name, "value": value});
    let (status, res) = app.post("/api/workflows/secrets", &app.admin_key, &body).await;
    assert_eq!(status, 201, "{res}");
}

/// Issues an admin key of workspace `acme` straight into the SQLite database under `data_dir`
/// (of a server process that has created it), as `sealflow apikey create` would.
pub async fn admin_key_in(data_dir: &std::path::Path) -> String {
    use secrecy::ExposeSecret;
    let url = format!("sqlite://{}", data_dir.join("sealflow.db").display());
    let store = sealflow::store::open(&url)
        .await
        .expect("open the server's database");
    let ws = store.ensure_workspace("acme").await.expect("workspace");
    let issued = sealflow::auth::issue_api_key(&ws.id, "test", sealflow::store::Role::Admin);
    store
        .insert_api_key(&issued.record, "test")
        .await
        .expect("insert key");
    issued.key.expose_secret().to_owned()
}

/// Writes an active, manually triggered workflow of workspace `acme` with these `steps` into the
/// store without validating them; returns its id.
pub async fn insert_unvalidated_workflow(app: &TestApp, steps: Value) -> String {
    let ws = app.store.ensure_workspace("acme").await.expect("workspace");
    let now = sealflow::ids::now_ms();
    let wf = WorkflowRecord {
        id: sealflow::ids::new_id("wf"),
        workspace_id: ws.id,
        name: "saved before the rule".into(),
        description: String::new(),
        status: "active".into(),
        trigger: json!({"type": "manual", "config": {}}),
        steps,
        template_id: None,
        version: 1,
        webhook_token: None,
        created_at: now,
        updated_at: now,
    };
    app.store.insert_workflow(&wf).await.expect("insert workflow");
    wf.id
}
