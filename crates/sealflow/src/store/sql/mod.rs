//! The one SQL store behind every backend: a [`Db`] holding a SQLite or a PostgreSQL pool, and each
//! repository written once against it.
//!
//! Statements use `$n` placeholders, which SQLite accepts too, and the same tables and columns on
//! both backends; [`on_db!`] compiles one body for each pool, so a statement and its row mapping
//! exist once. Code branches on the `pg` flag only where the dialects really differ: `seq` (SQLite
//! takes `MAX(seq) + 1` under its single writer, PostgreSQL an identity column), the secret-count
//! limit (an advisory lock on PostgreSQL), and the claim (`FOR UPDATE SKIP LOCKED`).
//!
//! SQLite runs `synchronous = FULL`: an acknowledged write must survive a crash of the machine, not
//! only of the process.

mod accounts;
mod rows;
mod runs;
mod workflows;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use super::{Store, StoreError, StoreResult};

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// PostgreSQL connections per instance; a fleet multiplies this, so keep it well under the
/// server's `max_connections`.
const PG_POOL_SIZE: u32 = 10;
const SQLITE_POOL_SIZE: u32 = 8;

/// The pool of one backend.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

/// Runs one body against whichever pool `$store.db` holds: `on_db!(self, |pool| …)`, or
/// `on_db!(self, |pool, pg| …)` to also get `pg: bool` for a dialect branch. The body is compiled
/// once per backend, so it may use `pool` (and transactions begun on it) with any sqlx call.
macro_rules! on_db {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::sql::Db::Sqlite($pool) => $body,
            $crate::store::sql::Db::Pg($pool) => $body,
        }
    };
    ($store:expr, |$pool:ident, $pg:ident| $body:expr) => {
        match &$store.db {
            $crate::store::sql::Db::Sqlite($pool) => {
                let $pg = false;
                $body
            }
            $crate::store::sql::Db::Pg($pool) => {
                let $pg = true;
                $body
            }
        }
    };
}
pub(crate) use on_db;

/// A store over SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    db: Db,
}

/// The store opened on a SQLite file (the same type as [`PgStore`]; the names say which `open`).
pub type SqliteStore = SqlStore;
/// The store opened on a PostgreSQL database.
pub type PgStore = SqlStore;

impl SqlStore {
    /// Opens `sqlite://PATH`, creating the file's directory and the file, then migrates.
    pub async fn open_sqlite(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(SQLITE_POOL_SIZE)
            .connect_with(options)
            .await?;
        SQLITE_MIGRATOR.run(&pool).await?;
        Ok(Self { db: Db::Sqlite(pool) })
    }

    /// Connects to `postgres://…` and migrates. sqlx's migrator takes an advisory lock, so
    /// instances starting together migrate once.
    pub async fn open_pg(url: &str) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(PG_POOL_SIZE)
            .connect_with(options)
            .await?;
        PG_MIGRATOR.run(&pool).await?;
        Ok(Self { db: Db::Pg(pool) })
    }

    /// The backend's pool, for tests that inspect or tamper with rows directly.
    pub fn db(&self) -> &Db {
        &self.db
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        on_db!(self, |pool| sqlx::query("SELECT 1").execute(pool).await.map(drop))?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Pg(_) => "postgres",
        }
    }
}
