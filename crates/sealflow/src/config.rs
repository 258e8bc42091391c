//! Typed configuration, built from flags and `SEALFLOW_*` environment variables and validated
//! once at start, reporting every problem together.
//!
//! Secrets (the master key, the JWT secret) are read from the environment or from files only,
//! never from flags, so they do not show up in process listings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use sealflow_workflow::limits;
use secrecy::SecretString;

use crate::auth::jwt::{JwtConfig, JwtKey};
use crate::domain::secrets::SecretLimits;
use crate::engine::EngineConfig;
use crate::server::ConnectionLimits;

/// Every `SEALFLOW_*` variable the server reads; others are warned about at start.
pub const KNOWN_ENV: &[&str] = &[
    // Read by the client verbs (`sealflow secrets|workflows|runs`), not by the server.
    "SEALFLOW_URL",
    "SEALFLOW_TOKEN",
    "SEALFLOW_DATA_DIR",
    "SEALFLOW_DATABASE_URL",
    "SEALFLOW_MASTER_KEY",
    "SEALFLOW_MASTER_KEY_FILE",
    "SEALFLOW_MASTER_KEY_NEXT",
    "SEALFLOW_MASTER_KEY_NEXT_FILE",
    "SEALFLOW_KEY_REWRAP_BATCH",
    "SEALFLOW_KEY_REWRAP_PAUSE_MS",
    "SEALFLOW_KEY_REWRAP_TAKEOVER_MS",
    "SEALFLOW_LISTEN",
    "SEALFLOW_PUBLIC_URL",
    "SEALFLOW_BODY_LIMIT",
    "SEALFLOW_MAX_SECRETS",
    "SEALFLOW_MAX_SECRET_BYTES",
    "SEALFLOW_JWT_SECRET",
    "SEALFLOW_JWT_SECRET_FILE",
    "SEALFLOW_JWT_PUBLIC_KEY_FILE",
    "SEALFLOW_JWT_ISSUER",
    "SEALFLOW_JWT_AUDIENCE",
    "SEALFLOW_JWT_WORKSPACE_CLAIM",
    "SEALFLOW_JWT_ROLE_CLAIM",
    "SEALFLOW_WORKERS",
    "SEALFLOW_LEASE_MS",
    "SEALFLOW_MAX_RUN_ATTEMPTS",
    "SEALFLOW_EGRESS_ALLOW",
    "SEALFLOW_RUN_RATE_LIMIT",
    "SEALFLOW_HOOK_RATE_LIMIT",
    "SEALFLOW_MAX_DEFINITION_BYTES",
    "SEALFLOW_MAX_STEP_BYTES",
    "SEALFLOW_MAX_RUN_BYTES",
    "SEALFLOW_HEADER_TIMEOUT_MS",
    "SEALFLOW_BODY_TIMEOUT_MS",
    "SEALFLOW_IDLE_TIMEOUT_MS",
    "SEALFLOW_MAX_CONNECTIONS",
    "SEALFLOW_METRICS_LISTEN",
    "SEALFLOW_LOG",
    "SEALFLOW_LOG_FORMAT",
];

/// Where the database and the master key live; shared by `serve`, `migrate` and `apikey`.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Directory for the embedded database and the generated master key.
    #[arg(long, env = "SEALFLOW_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Database URL: sqlite://PATH (default: sqlite://<data-dir>/sealflow.db).
    #[arg(long, env = "SEALFLOW_DATABASE_URL")]
    pub database_url: Option<String>,
    /// File holding the base64 master key. Without it (and without SEALFLOW_MASTER_KEY, which
    /// takes the key itself), <data-dir>/master.key is used, generated on first start.
    #[arg(long, env = "SEALFLOW_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// File holding the base64 of the next master key, during a rotation (or set
    /// SEALFLOW_MASTER_KEY_NEXT to the key itself). Both keys are loaded; the database says which
    /// one seals new data.
    #[arg(long, env = "SEALFLOW_MASTER_KEY_NEXT_FILE")]
    pub master_key_next_file: Option<PathBuf>,
    /// Times a run may be started without recording a step result (its worker died mid-step
    /// each time) before it is failed instead of being started again.
    #[arg(long, env = "SEALFLOW_MAX_RUN_ATTEMPTS", default_value_t = 5)]
    pub max_run_attempts: i64,
}

