//! `sealflow-loadgen`: a bounded, loopback-only load harness for the run engine.
//!
//! It starts a local receiver (200 `{}` on any path, counting requests), a fresh `sealflow serve`
//! over a temporary data dir, creates one workflow with one webhook step to the receiver, fires
//! `--runs` run requests from `--concurrency` concurrent clients, waits until every accepted run
//! has finished (at most 300 s), prints throughput and submit latency, and stops the server with
//! SIGTERM. Figures from a shared machine are only comparable within one invocation.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use serde_json::{json, Value};

const MAX_RUNS: usize = 100_000;
const MAX_CONCURRENCY: usize = 512;
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(300);
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Parser)]
#[command(
    name = "sealflow-loadgen",
    about = "Fire runs at a local sealflow server and report throughput"
)]
struct Args {
    /// The sealflow binary to start.
    #[arg(long, default_value = "target/release/sealflow")]
    server_bin: PathBuf,
    /// Runs to submit (at most 100000).
    #[arg(long, default_value_t = 2000)]
    runs: usize,
    /// Concurrent submitting clients (at most 512).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Engine workers of the server (SEALFLOW_WORKERS); the server's default when omitted.
    #[arg(long)]
    workers: Option<usize>,
    /// Database of the servers (SEALFLOW_DATABASE_URL), e.g. an empty PostgreSQL database;
    /// a fresh SQLite file in a temp dir when omitted.
    #[arg(long)]
    database_url: Option<String>,
    /// Server instances sharing the database; run requests go to them round-robin. More than one
    /// needs --database-url (SQLite files are not shared between processes here).
    #[arg(long, default_value_t = 1)]
    instances: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        (1..=MAX_RUNS).contains(&args.runs),
        "--runs must be 1..={MAX_RUNS}"
    );
    ensure!(
        (1..=MAX_CONCURRENCY).contains(&args.concurrency),
        "--concurrency must be 1..={MAX_CONCURRENCY}"
    );
    ensure!(args.workers != Some(0), "--workers must be at least 1");
    ensure!((1..=8).contains(&args.instances), "--instances must be 1..=8");
    ensure!(
        args.instances == 1 || args.database_url.is_some(),
        "several --instances need a shared --database-url"
    );
    ensure!(
        args.server_bin.is_file(),
        "--server-bin {} is not a file",
        args.server_bin.display()
    );

    let (receiver_base, received) = start_receiver().await?;
    let data = TempDir::new()?;
    let master_key = sealflow_output(&args.server_bin, &["key", "generate"], None, None)?;
    let api_key = {
        let mut cmd_args = vec![
            "apikey",
            "create",
            "--workspace",
            "load",
            "--role",
            "admin",
            "--data-dir",
        ];
        let dir = data.path().to_str().context("temp dir path is not UTF-8")?;
        cmd_args.push(dir);
        sealflow_output(
            &args.server_bin,
            &cmd_args,
            Some(&master_key),
            args.database_url.as_deref(),
        )?
    };
    let mut servers = Vec::new();
    for _ in 0..args.instances {
        servers.push(Server::start(&args.server_bin, data.path(), &master_key, &args)?);
    }
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let result = drive(&args, &bases, &api_key, &receiver_base, &received).await;
    let stopped: Result<Vec<()>> = servers.into_iter().map(Server::stop).collect();
    drop(data);
    let report = result?;
    stopped?;
    println!("{report}");
    Ok(())
}

