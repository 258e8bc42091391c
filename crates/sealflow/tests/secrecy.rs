//! A stored value never leaves: not in a response body or header, not in the server's log (at
//! debug level), not in the raw bytes of the SQLite files (main, WAL, SHM).

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::json;

#[test]
fn a_secret_value_reaches_no_response_no_log_line_and_no_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let master_key = new_master_key();
    let server = ServerProcess::start(
        dir.path(),
        &[
            ("SEALFLOW_MASTER_KEY", master_key.as_str()),
            ("SEALFLOW_LOG", "debug"),
        ],
    )
    .expect("server starts");
    let key = admin_key(dir.path(), &master_key);
    let value = random_secret_value();
    let replaced = random_secret_value();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut seen = Vec::new();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("{}/api/workflows/secrets", server.base);
        let calls = vec![
            client
                .post(&url)
                .bearer_auth(&key)
                .json(&json!({"name": "LEAK_CHECK", "value": value})),
            client
                .post(&url)
                .bearer_auth(&key)
                .json(&json!({"name": "LEAK_CHECK", "value": replaced})),
            client
                .post(&url)
                .bearer_auth(&key)
                .json(&json!({"name": "OTHER", "value": value})),
            client.get(&url).bearer_auth(&key),
            // Failing calls that carry the value: wrong type, bad name, malformed JSON.
            client
                .post(&url)
                .bearer_auth(&key)
                .json(&json!({"name": "BAD-NAME", "value": value})),
            client
                .post(&url)
                .bearer_auth(&key)
                .json(&json!({"name": "X", "value": [value]})),
            client
                .post(&url)
                .bearer_auth(&key)
                .json(&json!({"name": "X", "value": value, "allowed_hosts": value})),
            client
                .post(&url)
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(format!(r#"{{"name": "X", "value": "{value}"#)),
            client
                .delete(&url)
                .bearer_auth(&key)
                .json(&json!({"name": "OTHER"})),
        ];
        for call in calls {
            let res = call.send().await.unwrap();
            let status = res.status().as_u16();
            let headers: HashMap<String, String> = res
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                .collect();
            let body = res.text().await.unwrap();
            seen.push((status, format!("{headers:?}"), body));
        }
    });
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        [201, 200, 201, 200, 400, 400, 400, 400, 200]
    );

    let log = server.stop();
    assert!(
        log.contains("secret stored"),
        "the log was captured at all:\n{log}"
    );
    for secret in [&value, &replaced] {
        for (status, headers, body) in &seen {
            assert!(!body.contains(secret.as_str()), "{status} body leaks: {body}");
            assert!(!headers.contains(secret.as_str()), "{status} headers leak");
        }
        assert!(!log.contains(secret.as_str()), "the log leaks the value");
        assert!(!log.contains(&b64(secret)), "the log leaks the value in base64");
        let hits = dir_contains(dir.path(), secret.as_bytes());
        assert!(hits.is_empty(), "raw value found in {hits:?}");
    }
    assert!(!log.contains(&master_key), "the log leaks the master key");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(files.iter().any(|f| f == "sealflow.db"), "{files:?}");
}