/// How data keys are rewrapped after a rotation; shared by `serve` and `key rotate`.
#[derive(Debug, Clone, Copy, Args)]
pub struct RewrapArgs {
    /// Data keys rewrapped per commit (1 to 10000).
    #[arg(long, env = "SEALFLOW_KEY_REWRAP_BATCH", default_value_t = 500)]
    pub rewrap_batch: i64,
    /// Pause between rewrap batches, in milliseconds, to go easy on a busy database.
    #[arg(long, env = "SEALFLOW_KEY_REWRAP_PAUSE_MS", default_value_t = 0)]
    pub rewrap_pause_ms: u64,
    /// How long a rewrapping process's claim lasts without progress, in milliseconds; after it a
    /// server holding the keys takes over and finishes the rewrap (1000 to 3600000).
    #[arg(long, env = "SEALFLOW_KEY_REWRAP_TAKEOVER_MS", default_value_t = 30_000)]
    pub rewrap_takeover_ms: u64,
}

impl RewrapArgs {
    pub fn resolve(&self, problems: &mut Vec<String>) -> RewrapConfig {
        if !(1..=10_000).contains(&self.rewrap_batch) {
            problems.push("--rewrap-batch must be 1 to 10000".into());
        }
        if self.rewrap_pause_ms > 60_000 {
            problems.push("--rewrap-pause-ms must be at most 60000".into());
        }
        if !(1_000..=3_600_000).contains(&self.rewrap_takeover_ms) {
            problems.push("--rewrap-takeover-ms must be 1000 to 3600000".into());
        }
        RewrapConfig {
            batch: self.rewrap_batch.clamp(1, 10_000),
            pause: Duration::from_millis(self.rewrap_pause_ms),
            takeover: Duration::from_millis(self.rewrap_takeover_ms),
        }
    }
}

/// Rewrap settings resolved from [`RewrapArgs`].
#[derive(Debug, Clone, Copy)]
pub struct RewrapConfig {
    pub batch: i64,
    pub pause: Duration,
    pub takeover: Duration,
}

impl Default for RewrapConfig {
    fn default() -> Self {
        Self {
            batch: 500,
            pause: Duration::ZERO,
            takeover: Duration::from_secs(30),
        }
    }
}

/// Options of `sealflow serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub rewrap: RewrapArgs,
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, env = "SEALFLOW_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Base URL clients reach this server at (used for webhook URLs).
    #[arg(long, env = "SEALFLOW_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Largest accepted request body, in bytes (larger: 413).
    #[arg(long, env = "SEALFLOW_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// Most secrets one workspace may hold.
    #[arg(long, env = "SEALFLOW_MAX_SECRETS", default_value_t = 1000)]
    pub max_secrets: i64,
    /// Largest secret value, in bytes of UTF-8.
    #[arg(long, env = "SEALFLOW_MAX_SECRET_BYTES", default_value_t = 64 * 1024)]
    pub max_secret_bytes: usize,
    /// Runs executed at once by this instance.
    #[arg(long, env = "SEALFLOW_WORKERS", default_value_t = 8)]
    pub workers: usize,
    /// How long a worker's claim on a run lasts without renewal, in milliseconds; runs of a dead
    /// instance resume elsewhere after this.
    #[arg(long, env = "SEALFLOW_LEASE_MS", default_value_t = 30_000)]
    pub lease_ms: u64,
    /// Destinations webhook steps may reach although they are loopback/private/link-local:
    /// comma-separated CIDRs and host names (`10.0.0.0/8, intranet.example.com, *.corp`).
    #[arg(long, env = "SEALFLOW_EGRESS_ALLOW", default_value = "")]
    pub egress_allow: String,
    /// Runs one caller may start per minute (429 beyond).
    #[arg(long, env = "SEALFLOW_RUN_RATE_LIMIT", default_value_t = 60)]
    pub run_rate_limit: i64,
    /// Webhook calls one workflow accepts per minute at its ingest URL (429 beyond).
    #[arg(long, env = "SEALFLOW_HOOK_RATE_LIMIT", default_value_t = 600)]
    pub hook_rate_limit: i64,
    /// Largest workflow definition (trigger and steps as compact JSON), in bytes (larger: 422).
    #[arg(long, env = "SEALFLOW_MAX_DEFINITION_BYTES", default_value_t = limits::DEFAULT_MAX_DEFINITION_BYTES)]
    pub max_definition_bytes: usize,
    /// Most bytes one step may render (a transform's output; a webhook's URL, headers and body;
    /// a condition's operands), charged while rendering; beyond, the step fails.
    #[arg(long, env = "SEALFLOW_MAX_STEP_BYTES", default_value_t = limits::DEFAULT_MAX_STEP_BYTES)]
    pub max_step_bytes: usize,
    /// Most bytes one run records (its step outputs and errors); beyond, the step fails.
    #[arg(long, env = "SEALFLOW_MAX_RUN_BYTES", default_value_t = limits::DEFAULT_MAX_RUN_BYTES)]
    pub max_run_bytes: usize,
    /// Time a client has to send a request's headers, in milliseconds, counted from the start of
    /// the connection or the end of the previous response (so idle keep-alive connections close
    /// after it too).
    #[arg(long, env = "SEALFLOW_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// Time a client has to send a whole request body, in milliseconds (408 after).
    #[arg(long, env = "SEALFLOW_BODY_TIMEOUT_MS", default_value_t = 30_000)]
    pub body_timeout_ms: u64,
    /// A connection on which no byte moves for this long is closed, in milliseconds; more than
    /// the longest `?wait=` (30 s).
    #[arg(long, env = "SEALFLOW_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    pub idle_timeout_ms: u64,
    /// Most connections served at once; one more is answered 503 and closed.
    #[arg(long, env = "SEALFLOW_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Where `/metrics` is served: `main` (the main listener, the default), `off`, or an
    /// address:port of its own (then only there).
    #[arg(long, env = "SEALFLOW_METRICS_LISTEN", default_value = "main")]
    pub metrics_listen: String,
    /// PEM public key (RSA, EC P-256 or Ed25519) that verifies JWTs (RS256/ES256/EdDSA). An HS256
    /// secret is given instead by SEALFLOW_JWT_SECRET or SEALFLOW_JWT_SECRET_FILE.
    #[arg(long, env = "SEALFLOW_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Required `iss` of JWTs (unchecked when unset).
    #[arg(long, env = "SEALFLOW_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` of JWTs (unchecked when unset).
    #[arg(long, env = "SEALFLOW_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// JWT claim holding the workspace id or slug.
    #[arg(long, env = "SEALFLOW_JWT_WORKSPACE_CLAIM", default_value = "workspace")]
    pub jwt_workspace_claim: String,
    /// JWT claim holding the role (admin, member, readonly).
    #[arg(long, env = "SEALFLOW_JWT_ROLE_CLAIM", default_value = "role")]
    pub jwt_role_claim: String,
}

