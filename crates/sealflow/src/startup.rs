//! Building and running the application. `main` and the tests share this path: open the store,
//! load and check the master key, bind, then serve until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::{Authenticator, JwtVerifier, LoginTokens, Passwords};
use crate::config::{Config, MasterKeySource, MetricsListen, StorageConfig};
use crate::domain::runs::RunsService;
use crate::domain::secrets::SecretsService;
use crate::domain::users::UsersService;
use crate::domain::workflows::WorkflowsService;
use crate::engine::Engine;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::store::{self, Store};
use crate::vault::{EnvKeyProvider, FileKeyProvider, MasterKey, MasterKeyProvider, Vault};

/// A bound, ready-to-serve server.
pub struct Application {
    listener: TcpListener,
    /// `/metrics` on an address of its own (`SEALFLOW_METRICS_LISTEN`).
    metrics_listener: Option<TcpListener>,
    state: AppState,
    engine: Engine,
    workers: usize,
    schedule_every: std::time::Duration,
    /// Tells workers, the scheduler and waiting requests that the server is stopping.
    stop_tx: tokio::sync::watch::Sender<bool>,
    stop_rx: tokio::sync::watch::Receiver<bool>,
}

impl Application {
    /// Opens storage and the vault (refusing a wrong master key), then binds the listener.
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        let (store, vault) = open_store_and_vault(&config.storage).await?;
        // The application's own registry: several servers in one process never mix counts.
        let metrics = Metrics::new(store.commit_metrics());
        config.engine.metrics = metrics.clone();
        let jwt = config
            .jwt
            .as_ref()
            .map(JwtVerifier::new)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let login_tokens = LoginTokens::new(&vault.derive_key("jwt-login-signing"));
        let auth = Arc::new(Authenticator::new(store.clone(), jwt, login_tokens));
        let passwords = Passwords::default();
        passwords.warm_up().await;
        let users = Arc::new(UsersService::new(store.clone(), passwords));
        let secrets = Arc::new(
            SecretsService::new(store.clone(), vault.clone(), config.secret_limits)
                .with_metrics(metrics.clone()),
        );
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let metrics_listener = match config.metrics {
            MetricsListen::Separate(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} for /metrics"))?,
            ),
            MetricsListen::Main | MetricsListen::Off => None,
        };
        let workflows = Arc::new(WorkflowsService::new(
            store.clone(),
            config.engine.limits.definition_bytes,
        ));
        let engine = Engine::new(&config.engine, store.clone(), secrets.clone())?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let runs = Arc::new(RunsService::new(store.clone(), engine.clone(), stop_rx.clone()));
        let workers = config.engine.workers;
        let schedule_every = config.engine.schedule_every;
        let public_base: Arc<str> = match &config.public_url {
            Some(url) => url.as_str().into(),
            None => format!("http://{}", listener.local_addr()?).into(),
        };
        let state = AppState {
            config: Arc::new(config),
            store,
            vault,
            auth,
            secrets,
            workflows,
            runs,
            users,
            pages: Arc::new(crate::dashboard::Pages::new()?),
            public_base,
            metrics,
        };
        Ok(Self {
            listener,
            metrics_listener,
            state,
            engine,
            workers,
            schedule_every,
            stop_tx,
            stop_rx,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Where `/metrics` is served on its own, if it is (`SEALFLOW_METRICS_LISTEN=ADDR`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// The shared state, for tests that reach past HTTP (e.g. to inspect the store).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs the engine's workers and serves HTTP until `shutdown` completes; then finishes
    /// in-flight requests and gives running steps a grace period (their leases cover the rest).
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = (self.stop_tx, self.stop_rx);
        let mut metrics_stopping = stop_rx.clone();
        let mut workers = self.engine.start(self.workers, stop_rx.clone());
        let scheduler = crate::engine::scheduler::Scheduler::new(
            self.engine.store(),
            Arc::new(crate::engine::scheduler::SystemClock),
            self.engine.clone(),
        );
        workers.push(tokio::spawn(scheduler.run(self.schedule_every, stop_rx)));
        let limits = self.state.config.connections;
        let metrics_server = self.metrics_listener.map(|listener| {
            let app = http::metrics::separate_router(self.state.clone());
            tokio::spawn(crate::server::serve(listener, app, limits, async move {
                let _ = metrics_stopping.wait_for(|stop| *stop).await;
            }))
        });
        let app = http::router(self.state);
        let served = crate::server::serve(self.listener, app, limits, async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await;
        if let Some(server) = metrics_server {
            let _ = server.await;
        }
        let grace = tokio::time::sleep(std::time::Duration::from_secs(10));
        tokio::pin!(grace);
        for worker in workers {
            tokio::select! {
                _ = &mut grace => break,
                _ = worker => {},
            }
        }
        served
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// Registers for SIGINT and SIGTERM now, and resolves when one arrives.
///
/// Registration happens when this is called, not when the future is first polled, so a signal
/// that arrives right after the "listening" log line still shuts the server down gracefully.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        tokio::select! {
            () = recv_or_pend(term.as_mut()) => {},
            () = recv_or_pend(int.as_mut()) => {},
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    }
}

/// Waits for a signal; never resolves if registration failed.
#[cfg(unix)]
async fn recv_or_pend(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Opens and migrates the store, then loads the master key and checks it against the database.
///
/// With no key configured, `<data-dir>/master.key` is used; it is generated only when the
/// database has never held encrypted data, so a lost key file is an error, not a silent new key.
pub async fn open_store_and_vault(storage: &StorageConfig) -> anyhow::Result<(Arc<dyn Store>, Arc<Vault>)> {
    let url = storage.database_url.as_str();
    if (url.starts_with("postgres://") || url.starts_with("postgresql://"))
        && matches!(storage.master_key, MasterKeySource::Default(_))
    {
        // Every instance of a fleet must seal with the same key; a key file generated on one
        // machine would leave the others unable to decrypt, so PostgreSQL never generates one.
        anyhow::bail!(
            "no master key is configured: with PostgreSQL a fleet of instances must share one \
             master key, so set SEALFLOW_MASTER_KEY (base64) or --master-key-file on every instance \
             (no key file is generated for PostgreSQL)"
        );
    }
    let store = store::open_with(url, storage.options).await?;
    let checks = store.master_key_checks().await?;
    let key = match &storage.master_key {
        MasterKeySource::Inline(text) => EnvKeyProvider(text.clone()).load()?,
        MasterKeySource::File(path) => FileKeyProvider(path.clone()).load()?,
        MasterKeySource::Default(path) if path.exists() => FileKeyProvider(path.clone()).load()?,
        MasterKeySource::Default(path) => {
            if !checks.is_empty() {
                anyhow::bail!(
                    "no master key is configured and {} does not exist, but this database holds data \
                     encrypted with master key {}; restore that key file or set SEALFLOW_MASTER_KEY",
                    path.display(),
                    checks
                        .iter()
                        .map(|(id, _)| id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            generate_default_key(path)?
        }
    };
    let vault = Vault::new(key);
    vault.verify_key_checks(&checks)?;
    if checks.is_empty() {
        store
            .insert_master_key_check(
                vault.primary_key_id(),
                &vault.key_check_value()?,
                crate::ids::now_ms(),
            )
            .await?;
    }
    tracing::info!(
        backend = store.backend(),
        master_key_id = vault.primary_key_id(),
        "storage ready"
    );
    Ok((store, Arc::new(vault)))
}

fn generate_default_key(path: &std::path::Path) -> anyhow::Result<MasterKey> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::files::create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let key = FileKeyProvider::create_new(path)?;
    tracing::warn!(
        path = %path.display(),
        master_key_id = key.id(),
        "generated a new master key: back this file up and keep it apart from the database; \
         without it the stored secrets cannot be decrypted"
    );
    Ok(key)
}
