//! The `sealflow` command line: `serve`, `migrate`, `apikey create`, `user create`, `key` (generate,
//! add, rotate, status, retire; in `cli/key.rs`), `audit verify|prune` (in `cli/audit.rs`),
//! and the client verbs `secrets`, `workflows`, `runs` (in [`crate::client`]) that talk to a server.

mod audit;
mod key;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::client::{self, ClientArgs, RunsCommand, SecretsCommand, Verb, WorkflowsCommand};
use crate::config::{ServeArgs, StorageArgs};
use crate::store::{self, Role};

#[derive(Debug, Parser)]
#[command(
    name = "sealflow",
    version,
    about = "Self-hosted workflow engine for steps that call other services with secrets",
    after_help = "The master key is read from SEALFLOW_MASTER_KEY (base64 of 32 bytes) or \
                  --master-key-file / SEALFLOW_MASTER_KEY_FILE, and the next key of a rotation from \
                  SEALFLOW_MASTER_KEY_NEXT or --master-key-next-file / SEALFLOW_MASTER_KEY_NEXT_FILE; \
                  never from a flag value."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrates the database first).
    // Boxed: the server's options dwarf the other commands'.
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate(StorageArgs),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Manage users who sign in to the dashboard or at /api/auth/login.
    #[command(subcommand)]
    User(UserCommand),
    /// Master-key tools.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The audit trail: verify its hash chains, prune old entries.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Secrets of a server's workspace (client; `--url`, `--token`).
    Secrets {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Workflows of a server's workspace (client).
    Workflows {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: WorkflowsCommand,
    },
    /// Runs of a server's workspace (client).
    Runs {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: RunsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (or add an existing one to another workspace) with a role there. The
    /// password is read from a no-echo prompt, or from the first line of standard input when it
    /// is not a terminal; never from an argument.
    Create(UserCreateArgs),
}

#[derive(Debug, Args)]
pub struct UserCreateArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The user's email address (how they sign in).
    #[arg(long)]
    pub email: String,
    /// Workspace slug; the workspace is created on first use.
    #[arg(long)]
    pub workspace: String,
    /// Role in that workspace: admin, member or readonly.
    #[arg(long, value_parser = ["admin", "member", "readonly"])]
    pub role: String,
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Issue an API key; prints it alone on the last line of stdout (it is shown only once).
    Create(ApikeyCreateArgs),
}

#[derive(Debug, Args)]
pub struct ApikeyCreateArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Workspace slug; the workspace is created on first use.
    #[arg(long)]
    pub workspace: String,
    /// Role of the key: admin, member or readonly.
    #[arg(long, value_parser = ["admin", "member", "readonly"])]
    pub role: String,
    /// A label to recognise the key by.
    #[arg(long, default_value = "cli")]
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print a new random master key (base64 of 32 bytes).
    Generate,
    /// Register the next master key (SEALFLOW_MASTER_KEY_NEXT or SEALFLOW_MASTER_KEY_NEXT_FILE)
    /// by its id and check value, so instances may load it; nothing is sealed with it yet.
    Add(StorageArgs),
    /// Make the next key current for new writes and rewrap every data key under it, in batches,
    /// while servers keep serving. Needs both keys. Run again after an interruption to finish
    /// (without SEALFLOW_MASTER_KEY_NEXT it finishes a pending rewrap under the current key).
    Rotate(KeyRotateArgs),
    /// Show the master keys, which one is current, and how many data keys each wraps.
    Status(KeyStatusArgs),
    /// Retire a key that nothing uses any more; refuses (exit 1) while anything does.
    Retire(KeyRetireArgs),
}

#[derive(Debug, Args)]
pub struct KeyRotateArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub rewrap: crate::config::RewrapArgs,
}

#[derive(Debug, Args)]
pub struct KeyStatusArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// `text` (default) or `json`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

#[derive(Debug, Args)]
pub struct KeyRetireArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The key id (`mk_…`), as `sealflow key status` shows it.
    pub id: String,
}