/// Where the master key comes from, after resolving flags and environment.
#[derive(Clone)]
pub enum MasterKeySource {
    /// The key's base64 text (from `SEALFLOW_MASTER_KEY`).
    Inline(SecretString),
    /// A file the operator named; it must exist.
    File(PathBuf),
    /// `<data-dir>/master.key`, generated when both it and the database are new.
    Default(PathBuf),
}

impl std::fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline([REDACTED])"),
            Self::File(p) => write!(f, "File({})", p.display()),
            Self::Default(p) => write!(f, "Default({})", p.display()),
        }
    }
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    /// On the main listener, beside the API.
    Main,
    /// Nowhere: `/metrics` is a 404.
    Off,
    /// On a listener of its own at this address, and not on the main one.
    Separate(SocketAddr),
}

impl MetricsListen {
    fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "" | "main" => Some(Self::Main),
            "off" => Some(Self::Off),
            addr => addr.parse().ok().map(Self::Separate),
        }
    }
}

/// Storage settings resolved from [`StorageArgs`].
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub database_url: String,
    pub master_key: MasterKeySource,
    /// The next key of a rotation (`Inline` or `File`), loaded beside `master_key`.
    pub next_master_key: Option<MasterKeySource>,
    pub options: crate::store::StoreOptions,
}

/// The server's whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub storage: StorageConfig,
    pub public_url: Option<String>,
    pub body_limit: usize,
    pub secret_limits: SecretLimits,
    pub jwt: Option<JwtConfig>,
    pub engine: EngineConfig,
    /// Runs one caller may start per minute.
    pub run_rate_limit: i64,
    /// Ingest calls one workflow accepts per minute.
    pub hook_rate_limit: i64,
    /// Header-read and idle timeouts, and the connection cap.
    pub connections: ConnectionLimits,
    /// Time allowed to receive a whole request body.
    pub body_timeout: Duration,
    /// Where `/metrics` is served.
    pub metrics: MetricsListen,
    /// How this server finishes a pending rewrap of data keys.
    pub rewrap: RewrapConfig,
}

