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
use secrecy::ExposeSecret;

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
        workers.push(tokio::spawn(crate::domain::keyring::watch(
            self.state.store.clone(),
            self.state.vault.clone(),
            self.state.config.rewrap,
            stop_rx.clone(),
        )));
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

/// Opens and migrates the store, then loads the master keys and checks them against the database.
///
/// With no key configured, `<data-dir>/master.key` is used; it is generated only when the
/// database has never held encrypted data, so a lost key file is an error, not a silent new key.
/// `SEALFLOW_MASTER_KEY_NEXT` (or its file) adds the next key of a rotation. Every key the
/// database still uses (the current one, any wrapping a data key or the derivation root) must be
/// loaded, else this refuses, naming the missing and the configured ids. The derivation root is
/// created here on a database that has none.
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
    let registered = store.master_keys().await?;
    let primary = match &storage.master_key {
        MasterKeySource::Inline(text) => EnvKeyProvider(text.clone()).load()?,
        MasterKeySource::File(path) => FileKeyProvider(path.clone()).load()?,
        MasterKeySource::Default(path) if path.exists() => FileKeyProvider(path.clone()).load()?,
        MasterKeySource::Default(path) => {
            if !registered.is_empty() {
                anyhow::bail!(
                    "no master key is configured and {} does not exist, but this database holds data \
                     encrypted with master key {}; restore that key file or set SEALFLOW_MASTER_KEY",
                    path.display(),
                    registered
                        .iter()
                        .map(|k| k.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            generate_default_key(path)?
        }
    };
    let mut keys = vec![(primary, "SEALFLOW_MASTER_KEY")];
    if let Some(key) = load_next_key(storage)? {
        if key.id() != keys[0].0.id() {
            keys.push((key, "SEALFLOW_MASTER_KEY_NEXT"));
        }
    }
    let checks: Vec<(String, Vec<u8>)> = registered
        .iter()
        .map(|k| (k.id.clone(), k.check_value.clone()))
        .collect();
    let (keys, sources): (Vec<MasterKey>, Vec<&str>) = keys.into_iter().unzip();
    crate::vault::verify_key_checks(&keys, &checks)?;
    let current = match store.current_master_key().await? {
        Some(current) => current,
        None => {
            // A new database: the configured key becomes its first key (unless another instance
            // starting at the same time got there first).
            store
                .init_key_ring(
                    keys[0].id(),
                    &crate::vault::key_check_value(&keys[0])?,
                    crate::ids::now_ms(),
                )
                .await?
        }
    };
    let root = store.derivation_root().await?;
    let mut needed = vec![format!("{current} (current)")];
    let mut needed_ids = vec![current.clone()];
    for (id, n) in store.data_keys_per_master_key().await? {
        if !needed_ids.contains(&id) {
            needed.push(format!("{id} (wraps {n} data keys)"));
            needed_ids.push(id);
        }
    }
    if let Some(root) = &root {
        if !needed_ids.contains(&root.kek_id) {
            needed.push(format!("{} (wraps the derivation root)", root.kek_id));
            needed_ids.push(root.kek_id.clone());
        }
    }
    let missing: Vec<&String> = needed
        .iter()
        .zip(&needed_ids)
        .filter(|(_, id)| !keys.iter().any(|k| k.id() == id.as_str()))
        .map(|(label, _)| label)
        .collect();
    if !missing.is_empty() {
        let configured: Vec<String> = keys
            .iter()
            .zip(&sources)
            .map(|(k, source)| {
                let retired = registered
                    .iter()
                    .any(|r| r.id == k.id() && r.retired_at.is_some());
                format!("{} ({source}{})", k.id(), if retired { ", retired" } else { "" })
            })
            .collect();
        anyhow::bail!(
            "the master key does not match this database: it needs master key {}, which is not \
             configured; the configured keys are {}. Start with the key(s) it needs \
             (SEALFLOW_MASTER_KEY, and SEALFLOW_MASTER_KEY_NEXT during a rotation, or their _FILE forms)",
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
            configured.join(", ")
        );
    }
    for key in &keys {
        if registered
            .iter()
            .any(|r| r.id == key.id() && r.retired_at.is_some())
        {
            tracing::warn!(
                master_key_id = key.id(),
                "a configured master key is retired; remove it from the configuration"
            );
        }
    }
    let root = match root {
        Some(root) => root,
        None => {
            let kek = keys
                .iter()
                .find(|k| k.id() == current)
                .expect("the current key is loaded (checked above)");
            let fresh = crate::store::WrappedRoot {
                kek_id: current.clone(),
                wrapped: crate::vault::wrap_fresh_root(kek)?,
            };
            store.insert_derivation_root(&fresh, crate::ids::now_ms()).await?;
            // Re-read: an instance starting at the same time may have stored its root first.
            store
                .derivation_root()
                .await?
                .context("the derivation root was stored but cannot be read back")?
        }
    };
    let vault = Vault::from_ring(keys, &current, &root.kek_id, &root.wrapped)?;
    tracing::info!(
        backend = store.backend(),
        master_key_id = %vault.current_key_id(),
        loaded_key_ids = ?vault.key_ids(),
        "storage ready"
    );
    Ok((store, Arc::new(vault)))
}

/// The next key of a rotation, if one is configured (`SEALFLOW_MASTER_KEY_NEXT` or its file).
pub fn load_next_key(storage: &StorageConfig) -> anyhow::Result<Option<MasterKey>> {
    Ok(match &storage.next_master_key {
        None => None,
        Some(MasterKeySource::Inline(text)) => Some(
            MasterKey::from_base64(text.expose_secret())
                .map_err(|e| anyhow::anyhow!("SEALFLOW_MASTER_KEY_NEXT: {e}"))?,
        ),
        Some(MasterKeySource::File(path) | MasterKeySource::Default(path)) => {
            Some(FileKeyProvider(path.clone()).load()?)
        }
    })
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