/// Submits the runs, waits for them, and returns the report text.
async fn drive(
    args: &Args,
    bases: &[String],
    key: &str,
    receiver_base: &str,
    received: &AtomicU64,
) -> Result<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let base = &bases[0];
    let (status, wf) = post(
        &client,
        &format!("{base}/api/workflows"),
        key,
        &json!({
            "name": "loadgen",
            "steps": [{"id": "hook", "type": "webhook",
                       "config": {"url": format!("{receiver_base}/hook"), "retries": 0}}],
        }),
    )
    .await?;
    ensure!(status == 201, "creating the workflow answered {status}: {wf}");
    let wf_id = wf["id"].as_str().context("workflow id")?.to_owned();

    // Submit: `concurrency` tasks take the next index until all `runs` are sent.
    let next = Arc::new(AtomicUsize::new(0));
    let run_urls: Arc<Vec<String>> = Arc::new(
        bases
            .iter()
            .map(|b| format!("{b}/api/workflows/{wf_id}/run"))
            .collect(),
    );
    let first_submit = Instant::now();
    let mut tasks = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let (client, next, urls, key, runs) = (
            client.clone(),
            next.clone(),
            run_urls.clone(),
            key.to_owned(),
            args.runs,
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut rejected: Vec<String> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= runs {
                    break;
                }
                let url = &urls[i % urls.len()];
                let started = Instant::now();
                match post(&client, url, &key, &json!({"input": {}})).await {
                    Ok((201, _)) => latencies.push(started.elapsed()),
                    Ok((status, body)) => rejected.push(format!("{status}: {body}")),
                    Err(e) => rejected.push(format!("{e:#}")),
                }
            }
            (latencies, rejected)
        }));
    }
    let mut latencies = Vec::with_capacity(args.runs);
    let mut rejected = Vec::new();
    for task in tasks {
        let (l, r) = task.await?;
        latencies.extend(l);
        rejected.extend(r);
    }
    let submit_elapsed = first_submit.elapsed();
    let accepted = latencies.len();
    if let Some(first) = rejected.first() {
        eprintln!(
            "{} run requests were not accepted; the first: {first}",
            rejected.len()
        );
    }
    ensure!(accepted > 0, "no run was accepted");

    // Wait until every accepted run has finished.
    let count = |status: &'static str| {
        let client = client.clone();
        let url = format!("{base}/api/workflows/runs?workflow_id={wf_id}&status={status}&limit=1");
        let key = key.to_owned();
        async move {
            let res = client.get(&url).bearer_auth(&key).send().await?;
            let status_code = res.status().as_u16();
            let body: Value = res.json().await?;
            ensure!(status_code == 200, "listing runs answered {status_code}: {body}");
            body["total"].as_u64().context("total").map(|n| n as usize)
        }
    };
    let (completed, failed) = loop {
        let completed = count("completed").await?;
        let failed = count("failed").await?;
        if completed + failed >= accepted {
            break (completed, failed);
        }
        if first_submit.elapsed() > COMPLETION_TIMEOUT {
            bail!(
                "timed out after {COMPLETION_TIMEOUT:?}: {completed} completed and {failed} failed of {accepted}"
            );
        }
        tokio::time::sleep(POLL).await;
    };
    let all_done = first_submit.elapsed();

    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() - 1) * p / 100];
    let secs = |d: Duration| d.as_secs_f64();
    Ok(format!(
        "sealflow-loadgen: runs={} concurrency={} workers={} instances={} database={}\n\
         accepted (201):       {accepted} of {} ({} not accepted)\n\
         submit:               {:.1} req/s ({accepted} in {:.2} s)\n\
         submit latency:       p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n\
         completed:            {:.1} runs/s ({completed} completed, {failed} failed; {:.2} s from first submit \
         to last completion, ±{} ms polling)\n\
         receiver requests:    {}\n\
         2-core shared machine; compare ratios within one run",
        args.runs,
        args.concurrency,
        args.workers.map_or_else(|| "default".to_owned(), |w| w.to_string()),
        args.instances,
        if args.database_url.is_some() { "postgres" } else { "sqlite" },
        args.runs,
        rejected.len(),
        accepted as f64 / secs(submit_elapsed),
        secs(submit_elapsed),
        secs(pct(50)) * 1000.0,
        secs(pct(99)) * 1000.0,
        secs(*latencies.last().expect("accepted > 0")) * 1000.0,
        completed as f64 / secs(all_done),
        secs(all_done),
        POLL.as_millis(),
        received.load(Ordering::Relaxed),
    ))
}