fn env_secret(name: &str, problems: &mut Vec<String>) -> Option<SecretString> {
    let file_var = format!("{name}_FILE");
    match (std::env::var(name).ok(), std::env::var(&file_var).ok()) {
        (Some(_), Some(_)) => {
            problems.push(format!("set only one of {name} and {file_var}"));
            None
        }
        (Some(v), None) => Some(SecretString::from(v)),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(v) => Some(SecretString::from(v.trim().to_owned())),
            Err(e) => {
                problems.push(format!("{file_var}: cannot read {path}: {e}"));
                None
            }
        },
        (None, None) => None,
    }
}

/// Runs a `resolve` that collects configuration problems, failing with all of them at once.
pub fn checked<T>(resolve: impl FnOnce(&mut Vec<String>) -> T) -> anyhow::Result<T> {
    let mut problems = Vec::new();
    let resolved = resolve(&mut problems);
    anyhow::ensure!(
        problems.is_empty(),
        "invalid configuration: {}",
        problems.join("; ")
    );
    Ok(resolved)
}

impl StorageArgs {
    /// The storage settings, or every problem with them.
    pub fn config(&self) -> anyhow::Result<StorageConfig> {
        checked(|problems| self.resolve(problems))
    }

    pub fn resolve(&self, problems: &mut Vec<String>) -> StorageConfig {
        let database_url = self
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("sealflow.db").display()));
        let inline = std::env::var("SEALFLOW_MASTER_KEY").ok().map(SecretString::from);
        let master_key = match (inline, &self.master_key_file) {
            (Some(_), Some(_)) => {
                problems.push("set only one of SEALFLOW_MASTER_KEY and --master-key-file".into());
                MasterKeySource::Default(self.data_dir.join("master.key"))
            }
            (Some(key), None) => MasterKeySource::Inline(key),
            (None, Some(path)) => MasterKeySource::File(path.clone()),
            (None, None) => MasterKeySource::Default(self.data_dir.join("master.key")),
        };
        let next_inline = std::env::var("SEALFLOW_MASTER_KEY_NEXT")
            .ok()
            .map(SecretString::from);
        let next_master_key = match (next_inline, &self.master_key_next_file) {
            (Some(_), Some(_)) => {
                problems.push("set only one of SEALFLOW_MASTER_KEY_NEXT and --master-key-next-file".into());
                None
            }
            (Some(key), None) => Some(MasterKeySource::Inline(key)),
            (None, Some(path)) => Some(MasterKeySource::File(path.clone())),
            (None, None) => None,
        };
        if self.max_run_attempts < 1 {
            problems.push("--max-run-attempts must be at least 1".into());
        }
        StorageConfig {
            database_url,
            master_key,
            next_master_key,
            options: crate::store::StoreOptions {
                max_run_attempts: self.max_run_attempts,
            },
        }
    }
}

