//! `sealflow runs list | get ID | watch ID`; `watch` prints each step as it progresses and
//! returns when the run has ended (exit 1 unless it completed).

use std::collections::HashMap;
use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use super::http::{seg, Api};
use super::output::{cell, json, table};
use super::{ClientError, ClientResult, Output};

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        #[arg(long)]
        workflow_id: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show one run with its steps.
    Get { id: String },
    /// Follow a run's steps live until it ends.
    Watch { id: String },
}

pub async fn run(api: &Api, output: Output, cmd: RunsCommand) -> ClientResult<()> {
    match cmd {
        RunsCommand::List {
            workflow_id,
            status,
            limit,
        } => {
            let limit = limit.to_string();
            let mut query = vec![("limit", limit.as_str())];
            if let Some(w) = &workflow_id {
                query.push(("workflow_id", w));
            }
            if let Some(s) = &status {
                query.push(("status", s));
            }
            let body = api.get("/api/workflows/runs", &query).await?;
            if output == Output::Json {
                json(&body);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = body["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    vec![
                        cell(&r["id"]),
                        cell(&r["workflow_name"]),
                        cell(&r["status"]),
                        format!("{}/{}", cell(&r["steps_completed"]), cell(&r["steps_total"])),
                        cell(&r["created_at"]),
                    ]
                })
                .collect();
            table(&["ID", "WORKFLOW", "STATUS", "STEPS", "CREATED"], &rows);
        }
        RunsCommand::Get { id } => {
            let run = get(api, &id).await?;
            match output {
                Output::Json => json(&run),
                Output::Table => print_run(&run),
            }
        }
        RunsCommand::Watch { id } => watch(api, output, &id).await?,
    }
    Ok(())
}

async fn get(api: &Api, id: &str) -> ClientResult<Value> {
    api.get(&format!("/api/workflows/runs/{}", seg(id)), &[]).await
}

/// A run's card and its steps table.
pub fn print_run(run: &Value) {
    println!(
        "run {}  {}  workflow {}  steps {}/{}",
        cell(&run["id"]),
        cell(&run["status"]),
        cell(&run["workflow_name"]),
        cell(&run["steps_completed"]),
        cell(&run["steps_total"])
    );
    if let Some(e) = run["error"].as_str() {
        println!("error: {e}");
    }
    let rows: Vec<Vec<String>> = run["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                cell(&s["id"]),
                cell(&s["type"]),
                cell(&s["status"]),
                cell(&s["duration_ms"]),
                cell(&s["error"]),
            ]
        })
        .collect();
    if !rows.is_empty() {
        table(&["STEP", "TYPE", "STATUS", "MS", "ERROR"], &rows);
    }
}

/// Polls the run, printing every step whose status changed, until the run has ended.
pub async fn watch(api: &Api, output: Output, id: &str) -> ClientResult<()> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut last_status = String::new();
    let run = loop {
        let run = get(api, id).await?;
        let status = cell(&run["status"]);
        if output == Output::Table {
            for step in run["steps"].as_array().into_iter().flatten() {
                let (sid, sstatus) = (cell(&step["id"]), cell(&step["status"]));
                if sstatus != "pending" && seen.get(&sid) != Some(&sstatus) {
                    println!("step {sid} {sstatus}");
                    seen.insert(sid, sstatus);
                }
            }
            if status != last_status {
                println!("run {id} {status}");
                last_status = status.clone();
            }
        }
        if matches!(status.as_str(), "completed" | "failed" | "cancelled") {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    if output == Output::Json {
        json(&run);
    } else if let Some(e) = run["error"].as_str() {
        println!("error: {e}");
    }
    match run["status"].as_str() {
        Some("completed") => Ok(()),
        other => Err(ClientError::Other(format!(
            "run {id} ended {}",
            other.unwrap_or("?")
        ))),
    }
}
