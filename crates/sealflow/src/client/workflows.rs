//! `sealflow workflows list | get ID | apply -f FILE | run ID [--input JSON] [--wait]`.

use std::path::PathBuf;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::http::{seg, Api};
use super::output::{cell, json, table};
use super::runs::{print_run, watch};
use super::{ClientError, ClientResult, Output};

#[derive(Debug, Subcommand)]
pub enum WorkflowsCommand {
    /// List workflows, newest first.
    List,
    /// Show one workflow with its steps.
    Get { id: String },
    /// Create the workflow in FILE (JSON), or update the one with the same name.
    Apply {
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
    /// Start a run; with --wait, follow it until it ends (exit 1 if it fails).
    Run {
        id: String,
        /// The run's input, a JSON object.
        #[arg(long, value_name = "JSON")]
        input: Option<String>,
        #[arg(long)]
        wait: bool,
    },
}

/// Largest workflow file `apply` reads (the server's default body limit).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

pub async fn run(api: &Api, output: Output, cmd: WorkflowsCommand) -> ClientResult<()> {
    match cmd {
        WorkflowsCommand::List => {
            let all = list_all(api).await?;
            if output == Output::Json {
                json(&json!({ "workflows": all }));
                return Ok(());
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|w| {
                    let steps = w["steps"].as_array().map_or(0, Vec::len);
                    vec![
                        cell(&w["id"]),
                        cell(&w["name"]),
                        cell(&w["status"]),
                        cell(&w["version"]),
                        steps.to_string(),
                        cell(&w["updated_at"]),
                    ]
                })
                .collect();
            table(&["ID", "NAME", "STATUS", "VERSION", "STEPS", "UPDATED"], &rows);
        }
        WorkflowsCommand::Get { id } => {
            let wf = api.get(&format!("/api/workflows/{}", seg(&id)), &[]).await?;
            if output == Output::Json {
                json(&wf);
                return Ok(());
            }
            println!(
                "{} ({})  status {}  version {}",
                cell(&wf["name"]),
                cell(&wf["id"]),
                cell(&wf["status"]),
                cell(&wf["version"])
            );
            println!("trigger: {}", cell(&wf["trigger"]["type"]));
            let rows: Vec<Vec<String>> = wf["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| vec![cell(&s["id"]), cell(&s["type"])])
                .collect();
            table(&["STEP", "TYPE"], &rows);
        }
        WorkflowsCommand::Apply { file } => apply(api, output, &file).await?,
        WorkflowsCommand::Run { id, input, wait } => {
            let input: Value = match input {
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| ClientError::Invalid(format!("--input is not JSON: {e}")))?,
                None => json!({}),
            };
            if !input.is_object() {
                return Err(ClientError::Invalid("--input must be a JSON object".into()));
            }
            let run = api
                .send_json(
                    Method::POST,
                    &format!("/api/workflows/{}/run", seg(&id)),
                    &json!({ "input": input }),
                )
                .await?;
            let run_id = run["id"].as_str().unwrap_or_default().to_owned();
            if wait {
                return watch(api, output, &run_id).await;
            }
            match output {
                Output::Json => json(&run),
                Output::Table => print_run(&run),
            }
        }
    }
    Ok(())
}

/// Every workflow of the workspace, following the pages.
async fn list_all(api: &Api) -> ClientResult<Vec<Value>> {
    let mut all = Vec::new();
    for page in 1.. {
        let page_text = page.to_string();
        let body = api
            .get("/api/workflows", &[("page", &page_text), ("limit", "100")])
            .await?;
        let items = body["workflows"].as_array().cloned().unwrap_or_default();
        let total = body["total"].as_u64().unwrap_or(0) as usize;
        let done = items.is_empty();
        all.extend(items);
        if done || all.len() >= total {
            break;
        }
    }
    Ok(all)
}

async fn apply(api: &Api, output: Output, file: &std::path::Path) -> ClientResult<()> {
    let meta = std::fs::metadata(file)
        .map_err(|e| ClientError::Invalid(format!("cannot read {}: {e}", file.display())))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(ClientError::Invalid(format!(
            "{} is larger than {MAX_FILE_BYTES} bytes",
            file.display()
        )));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| ClientError::Invalid(format!("cannot read {}: {e}", file.display())))?;
    let def: Value = serde_json::from_str(&text)
        .map_err(|e| ClientError::Invalid(format!("{} is not JSON: {e}", file.display())))?;
    let name = def["name"]
        .as_str()
        .ok_or_else(|| ClientError::Invalid(format!("{} has no \"name\"", file.display())))?;
    let existing = list_all(api).await?.into_iter().find(|w| w["name"] == name);
    let (verb, saved) = match existing {
        Some(wf) => {
            let id = wf["id"].as_str().unwrap_or_default();
            (
                "updated",
                api.send_json(Method::PUT, &format!("/api/workflows/{}", seg(id)), &def)
                    .await?,
            )
        }
        None => (
            "created",
            api.send_json(Method::POST, "/api/workflows", &def).await?,
        ),
    };
    match output {
        Output::Json => json(&saved),
        Output::Table => println!(
            "workflow {} {verb} ({}, version {})",
            cell(&saved["name"]),
            cell(&saved["id"]),
            cell(&saved["version"])
        ),
    }
    Ok(())
}