impl ServeArgs {
    /// Validates everything and reports all problems at once.
    pub fn into_config(self) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let storage = self.storage.resolve(&mut problems);
        let rewrap = self.rewrap.resolve(&mut problems);
        let listen = self
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| problems.push(format!("--listen {:?} is not an address:port", self.listen)))
            .ok();
        if self.body_limit < 1024 {
            problems.push("--body-limit must be at least 1024 bytes".into());
        }
        if self.max_secrets < 1 {
            problems.push("--max-secrets must be at least 1".into());
        }
        if self.workers < 1 {
            problems.push("--workers must be at least 1".into());
        }
        if self.lease_ms < 500 {
            problems.push("--lease-ms must be at least 500".into());
        }
        if self.hook_rate_limit < 1 {
            problems.push("--hook-rate-limit must be at least 1".into());
        }
        for (flag, value) in [
            ("--max-definition-bytes", self.max_definition_bytes),
            ("--max-step-bytes", self.max_step_bytes),
            ("--max-run-bytes", self.max_run_bytes),
        ] {
            if value < 1024 {
                problems.push(format!("{flag} must be at least 1024 bytes"));
            }
        }
        if self.run_rate_limit < 1 {
            problems.push("--run-rate-limit must be at least 1".into());
        }
        if !(100..=600_000).contains(&self.header_timeout_ms) {
            problems.push("--header-timeout-ms must be 100 to 600000".into());
        }
        if !(100..=3_600_000).contains(&self.body_timeout_ms) {
            problems.push("--body-timeout-ms must be 100 to 3600000".into());
        }
        if !(31_000..=3_600_000).contains(&self.idle_timeout_ms) {
            problems.push(
                "--idle-timeout-ms must be 31000 to 3600000 (more than the longest ?wait=, 30 s)".into(),
            );
        }
        if self.max_connections < 1 {
            problems.push("--max-connections must be at least 1".into());
        }
        let metrics = MetricsListen::parse(&self.metrics_listen);
        match (metrics, listen) {
            (None, _) => problems.push(format!(
                "--metrics-listen {:?} is not main, off or an address:port",
                self.metrics_listen
            )),
            (Some(MetricsListen::Separate(m)), Some(l)) if m == l && m.port() != 0 => problems
                .push("--metrics-listen must differ from --listen (use main to serve /metrics there)".into()),
            _ => {}
        }
        let allow_list = sealflow_egress::AllowList::parse(&self.egress_allow)
            .map_err(|e| problems.push(format!("--egress-allow: {e}")))
            .unwrap_or_else(|()| sealflow_egress::AllowList::empty());
        if self.max_secret_bytes < 1 {
            problems.push("--max-secret-bytes must be at least 1".into());
        }
        let jwt_secret = env_secret("SEALFLOW_JWT_SECRET", &mut problems);
        let jwt_key = match (jwt_secret, &self.jwt_public_key_file) {
            (Some(_), Some(_)) => {
                problems.push("set either SEALFLOW_JWT_SECRET or --jwt-public-key-file, not both".into());
                None
            }
            (Some(s), None) => Some(JwtKey::Secret(s)),
            (None, Some(path)) => match std::fs::read(path) {
                Ok(pem) => Some(JwtKey::PublicPem(pem)),
                Err(e) => {
                    problems.push(format!("--jwt-public-key-file {}: {e}", path.display()));
                    None
                }
            },
            (None, None) => None,
        };
        let jwt = jwt_key.map(|key| JwtConfig {
            key,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            workspace_claim: self.jwt_workspace_claim.clone(),
            role_claim: self.jwt_role_claim.clone(),
        });
        if let Some(jwt) = &jwt {
            if let Err(e) = crate::auth::JwtVerifier::new(jwt) {
                problems.push(e);
            }
        }
        match (listen, problems.is_empty()) {
            (Some(listen), true) => Ok(Config {
                listen,
                storage,
                public_url: self.public_url.map(|u| u.trim_end_matches('/').to_owned()),
                body_limit: self.body_limit,
                secret_limits: SecretLimits {
                    max_value_bytes: self.max_secret_bytes,
                    max_per_workspace: self.max_secrets,
                },
                jwt,
                engine: EngineConfig {
                    workers: self.workers,
                    lease: Duration::from_millis(self.lease_ms),
                    egress: sealflow_egress::EgressOptions {
                        allow_list,
                        ..Default::default()
                    },
                    limits: limits::Limits {
                        definition_bytes: self.max_definition_bytes,
                        step_bytes: self.max_step_bytes,
                        run_bytes: self.max_run_bytes,
                    },
                    ..EngineConfig::default()
                },
                run_rate_limit: self.run_rate_limit,
                hook_rate_limit: self.hook_rate_limit,
                connections: ConnectionLimits {
                    header_read_timeout: Duration::from_millis(self.header_timeout_ms),
                    idle_timeout: Duration::from_millis(self.idle_timeout_ms),
                    max_connections: self.max_connections,
                },
                body_timeout: Duration::from_millis(self.body_timeout_ms),
                metrics: metrics.unwrap_or(MetricsListen::Main),
                rewrap,
            }),
            _ => Err(problems),
        }
    }
}

impl Config {
    /// A configuration for tests and embedding: SQLite under `data_dir`, the given master key.
    pub fn for_data_dir(data_dir: &Path, master_key: MasterKeySource) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            storage: StorageConfig {
                database_url: format!("sqlite://{}", data_dir.join("sealflow.db").display()),
                master_key,
                next_master_key: None,
                options: crate::store::StoreOptions::default(),
            },
            public_url: None,
            body_limit: 1024 * 1024,
            secret_limits: SecretLimits::default(),
            jwt: None,
            engine: EngineConfig::default(),
            run_rate_limit: 60,
            hook_rate_limit: 600,
            connections: ConnectionLimits::default(),
            body_timeout: Duration::from_secs(30),
            metrics: MetricsListen::Main,
            rewrap: RewrapConfig::default(),
        }
    }
}

/// `SEALFLOW_*` variables in the environment that no setting reads (likely typos).
pub fn unknown_env_vars() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("SEALFLOW_") && !k.starts_with("SEALFLOW_TEST_"))
        .filter(|k| !KNOWN_ENV.contains(&k.as_str()))
        .collect()
}
