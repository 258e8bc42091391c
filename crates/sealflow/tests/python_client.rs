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

#[tokio::test]
async fn the_official_python_client_lists_creates_and_deletes_secrets() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let app = TestApp::spawn().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/secrets_client.py");
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
    // What the client did is visible through the server too.
    assert_eq!(app.secret_names(&app.admin_key).await, ["KEPT_BY_CLIENT"]);
}
