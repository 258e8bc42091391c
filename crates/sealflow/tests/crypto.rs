//! Encryption at rest, checked against the real SQLite file: tampering and row swaps fail to
//! decrypt, and a wrong master key stops `serve` before it listens.

mod common;

use common::*;
use sealflow::domain::secrets::{SecretLimits, SecretsError, SecretsService};
use sealflow::vault::{MasterKey, Vault, VaultError};
use secrecy::ExposeSecret;
use serde_json::json;
use sqlx::sqlite::SqlitePoolOptions;
use std::sync::Arc;

const SECRETS: &str = "/api/workflows/secrets";

async fn service(app: &TestApp) -> SecretsService {
    let vault = Vault::new(MasterKey::from_base64(&app.master_key).unwrap());
    SecretsService::new(app.store.clone(), Arc::new(vault), SecretLimits::default())
}

#[tokio::test]
async fn tampered_or_moved_ciphertexts_fail_to_decrypt_instead_of_returning_garbage() {
    let app = TestApp::spawn().await;
    let b = app.api_key("beta", sealflow::store::Role::Admin).await;
    for (key, name, value) in [
        (&app.admin_key, "FIRST", "first-value"),
        (&app.admin_key, "SECOND", "second-value"),
        (&b, "FIRST", "beta-first-value"),
    ] {
        assert_eq!(
            app.post(SECRETS, key, &json!({"name": name, "value": value}))
                .await
                .0,
            201
        );
    }
    let ws_a = app.store.find_workspace("acme").await.unwrap().unwrap().id;
    let ws_b = app.store.find_workspace("beta").await.unwrap().unwrap().id;
    let secrets = service(&app).await;
    assert_eq!(
        secrets.reveal(&ws_a, "FIRST").await.unwrap().expose_secret(),
        "first-value"
    );
    assert_eq!(
        secrets.reveal(&ws_b, "FIRST").await.unwrap().expose_secret(),
        "beta-first-value"
    );

    let pool = SqlitePoolOptions::new()
        .connect(&format!("sqlite://{}", app.db_path().display()))
        .await
        .unwrap();
    let decrypt_fails =
        |r: Result<_, SecretsError>| matches!(r, Err(SecretsError::Vault(VaultError::Decrypt)));

    // 1. One flipped bit in the stored ciphertext.
    let (ct,): (Vec<u8>,) =
        sqlx::query_as("SELECT ciphertext FROM secrets WHERE workspace_id = $1 AND name = 'SECOND'")
            .bind(&ws_a)
            .fetch_one(&pool)
            .await
            .unwrap();
    let mut flipped = ct.clone();
    let last = flipped.len() - 20;
    flipped[last] ^= 0x04;
    sqlx::query("UPDATE secrets SET ciphertext = $1 WHERE workspace_id = $2 AND name = 'SECOND'")
        .bind(&flipped)
        .bind(&ws_a)
        .execute(&pool)
        .await
        .unwrap();
    assert!(decrypt_fails(secrets.reveal(&ws_a, "SECOND").await));

    // 2. A's FIRST row copied onto A's SECOND row (same workspace, other name).
    copy_sealed(&pool, (&ws_a, "FIRST"), (&ws_a, "SECOND")).await;
    assert!(decrypt_fails(secrets.reveal(&ws_a, "SECOND").await));

    // 3. A's FIRST row copied onto B's FIRST row (same name, other workspace).
    copy_sealed(&pool, (&ws_a, "FIRST"), (&ws_b, "FIRST")).await;
    assert!(decrypt_fails(secrets.reveal(&ws_b, "FIRST").await));

    // The untouched source still opens.
    assert_eq!(
        secrets.reveal(&ws_a, "FIRST").await.unwrap().expose_secret(),
        "first-value"
    );
}

async fn copy_sealed(pool: &sqlx::SqlitePool, from: (&str, &str), to: (&str, &str)) {
    sqlx::query(
        "UPDATE secrets SET (kek_id, wrapped_dek, ciphertext) = \
         (SELECT kek_id, wrapped_dek, ciphertext FROM secrets WHERE workspace_id = $1 AND name = $2) \
         WHERE workspace_id = $3 AND name = $4",
    )
    .bind(from.0)
    .bind(from.1)
    .bind(to.0)
    .bind(to.1)
    .execute(pool)
    .await
    .unwrap();
}

#[test]
fn serve_refuses_a_wrong_master_key_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let right = new_master_key();
    let server = ServerProcess::start(dir.path(), &[("SEALFLOW_MASTER_KEY", right.as_str())]).unwrap();
    server.stop();

    let wrong = new_master_key();
    let err = ServerProcess::start(dir.path(), &[("SEALFLOW_MASTER_KEY", wrong.as_str())])
        .err()
        .expect("a wrong key must not start");
    assert!(err.contains("does not match this database"), "{err}");
    assert!(!err.contains("listening"), "{err}");
    assert!(
        !err.contains(&wrong) && !err.contains(&right),
        "a key was printed:\n{err}"
    );

    // With no key at all, the default key file is missing but the database is not new.
    let err = ServerProcess::start(dir.path(), &[])
        .err()
        .expect("must not generate a new key");
    assert!(
        err.contains("does not exist, but this database holds data"),
        "{err}"
    );
    assert!(!dir.path().join("master.key").exists());

    // The right key still works.
    ServerProcess::start(dir.path(), &[("SEALFLOW_MASTER_KEY", right.as_str())])
        .unwrap()
        .stop();
}

#[test]
fn with_nothing_configured_serve_generates_a_private_key_file_and_warns_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]).unwrap();
    let log = server.stop();
    let key_file = dir.path().join("master.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(log.matches("generated a new master key").count(), 1, "{log}");
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    assert!(MasterKey::from_base64(&key_text).is_ok());
    assert!(!log.contains(key_text.trim()));
    // A second start reuses the file without a new warning.
    let log = ServerProcess::start(dir.path(), &[]).unwrap().stop();
    assert!(!log.contains("generated a new master key"), "{log}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key_text);
}