async fn post(client: &reqwest::Client, url: &str, key: &str, body: &Value) -> Result<(u16, Value)> {
    let res = client.post(url).bearer_auth(key).json(body).send().await?;
    let status = res.status().as_u16();
    let text = res.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// A receiver on loopback answering 200 `{}` to anything; returns its base URL and the counter.
async fn start_receiver() -> Result<(String, Arc<AtomicU64>)> {
    let counter = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let hits = counter.clone();
    let app = axum::Router::new().fallback(move || {
        let hits = hits.clone();
        async move {
            hits.fetch_add(1, Ordering::Relaxed);
            axum::Json(json!({}))
        }
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("receiver stopped: {e}");
        }
    });
    Ok((base, counter))
}

/// A `sealflow` command with no inherited `SEALFLOW_*` variables.
fn sealflow_cmd(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SEALFLOW_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs a short `sealflow` command and returns the last line of its stdout.
fn sealflow_output(
    bin: &Path,
    args: &[&str],
    master_key: Option<&str>,
    database_url: Option<&str>,
) -> Result<String> {
    let mut cmd = sealflow_cmd(bin);
    cmd.args(args).stdin(Stdio::null());
    if let Some(k) = master_key {
        cmd.env("SEALFLOW_MASTER_KEY", k);
    }
    if let Some(url) = database_url {
        cmd.env("SEALFLOW_DATABASE_URL", url);
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {} {}", bin.display(), args[0]))?;
    ensure!(
        out.status.success(),
        "sealflow {} failed ({}): {}",
        args[..2].join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).context("stdout is not UTF-8")?;
    stdout
        .lines()
        .last()
        .map(|l| l.trim().to_owned())
        .context("no output")
}

/// A running `sealflow serve`; killed (SIGKILL) on drop if [`Server::stop`] was not reached.
struct Server {
    child: Child,
    base: String,
    log_tail: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(bin: &Path, data_dir: &Path, master_key: &str, args: &Args) -> Result<Self> {
        let mut cmd = sealflow_cmd(bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("SEALFLOW_MASTER_KEY", master_key)
            .env("SEALFLOW_EGRESS_ALLOW", "127.0.0.1/32")
            .env("SEALFLOW_RUN_RATE_LIMIT", "1000000000")
            // Warnings only, but the one info line that says where the server listens.
            .env("SEALFLOW_LOG", "warn,sealflow::cli=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(w) = args.workers {
            cmd.env("SEALFLOW_WORKERS", w.to_string());
        }
        if let Some(url) = &args.database_url {
            cmd.env("SEALFLOW_DATABASE_URL", url);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child.stderr.take().context("stderr")?;
        let log_tail = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let tail = log_tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("sealflow listening") {
                    if let Some(addr) = line.split("address=").nth(1) {
                        let addr = addr.split_whitespace().next().unwrap_or_default();
                        let _ = tx.send(addr.trim_matches('"').to_owned());
                    }
                }
                let mut tail = tail.lock().expect("log lock");
                if tail.len() == 50 {
                    tail.remove(0);
                }
                tail.push(line);
            }
        });
        let mut server = Self {
            child,
            base: String::new(),
            log_tail,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(addr) = rx.recv_timeout(POLL) {
                server.base = format!("http://{addr}");
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                std::thread::sleep(Duration::from_millis(100));
                bail!("sealflow serve exited with {status}:\n{}", server.tail());
            }
            if Instant::now() > deadline {
                bail!(
                    "sealflow serve did not listen within {START_TIMEOUT:?}:\n{}",
                    server.tail()
                );
            }
        }
    }

    fn tail(&self) -> String {
        self.log_tail.lock().expect("log lock").join("\n")
    }

    /// SIGTERM, then waits for a clean exit (SIGKILL after the timeout).
    fn stop(mut self) -> Result<()> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                ensure!(
                    status.success(),
                    "sealflow exited with {status}:\n{}",
                    self.tail()
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("sealflow did not stop within {STOP_TIMEOUT:?} of SIGTERM; killing it");
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.subsec_nanos();
        let path = std::env::temp_dir().join(format!("sealflow-loadgen-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
