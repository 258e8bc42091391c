//! sealflow's own client verbs (`sealflow secrets|workflows|runs …`): HTTP calls to a running
//! server, tables for people and `--output json` for scripts.
//!
//! Exit codes: 0 done, 2 invalid input (also clap's own usage errors), 3 authentication or
//! permission, 4 not found, 1 anything else (network, server error, a watched run that failed).

mod http;
mod output;
mod runs;
mod secrets;
mod workflows;

use std::process::ExitCode;

use clap::{Args, ValueEnum};

pub use runs::RunsCommand;
pub use secrets::SecretsCommand;
pub use workflows::WorkflowsCommand;

use http::Api;

/// Where the server is and who we are; shared by every client verb.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Base URL of the sealflow server.
    #[arg(
        long,
        env = "SEALFLOW_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// API key or JWT (prefer the environment variable: a flag shows in the process list).
    #[arg(long, env = "SEALFLOW_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// `table` for people, `json` for scripts.
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// A failed client command, by the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Other(String),
}

impl ClientError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Other(_) => 1,
            Self::Invalid(_) => 2,
            Self::Auth(_) => 3,
            Self::NotFound(_) => 4,
        }
    }
}

pub type ClientResult<T> = Result<T, ClientError>;

/// Which client verb to run.
pub enum Verb {
    Secrets(SecretsCommand),
    Workflows(WorkflowsCommand),
    Runs(RunsCommand),
}

/// Runs a client verb; errors are printed to stderr and become the exit code.
pub async fn run(args: ClientArgs, verb: Verb) -> ExitCode {
    let result = match Api::new(&args) {
        Ok(api) => match verb {
            Verb::Secrets(cmd) => secrets::run(&api, args.output, cmd).await,
            Verb::Workflows(cmd) => workflows::run(&api, args.output, cmd).await,
            Verb::Runs(cmd) => runs::run(&api, args.output, cmd).await,
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
