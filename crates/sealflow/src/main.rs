//! The `sealflow` binary: parse the command line, start logging, run the command.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = sealflow::cli::Cli::parse();
    let live_secrets = sealflow::telemetry::init();
    sealflow::cli::run(cli, live_secrets).await
}
