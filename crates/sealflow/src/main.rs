//! The `sealflow` binary: parse the command line, start logging, run the command.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: glibc's malloc and free were 18 % of the server's
/// CPU samples at c=16 (`PERF_RECORD=1 bench/run.sh 8 c16`), the run's JSON values, strings and
/// the messages to and from the database threads allocating and freeing across threads.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = sealflow::cli::Cli::parse();
    let live_secrets = sealflow::telemetry::init();
    sealflow::cli::run(cli, live_secrets).await
}
