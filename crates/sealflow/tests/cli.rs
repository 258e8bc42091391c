//! The command line: `apikey create`, `key generate`, `migrate`, and `--help` on every command.

mod common;

use common::*;
use serde_json::json;

fn run(args: &[&str], dir: &std::path::Path, master_key: &str) -> (bool, String, String) {
    let out = sealflow_bin()
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("SEALFLOW_MASTER_KEY", master_key)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn apikey_create_prints_a_working_key_alone_on_the_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let master_key = new_master_key();
    let (ok, out, err) = run(
        &[
            "apikey",
            "create",
            "--workspace",
            "acme",
            "--role",
            "member",
            "--name",
            "ci",
        ],
        dir.path(),
        &master_key,
    );
    assert!(ok, "{err}");
    let key = out.lines().last().unwrap();
    assert!(key.starts_with("sf_live_") && !key.contains(' '), "{out}");

    let server = ServerProcess::start(dir.path(), &[("SEALFLOW_MASTER_KEY", master_key.as_str())]).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/api/workflows/secrets", server.base))
            .bearer_auth(key)
            .json(&json!({"name": "FROM_CLI_KEY", "value": "value"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 201);
    server.stop();

    // A second key for the same slug lands in the same workspace.
    let (_, out2, _) = run(
        &["apikey", "create", "--workspace", "acme", "--role", "readonly"],
        dir.path(),
        &master_key,
    );
    let ws = |s: &str| s.lines().next().unwrap().split('(').nth(2).unwrap().to_owned();
    assert_eq!(ws(&out), ws(&out2));

    let (ok, _, err) = run(
        &["apikey", "create", "--workspace", "acme", "--role", "owner"],
        dir.path(),
        &master_key,
    );
    assert!(!ok && err.contains("owner"), "{err}");
}

#[test]
fn key_generate_prints_a_fresh_32_byte_base64_key() {
    let a = sealflow_bin().args(["key", "generate"]).output().unwrap();
    let b = sealflow_bin().args(["key", "generate"]).output().unwrap();
    let (a, b) = (
        String::from_utf8(a.stdout).unwrap(),
        String::from_utf8(b.stdout).unwrap(),
    );
    assert_ne!(a, b);
    assert!(sealflow::vault::MasterKey::from_base64(&a).is_ok(), "{a}");
}

#[test]
fn migrate_creates_the_database_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(&["migrate"], dir.path(), &new_master_key());
    assert!(ok, "{err}");
    assert!(out.contains("migrated"));
    assert!(dir.path().join("sealflow.db").exists());
}

#[test]
fn every_command_explains_every_option_in_help() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["--help"], &["serve", "migrate", "apikey", "key"]),
        (
            &["serve", "--help"],
            &[
                "--listen",
                "--database-url",
                "--master-key-file",
                "--data-dir",
                "--body-limit",
                "--jwt-public-key-file",
                "SEALFLOW_LISTEN",
                "SEALFLOW_DATABASE_URL",
            ],
        ),
        (
            &["migrate", "--help"],
            &["--database-url", "--master-key-file", "--data-dir"],
        ),
        (
            &["apikey", "create", "--help"],
            &["--workspace", "--role", "--name", "admin, member or readonly"],
        ),
        (&["key", "generate", "--help"], &["master key"]),
    ];
    for (args, needles) in cases {
        let out = sealflow_bin().args(*args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        for needle in *needles {
            assert!(text.contains(needle), "{args:?} help lacks {needle}:\n{text}");
        }
    }
}
