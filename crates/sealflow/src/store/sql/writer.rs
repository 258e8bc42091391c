//! Group commit: writer tasks that own the store's writes, commit many callers' changes in one
//! transaction (one fsync for all of them), and answer each caller only after that commit
//! returned.
//!
//! A write is a [`Job`]: a closure run on the writer's connection inside the open transaction,
//! wrapped in a savepoint so that one job's error rolls back that job alone. The batch is every
//! job queued when the writer becomes free (up to [`MAX_BATCH`]); under load the queue fills while
//! the previous commit's fsync runs, so batches grow with concurrency and a lone caller is never
//! kept waiting for company. SQLite gets one writer (`BEGIN IMMEDIATE`, so the lock is taken up
//! front instead of in a busy loop). PostgreSQL gets several writers with one job per transaction:
//! its row locks are taken in the order statements run, so two batches holding many callers'
//! locks (an idempotency key, a rate-limit row) could deadlock each other, within an instance or
//! across a fleet; concurrent single-job commits are grouped into one WAL flush by PostgreSQL
//! itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use sqlx::{Database, Executor, Pool};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::metrics::CommitMetrics;
use crate::store::{StoreError, StoreResult};

/// A boxed future, as the job closures return.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Most jobs in one transaction; bounds how long one commit holds the lock.
const MAX_BATCH: usize = 256;
/// Jobs waiting for a writer; callers beyond it wait to enqueue (backpressure).
const QUEUE: usize = 4096;

/// What a job tells the writer when it has run: whether to keep its changes, and how to answer
/// its caller once the commit's outcome is known.
pub(crate) struct Ran {
    keep: bool,
    answer: Box<dyn FnOnce(Result<(), String>) + Send>,
}

/// One caller's write, run on the writer's connection inside the batch transaction.
pub(crate) type Job<C> = Box<dyn for<'c> FnOnce(&'c mut C) -> BoxFuture<'c, Ran> + Send>;

/// The sending side of a backend's writers.
pub(crate) struct Writer<DB: Database> {
    queue: mpsc::Sender<Job<DB::Connection>>,
    /// Every writer task's commit latency and batch size.
    commits: CommitMetrics,
}

impl<DB: Database> Clone for Writer<DB> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            commits: self.commits.clone(),
        }
    }
}

impl<DB: Database> std::fmt::Debug for Writer<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl<DB: Database> Writer<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    /// Starts `writers` writer tasks on `pool`, each beginning its transactions with `begin` and
    /// putting at most `max_batch` jobs in one.
    pub(crate) fn start(pool: Pool<DB>, writers: usize, max_batch: usize, begin: &'static str) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let commits = CommitMetrics::default();
        for _ in 0..writers {
            tokio::spawn(run_writer(
                pool.clone(),
                rx.clone(),
                max_batch.clamp(1, MAX_BATCH),
                begin,
                commits.clone(),
            ));
        }
        Self { queue, commits }
    }

    /// The commit figures, for the application's metrics registry.
    pub(crate) fn commits(&self) -> &CommitMetrics {
        &self.commits
    }

    /// Runs `f` in the next batch and returns its result once the batch has committed; an error
    /// of `f` rolls back `f`'s changes only, a failed commit fails every job of the batch.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut DB::Connection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job<DB::Connection> = Box::new(move |conn| {
            Box::pin(async move {
                let result = f(conn).await;
                Ran {
                    keep: result.is_ok(),
                    answer: Box::new(move |commit| {
                        let _ = tx.send(match commit {
                            Ok(()) => result,
                            Err(e) => result.and(Err(StoreError::Commit(e))),
                        });
                    }),
                }
            })
        });
        self.queue
            .send(job)
            .await
            .map_err(|_| StoreError::Commit("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Commit("the writer stopped before committing".into()))?
    }
}

async fn run_writer<DB: Database>(
    pool: Pool<DB>,
    rx: Arc<Mutex<mpsc::Receiver<Job<DB::Connection>>>>,
    max_batch: usize,
    begin: &'static str,
    commits: CommitMetrics,
) where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        {
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut batch, max_batch).await == 0 {
                return; // every sender is gone: the store was dropped
            }
        }
        let (jobs, started) = (batch.len(), Instant::now());
        let answers = commit_batch(&pool, batch.drain(..), begin).await;
        // Recorded before anyone is answered, so a scrape after a write always includes it.
        commits.observe(jobs, started.elapsed());
        let (answers, outcome) = answers;
        for answer in answers {
            answer(outcome.clone());
        }
    }
}

/// Runs the jobs in one transaction; returns their answers and the commit's outcome.
async fn commit_batch<DB: Database>(
    pool: &Pool<DB>,
    jobs: impl Iterator<Item = Job<DB::Connection>>,
    begin: &'static str,
) -> (
    Vec<Box<dyn FnOnce(Result<(), String>) + Send>>,
    Result<(), String>,
)
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let jobs: Vec<_> = jobs.collect();
    let mut answers = Vec::with_capacity(jobs.len());
    let mut conn = match pool.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            let error = format!("no connection for the writer: {e}");
            tracing::error!(%error);
            // Jobs that never ran are answered with the failure without running them.
            let failed = jobs
                .into_iter()
                .map(|_| Box::new(|_| {}) as Box<dyn FnOnce(Result<(), String>) + Send>);
            return (failed.collect(), Err(error));
        }
    };
    let outcome: Result<(), sqlx::Error> = async {
        (&mut *conn).execute(begin).await?;
        if jobs.len() == 1 {
            // Alone in its transaction: no savepoint needed, a failed job rolls back the whole.
            let job = jobs.into_iter().next().expect("one job");
            let ran = job(&mut *conn).await;
            answers.push(ran.answer);
            let end = if ran.keep { "COMMIT" } else { "ROLLBACK" };
            (&mut *conn).execute(end).await?;
            return Ok(());
        }
        for job in jobs {
            (&mut *conn).execute("SAVEPOINT job").await?;
            let ran = job(&mut *conn).await;
            if !ran.keep {
                (&mut *conn).execute("ROLLBACK TO SAVEPOINT job").await?;
            }
            (&mut *conn).execute("RELEASE SAVEPOINT job").await?;
            answers.push(ran.answer);
        }
        (&mut *conn).execute("COMMIT").await?;
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => (answers, Ok(())),
        Err(e) => {
            tracing::error!(error = %e, "a batched commit failed; its writes are answered with an error");
            // The connection's transaction state is unknown: do not hand it back to the pool.
            let _ = (&mut *conn).execute("ROLLBACK").await;
            conn.close_on_drop();
            (answers, Err(format!("the batched commit failed: {e}")))
        }
    }
}