/// Runs the parsed command; errors are printed in full and give a non-zero exit code.
/// `live_secrets` is the log writer's set of run redactors ([`crate::telemetry::init`]).
pub async fn run(cli: Cli, live_secrets: sealflow_redact::LiveRedactors) -> ExitCode {
    let result = match cli.command {
        Command::Secrets { client, command } => return client::run(client, Verb::Secrets(command)).await,
        Command::Workflows { client, command } => return client::run(client, Verb::Workflows(command)).await,
        Command::Runs { client, command } => return client::run(client, Verb::Runs(command)).await,
        Command::Serve(args) => serve(*args, live_secrets).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Audit(command) => audit::run(command).await,
        Command::Apikey(ApikeyCommand::Create(args)) => apikey_create(args).await,
        Command::User(UserCommand::Create(args)) => user_create(args).await,
        Command::Key(KeyCommand::Generate) => {
            println!("{}", crate::vault::generate_master_key_base64().as_str());
            Ok(())
        }
        Command::Key(KeyCommand::Add(args)) => key::add(args).await,
        Command::Key(KeyCommand::Rotate(args)) => key::rotate(args).await,
        Command::Key(KeyCommand::Status(args)) => key::status(args).await,
        Command::Key(KeyCommand::Retire(args)) => key::retire(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "sealflow stopped with an error");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs, live_secrets: sealflow_redact::LiveRedactors) -> anyhow::Result<()> {
    for var in crate::config::unknown_env_vars() {
        tracing::warn!(variable = %var, "unknown SEALFLOW_ variable ignored (a typo?)");
    }
    let mut config = args
        .into_config()
        .map_err(|problems| anyhow::anyhow!("invalid configuration:\n  - {}", problems.join("\n  - ")))?;
    config.engine.live_secrets = live_secrets;
    let app = crate::startup::Application::build(config).await?;
    let shutdown = crate::startup::shutdown_signal();
    tracing::info!(address = %app.local_addr(), "sealflow listening");
    if let Some(addr) = app.metrics_addr() {
        tracing::info!(metrics_on = %addr, "serving /metrics on its own listener only");
    }
    app.run_until(shutdown).await?;
    tracing::info!("sealflow stopped");
    Ok(())
}

async fn migrate(args: StorageArgs) -> anyhow::Result<()> {
    let storage = args.config()?;
    let store = store::open(&storage.database_url).await?;
    println!("database is migrated ({})", store.backend());
    Ok(())
}

async fn apikey_create(args: ApikeyCreateArgs) -> anyhow::Result<()> {
    let storage = args.storage.config()?;
    let slug = checked_slug(&args.workspace)?;
    let role = Role::parse(&args.role).expect("clap restricts the role");
    let store = store::open(&storage.database_url).await?;
    let workspace = store.ensure_workspace(slug).await?;
    let issued = crate::auth::issue_api_key(&workspace.id, &args.name, role);
    store.insert_api_key(&issued.record, "cli").await?;
    println!(
        "API key {} ({} role) for workspace {} ({}); it is shown only once:",
        issued.record.id, role, workspace.slug, workspace.id
    );
    println!("{}", issued.key.expose_secret());
    Ok(())
}

fn checked_slug(slug: &str) -> anyhow::Result<&str> {
    let slug = slug.trim();
    anyhow::ensure!(
        !slug.is_empty()
            && slug.len() <= 64
            && slug
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "--workspace must be 1 to 64 letters, digits, - or _"
    );
    Ok(slug)
}

/// Reads a password without echo from the terminal (asked twice), or one line from a pipe.
fn read_password() -> anyhow::Result<secrecy::SecretString> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        let first = zeroize::Zeroizing::new(rpassword::prompt_password("Password: ")?);
        let again = zeroize::Zeroizing::new(rpassword::prompt_password("Password again: ")?);
        anyhow::ensure!(*first == *again, "the two passwords differ");
        Ok(secrecy::SecretString::from(first.as_str()))
    } else {
        let mut line = zeroize::Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(secrecy::SecretString::from(line.trim_end_matches(['\r', '\n'])))
    }
}

async fn user_create(args: UserCreateArgs) -> anyhow::Result<()> {
    let storage = args.storage.config()?;
    let slug = checked_slug(&args.workspace)?;
    let role = Role::parse(&args.role).expect("clap restricts the role");
    let email = crate::domain::users::normalize_email(&args.email)?;
    let store = store::open(&storage.database_url).await?;
    let users = crate::domain::users::UsersService::new(store.clone(), crate::auth::Passwords::default());
    let exists = store.find_user_by_email(&email).await?.is_some();
    let password = if exists { None } else { Some(read_password()?) };
    let workspace = store.ensure_workspace(slug).await?;
    let (user, added) = users
        .add_to_workspace(&email, password, &workspace.id, role)
        .await?;
    let what = match added {
        crate::domain::users::AddedUser::Created => "created user",
        crate::domain::users::AddedUser::Joined => "added existing user",
    };
    println!(
        "{what} {} ({}) with the {role} role in workspace {} ({})",
        user.email, user.id, workspace.slug, workspace.id
    );
    Ok(())
}
