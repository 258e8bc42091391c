//! Wire compatibility: the official `encrata` Python client (pinned) drives the secrets API.
//!
//! The client is installed into a virtualenv under the target directory on first use (PyPI is
//! reachable here and in CI); a failure to install fails the test rather than skipping it.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

const ENCRATA_VERSION: &str = "0.5.1";

fn venv_python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("encrata-{ENCRATA_VERSION}-venv"));
    let python = venv.join("bin/python");
    let ready = venv.join(".installed");
    if !ready.exists() {
        let ok = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 -m venv failed");
        let ok = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("encrata=={ENCRATA_VERSION}"))
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip install encrata=={ENCRATA_VERSION} failed");
        std::fs::write(&ready, "").unwrap();
    }
    python
}

/// Runs one script of `tests/compat/` against the app; fails with its output unless it passes.
async fn run_client_script(app: &TestApp, script: &str) {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let script = format!("{}/tests/compat/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(python)
        .arg(script)
        .env("SEALFLOW_URL", &app.base)
        .env("SEALFLOW_KEY", &app.admin_key)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client script failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all client checks passed"), "{stdout}");
}

// Both client tests share one virtualenv; a lock keeps them from installing it twice at once.
static VENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn the_official_python_client_lists_creates_and_deletes_secrets() {
    let _guard = VENV.lock().await;
    let app = TestApp::spawn().await;
    run_client_script(&app, "secrets_client.py").await;
    // What the client did is visible through the server too.
    assert_eq!(app.secret_names(&app.admin_key).await, ["KEPT_BY_CLIENT"]);
}

#[tokio::test]
async fn the_official_python_client_drives_workflows_and_templates() {
    let _guard = VENV.lock().await;
    let app = TestApp::spawn().await;
    run_client_script(&app, "workflows_client.py").await;
    let (_, list) = app.get("/api/workflows", &app.admin_key).await;
    assert_eq!(list["total"], 3, "{list}");
}
