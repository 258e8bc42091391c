//! Batch runs from files, as the official CLI drives them: `workflows upload` (multipart to
//! `/api/cli/workflows/files`), `workflows run --file` (`{"file_id"}`), `workflows status`,
//! `workflows download` (CSV).

mod common;

use std::time::{Duration, Instant};

use common::{assert_error_shape, sealflow_bin, split, ServerProcess, TestApp};
use serde_json::{json, Value};

async fn upload(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    name: &str,
    body: Vec<u8>,
    workflow_id: Option<&str>,
) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(body).file_name(name.to_owned()),
    );
    if let Some(wf) = workflow_id {
        form = form.text("workflow_id", wf.to_owned());
    }
    let res = client
        .post(format!("{base}/api/cli/workflows/files"))
        .bearer_auth(key)
        .header("User-Agent", "encrata-cli/0.11.2")
        .multipart(form)
        .send()
        .await
        .expect("upload");
    split(res).await
}

async fn wait_cli_run(client: &reqwest::Client, base: &str, key: &str, id: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let res = client
            .get(format!("{base}/api/cli/workflows/runs/{id}"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let (status, body) = split(res).await;
        assert_eq!(status, 200, "{body}");
        if matches!(
            body["run"]["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "the batch did not finish in {secs}s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Greets every row except carol's, whose row fails on a missing template path.
fn greeter() -> Value {
    json!({"name": "greeter", "steps": [
        {"id": "check", "type": "condition",
         "config": {"field": "{{input.name}}", "operator": "eq", "value": "carol", "else": "greet"}},
        {"id": "boom", "type": "transform", "config": {"output": {"x": "{{input.nope}}"}}},
        {"id": "greet", "type": "transform",
         "config": {"output": {"greeting": "hi {{input.name}}", "who": {"email": "{{input.email}}"}}}}
    ]})
}

#[tokio::test]
async fn a_three_row_csv_is_uploaded_run_once_per_row_and_downloaded_with_three_data_rows() {
    let app = TestApp::spawn().await;
    let wf = app.workflow(&app.admin_key, greeter()).await;
    let csv = "name,email\nalice,a@x.com\nbob,b@y.com\ncarol,c@z.com\n";
    let (status, file) = upload(
        &app.client,
        &app.base,
        &app.admin_key,
        "people.csv",
        csv.into(),
        Some(&wf),
    )
    .await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(file["filename"], "people.csv");
    assert_eq!(file["row_count"], 3);
    assert_eq!(file["identifier_type"], "email");
    assert_eq!(file["identifier_column"], "email");
    let file_id = file["id"].as_str().unwrap();

    let (status, run) = app
        .post(
            &format!("/api/cli/workflows/{wf}/run"),
            &app.admin_key,
            &json!({"file_id": file_id}),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    let run_id = run["id"].as_str().unwrap();
    let status_body = wait_cli_run(&app.client, &app.base, &app.admin_key, run_id, 20).await;
    assert_eq!(status_body["run"]["status"], "completed", "{status_body}");
    assert_eq!(status_body["run"]["output_rows"], 3);
    assert_eq!(status_body["run"]["steps_completed"], 3);

    let res = app
        .client
        .get(app.url(&format!("/api/cli/workflows/runs/{run_id}/download")))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        ["name", "email", "greeting", "who.email", "error"],
        "{text}"
    );
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert_eq!(rows[0], ["alice", "a@x.com", "hi alice", "a@x.com", ""]);
    assert_eq!(rows[1][2], "hi bob");
    assert_eq!(&rows[2][..2], ["carol", "c@z.com"]);
    assert!(
        rows[2][4].contains("boom") && rows[2][2].is_empty(),
        "carol's failure: {:?}",
        rows[2]
    );

    // The same under /api, and a run that had no file has nothing to download.
    let (status, flat) = app
        .get(&format!("/api/workflows/runs/{run_id}"), &app.admin_key)
        .await;
    assert_eq!((status, &flat["rows_done"]), (200, &json!(3)));
    let single = app
        .run_and_wait(&app.admin_key, &wf, json!({"name": "x"}), 10)
        .await;
    let (status, body) = app
        .get(
            &format!("/api/workflows/runs/{}/download", single["id"].as_str().unwrap()),
            &app.admin_key,
        )
        .await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_file_id_is_409() {
    let app = TestApp::spawn().await;
    let wf = app.workflow(&app.admin_key, greeter()).await;
    let mut ids = Vec::new();
    for name in ["a.csv", "b.csv"] {
        let (status, file) = upload(
            &app.client,
            &app.base,
            &app.admin_key,
            name,
            b"name\nann\n".to_vec(),
            None,
        )
        .await;
        assert_eq!(status, 201, "{file}");
        ids.push(file["id"].as_str().unwrap().to_owned());
    }
    let run = |file_id: &str| {
        app.client
            .post(app.url(&format!("/api/cli/workflows/{wf}/run")))
            .bearer_auth(&app.admin_key)
            .header("Idempotency-Key", "batch-1")
            .json(&json!({"file_id": file_id}))
            .send()
    };
    let (status, first) = split(run(&ids[0]).await.unwrap()).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = split(run(&ids[0]).await.unwrap()).await;
    assert_eq!((status, &again["id"]), (200, &first["id"]));
    let (status, body) = split(run(&ids[1]).await.unwrap()).await;
    assert_eq!(status, 409, "{body}");
    assert_error_shape(&body, "conflict");
}

#[tokio::test]
async fn txt_files_xlsx_files_and_bad_uploads_get_clear_answers() {
    let app = TestApp::spawn().await;
    let (status, file) = upload(
        &app.client,
        &app.base,
        &app.admin_key,
        "list.txt",
        b"a@x.com\nb, with comma@y.com\n\n".to_vec(),
        None,
    )
    .await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(
        (file["row_count"].as_i64(), file["identifier_type"].as_str()),
        (Some(2), Some("email"))
    );

    let (status, body) = upload(
        &app.client,
        &app.base,
        &app.admin_key,
        "sheet.xlsx",
        b"PK..".to_vec(),
        None,
    )
    .await;
    assert_eq!(status, 415, "{body}");
    assert_error_shape(&body, "unsupported_media_type");
    let (status, body) = upload(
        &app.client,
        &app.base,
        &app.admin_key,
        "empty.csv",
        b"email\n".to_vec(),
        None,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_error_shape(&body, "validation_failed");
    let (status, body) = upload(
        &app.client,
        &app.base,
        &app.admin_key,
        "x.csv",
        b"a,a\n1,2\n".to_vec(),
        None,
    )
    .await;
    assert_eq!(status, 422, "duplicate columns: {body}");
    let (status, body) = upload(
        &app.client,
        &app.base,
        &app.admin_key,
        "x.csv",
        b"a\n1\n".to_vec(),
        Some("wf_missing"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    // One byte over the 50 MiB cap: 413 with the error shape.
    let mut big = b"email\n".to_vec();
    big.resize(50 * 1024 * 1024 + 1, b'a');
    let (status, body) = upload(&app.client, &app.base, &app.admin_key, "big.csv", big, None).await;
    assert_eq!(status, 413, "{body}");
    assert!(assert_error_shape(&body, "payload_too_large").contains("larger than"));
    // A JSON body where multipart is expected.
    let (status, body) = app
        .post("/api/cli/workflows/files", &app.admin_key, &json!({}))
        .await;
    assert_eq!(status, 415, "{body}");

    // Files belong to their workspace.
    let other = app.api_key("globex", sealflow::store::Role::Admin).await;
    let wf = app.workflow(&other, greeter()).await;
    let (status, body) = app
        .post(
            &format!("/api/workflows/{wf}/run"),
            &other,
            &json!({"file_id": file["id"]}),
        )
        .await;
    assert_eq!(status, 404, "another workspace's file was run: {body}");
}

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn a_100k_row_file_is_uploaded_run_and_downloaded_with_bounded_server_memory() {
    const ROWS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let master_key = common::new_master_key();
    let out = sealflow_bin()
        .args([
            "apikey",
            "create",
            "--workspace",
            "acme",
            "--role",
            "admin",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("SEALFLOW_MASTER_KEY", &master_key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let server = ServerProcess::start(dir.path(), &[("SEALFLOW_MASTER_KEY", master_key.as_str())]).unwrap();
    let pid = server.pid();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (baseline, peak, lines) = rt.block_on(async {
        let client = reqwest::Client::new();
        let baseline = rss_kib(pid);
        let mut csv = String::from("email,name,company\n");
        for i in 0..ROWS {
            csv.push_str(&format!(
                "user{i}@example{}.com,User Number {i},Company {}\n",
                i % 97,
                i % 13
            ));
        }
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(baseline));
        let sampler = {
            let peak = peak.clone();
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let res = client
            .post(format!("{}/api/workflows", server.base))
            .bearer_auth(&key)
            .json(
                &json!({"name": "tag", "steps": [{"id": "tag", "type": "transform",
                   "config": {"output": {"tag": "{{input.name}} at {{input.company}}"}}}]}),
            )
            .send()
            .await
            .unwrap();
        let (_, wf) = split(res).await;
        let wf = wf["id"].as_str().unwrap().to_owned();
        let (status, file) = upload(
            &client,
            &server.base,
            &key,
            "big.csv",
            csv.into_bytes(),
            Some(&wf),
        )
        .await;
        assert_eq!(status, 201, "{file}");
        assert_eq!(file["row_count"], ROWS);
        let res = client
            .post(format!("{}/api/cli/workflows/{wf}/run", server.base))
            .bearer_auth(&key)
            .json(&json!({"file_id": file["id"]}))
            .send()
            .await
            .unwrap();
        let (status, run) = split(res).await;
        assert_eq!(status, 201, "{run}");
        let id = run["id"].as_str().unwrap();
        let done = wait_cli_run(&client, &server.base, &key, id, 240).await;
        assert_eq!(done["run"]["status"], "completed", "{done}");
        let mut res = client
            .get(format!("{}/api/workflows/runs/{id}/download", server.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let mut lines = 0usize;
        while let Some(chunk) = res.chunk().await.unwrap() {
            lines += chunk.iter().filter(|b| **b == b'\n').count();
        }
        sampler.abort();
        (baseline, peak.load(std::sync::atomic::Ordering::Relaxed), lines)
    });
    assert_eq!(lines, ROWS + 1, "header plus one line a row");
    let growth_mib = (peak.saturating_sub(baseline)) / 1024;
    eprintln!(
        "server RSS: baseline {} MiB, peak {} MiB, growth {growth_mib} MiB",
        baseline / 1024,
        peak / 1024
    );
    // The CSV is ~5 MiB and its rows as JSON values would be several times that; paged work
    // stays within a fixed budget whatever the file's length.
    assert!(
        growth_mib < 96,
        "server RSS grew by {growth_mib} MiB for a {ROWS}-row batch"
    );
    server.stop();
}
