//! Several `sealflow serve` processes on one PostgreSQL database share the work safely: every run
//! executes once, a killed instance's runs are finished by the other, idempotency keys and rate
//! limits hold across instances, and an instance with another master key refuses to start.
//!
//! Needs `SEALFLOW_TEST_POSTGRES_URL` (set by `scripts/test`); without it these tests fail unless
//! `SEALFLOW_SKIP_POSTGRES=1` says to skip them on purpose.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::pg::PgDb;
use common::receiver::Receiver;
use common::*;
use serde_json::{json, Value};

struct Fleet {
    servers: Vec<ServerProcess>,
    key: String,
    master_key: String,
    dirs: Vec<tempfile::TempDir>,
}

fn start_fleet(db: &PgDb, n: usize, extra: &[(&str, &str)]) -> Fleet {
    let master_key = new_master_key();
    let mut dirs = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..n {
        let dir = tempfile::tempdir().unwrap();
        let mut envs = vec![
            ("SEALFLOW_DATABASE_URL", db.url.as_str()),
            ("SEALFLOW_MASTER_KEY", master_key.as_str()),
            ("SEALFLOW_EGRESS_ALLOW", "127.0.0.1/32"),
            ("SEALFLOW_LEASE_MS", "2000"),
        ];
        envs.extend_from_slice(extra);
        servers.push(ServerProcess::start(dir.path(), &envs).expect("instance starts"));
        dirs.push(dir);
    }
    let out = sealflow_bin()
        .args(["apikey", "create", "--workspace", "acme", "--role", "admin"])
        .env("SEALFLOW_DATABASE_URL", &db.url)
        .env("SEALFLOW_MASTER_KEY", &master_key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    Fleet {
        servers,
        key,
        master_key,
        dirs,
    }
}

async fn create_workflow(client: &reqwest::Client, base: &str, key: &str, url: &str) -> String {
    let res = client
        .post(format!("{base}/api/workflows"))
        .bearer_auth(key)
        .json(&json!({"name": "fleet", "steps": [{"id": "send", "type": "webhook", "config": {"url": url, "retries": 5}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Submits `n` runs round-robin over `bases`, 16 at a time; returns the run ids.
async fn submit(client: &reqwest::Client, bases: &[String], key: &str, wf: &str, n: usize) -> Vec<String> {
    use futures::StreamExt;
    futures::stream::iter(0..n)
        .map(|i| {
            let url = format!("{}/api/workflows/{wf}/run", bases[i % bases.len()]);
            async move {
                let res = client
                    .post(url)
                    .bearer_auth(key)
                    .json(&json!({"input": {"i": i}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status().as_u16(), 201);
                res.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// The `total` of `GET /api/workflows/runs?{query}`.
async fn total(client: &reqwest::Client, base: &str, key: &str, query: &str) -> i64 {
    let list: Value = client
        .get(format!("{base}/api/workflows/runs?limit=1&{query}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["total"]
        .as_i64()
        .unwrap_or_else(|| panic!("no total: {list}"))
}

/// Waits until every run in `ids` has finished; returns their statuses and errors.
async fn wait_all(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    ids: &[String],
    secs: u64,
) -> HashMap<String, Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut finished = HashMap::new();
    while finished.len() < ids.len() {
        assert!(
            Instant::now() < deadline,
            "only {}/{} runs finished in {secs}s",
            finished.len(),
            ids.len()
        );
        for id in ids
            .iter()
            .filter(|id| !finished.contains_key(*id))
            .take(200)
            .cloned()
            .collect::<Vec<_>>()
        {
            let run: Value = client
                .get(format!("{base}/api/workflows/runs/{id}"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if matches!(run["status"].as_str(), Some("completed" | "failed" | "cancelled")) {
                finished.insert(id, run);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    finished
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_run_every_run_exactly_once_and_finish_a_killed_instances_runs() {
    let Some(db) = PgDb::create().await else { return };
    let fleet = start_fleet(&db, 2, &[("SEALFLOW_RUN_RATE_LIMIT", "100000")]);
    let bases: Vec<String> = fleet.servers.iter().map(|s| s.base.clone()).collect();
    let client = reqwest::Client::new();
    let rx = Receiver::start().await;
    let wf = create_workflow(&client, &bases[0], &fleet.key, &format!("{}/ok", rx.base)).await;

    let ids = submit(&client, &bases, &fleet.key, &wf, 500).await;
    let runs = wait_all(&client, &bases[1], &fleet.key, &ids, 120).await;
    assert!(
        runs.values().all(|r| r["status"] == "completed"),
        "a run did not complete"
    );
    let deliveries: Vec<String> = rx.seen().iter().map(|r| r.delivery_id()).collect();
    let distinct: HashSet<&String> = deliveries.iter().collect();
    assert_eq!(
        (deliveries.len(), distinct.len()),
        (500, 500),
        "a run was executed twice or not at all"
    );
    // Both instances ended runs, each counting them in its own counter shard: every instance's
    // list totals them exactly.
    for base in &bases {
        for query in [
            format!("workflow_id={wf}"),
            format!("workflow_id={wf}&status=completed"),
        ] {
            assert_eq!(
                total(&client, base, &fleet.key, &query).await,
                500,
                "{base} {query}"
            );
        }
    }

    // Second batch against a slow receiver; kill one instance in the middle.
    let slow = Receiver::start().await;
    let wf2 = create_workflow(&client, &bases[0], &fleet.key, &format!("{}/slow/40", slow.base)).await;
    let ids2 = submit(&client, &bases, &fleet.key, &wf2, 200).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while slow.count() < 40 {
        assert!(Instant::now() < deadline, "the second batch did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut servers = fleet.servers;
    let survivor = servers.pop().unwrap();
    servers.pop().unwrap().kill();
    let runs = wait_all(&client, &survivor.base, &fleet.key, &ids2, 120).await;
    for (id, run) in &runs {
        assert!(
            run["status"] == "completed"
                || (run["status"] == "failed" && run["error"].as_str().is_some_and(|e| !e.is_empty())),
            "{id}: {run}"
        );
    }
    for status in ["completed", "failed"] {
        let ended = runs.values().filter(|r| r["status"] == status).count() as i64;
        let query = format!("workflow_id={wf2}&status={status}");
        assert_eq!(
            total(&client, &survivor.base, &fleet.key, &query).await,
            ended,
            "{query}"
        );
    }
    let seen: HashSet<String> = slow.seen().iter().map(|r| r.delivery_id()).collect();
    for id in &ids2 {
        assert!(seen.contains(&format!("{id}-send")), "{id} was never delivered");
    }
    println!(
        "multi-instance crash: {} runs, {} deliveries, {} duplicates after kill -9",
        ids2.len(),
        slow.count(),
        slow.count() - seen.len()
    );
    survivor.stop();
    drop(fleet.dirs);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_and_rate_limits_hold_across_instances() {
    let Some(db) = PgDb::create().await else { return };
    let fleet = start_fleet(&db, 2, &[("SEALFLOW_RUN_RATE_LIMIT", "30")]);
    let bases: Vec<String> = fleet.servers.iter().map(|s| s.base.clone()).collect();
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{}/api/workflows", bases[0]))
        .bearer_auth(&fleet.key)
        .json(&json!({"name": "idem"}))
        .send()
        .await
        .unwrap();
    let wf = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let calls = (0..20).map(|i| {
        client
            .post(format!("{}/api/workflows/{wf}/run", bases[i % 2]))
            .bearer_auth(&fleet.key)
            .header("idempotency-key", "fleet-key")
            .json(&json!({"input": {"same": true}}))
            .send()
    });
    let mut created = 0;
    let mut ids = HashSet::new();
    for res in futures::future::join_all(calls).await {
        let res = res.unwrap();
        let status = res.status().as_u16();
        assert!(status == 201 || status == 200, "{status}");
        created += usize::from(status == 201);
        ids.insert(
            res.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        (created, ids.len()),
        (1, 1),
        "one key made more than one run across instances"
    );

    // 20 calls above counted against the limit of 30; 20 more split over both: 10 pass, 10 are 429.
    let calls = (0..20).map(|i| {
        client
            .post(format!("{}/api/workflows/{wf}/run", bases[i % 2]))
            .bearer_auth(&fleet.key)
            .json(&json!({}))
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((statuses.len() - limited, limited), (10, 10), "{statuses:?}");

    // A third instance with another master key refuses to start.
    let dir = tempfile::tempdir().unwrap();
    let wrong = new_master_key();
    let err = ServerProcess::start(
        dir.path(),
        &[
            ("SEALFLOW_DATABASE_URL", db.url.as_str()),
            ("SEALFLOW_MASTER_KEY", wrong.as_str()),
        ],
    )
    .err()
    .expect("a wrong key must not start");
    assert!(err.contains("does not match this database"), "{err}");
    assert!(!err.contains(&fleet.master_key));
    for s in fleet.servers {
        s.stop();
    }
    db.drop_db().await;
}
