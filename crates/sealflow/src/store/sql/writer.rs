//! Group commit: the writer task that owns a store's writes, commits many callers' changes in one
//! transaction (one commit, one fsync, for all of them), and answers each caller only after that
//! commit returned.
//!
//! A write is a [`Job`]: a closure run on the writer's connection inside the open transaction.
//! The batch is every job queued when the writer becomes free (up to [`MAX_BATCH`]); under load
//! the queue fills while the previous commit runs, so batches grow with concurrency and a lone
//! caller is never kept waiting for company.
//!
//! One job's error must not undo the others. Jobs run without savepoints: a savepoint pair costs
//! two statements per job (on SQLite two hand-offs to its connection thread and a statement
//! journal; on PostgreSQL two round trips), which was half the writer's statements and about
//! 0.7 ms of CPU per run at c=16. Instead, when a job fails the batch is rolled back (on
//! PostgreSQL an error has aborted the transaction anyway), that job is answered with its error,
//! and the other jobs run again in the next batch; jobs are `Clone` so that they can. Failures
//! are rare on the hot path.
//!
//! Each store has one writer. SQLite has one writer at a time anyway, and `BEGIN IMMEDIATE` takes
//! its lock up front instead of in a busy loop. On PostgreSQL one writer per instance means the
//! hot rows every run touches (the workspace's audit chain head, a hook's rate-limit window) are
//! locked once per batch and never contended within the instance: with one job per transaction
//! on six connections, every run waited in line for the chain head's lock (11.8 ms on average at
//! c=16). Across a fleet, two instances' batches can still take such rows in opposite orders and
//! deadlock; PostgreSQL then cancels one statement, and the job that lost runs again in the next
//! batch, after this one's rollback has released its locks.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use sqlx::pool::PoolConnection;
use sqlx::{Database, Executor, Pool};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::CommitMetrics;
use crate::store::{AuditEvent, StoreError, StoreResult};

/// A boxed future, as the job closures return.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Most jobs in one transaction; bounds how long one commit holds the lock.
const MAX_BATCH: usize = 256;
/// Jobs waiting for a writer; callers beyond it wait to enqueue (backpressure).
const QUEUE: usize = 4096;
/// Runs of a job that keeps losing deadlocks before its caller gets the error.
const MAX_TRIES: u32 = 5;

/// What a job tells the writer when it has run: whether to keep its changes, and how to answer
/// its caller once the commit's outcome is known.
pub(crate) struct Ran {
    keep: bool,
    /// The job lost a deadlock (or a serialization conflict): run it again in the next batch
    /// instead of answering.
    again: bool,
    answer: Answer,
}

type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;
/// One run of a job's closure.
type Attempt<C> = Box<dyn for<'c> FnMut(&'c mut C, &'c mut Batch) -> BoxFuture<'c, Ran> + Send>;
/// What the writer runs before each commit: writes back what the jobs left in the [`Batch`].
pub(crate) type Finish<C> = for<'c> fn(&'c mut C, &'c mut Batch) -> BoxFuture<'c, Result<(), sqlx::Error>>;

/// What the jobs of one transaction leave for its end, written by the backend's [`Finish`] just
/// before the commit instead of by each job. A rolled-back batch drops it with everything else.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Audit entries to append. Every job's entries are appended together at the end, so each
    /// chain's head (a row every run of a workspace moves) is moved once per batch
    /// and, on PostgreSQL, locked last and in chain order: a batch never waits for another's
    /// row while holding a head, so heads take no part in a deadlock across instances.
    pub(crate) events: Vec<AuditEvent>,
    /// Run-end notifications to send (PostgreSQL; delivered when the commit lands).
    pub(crate) notices: Vec<String>,
    /// Each audit chain's head (seq, hash) as this writer's last commit left it, kept from batch
    /// to batch so that appending needs no read of it first (see `audit::append_entries!`; a
    /// head another writer moved since is read again). Emptied when a commit fails.
    pub(crate) heads: std::collections::HashMap<String, (i64, String)>,
}

/// One caller's write, run on the writer's connection inside the batch transaction; callable
/// again, when another job's failure rolled the batch back or this one lost a deadlock.
pub(crate) struct Job<C> {
    attempt: Attempt<C>,
    tries: u32,
    /// Where the job goes in its batch (see [`Writer::write`]).
    order: Option<String>,
}

/// The sending side of a store's writer.
pub(crate) struct Writer<DB: Database> {
    queue: mpsc::Sender<Job<DB::Connection>>,
    /// The writer's commit latency and batch size.
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
    /// Starts the writer on a thread of its own, with a pool of one connection that `connect`
    /// opens there, beginning its transactions with `begin` and running `finish` before each
    /// commit; fails if the connection cannot be opened.
    ///
    /// Why a thread: the writer is the one path every run goes through several times, and each
    /// of its statements waits for an answer (a round trip, or a hand-off to SQLite's thread).
    /// On the server's runtime the writer task, once its answer had come, queued behind the
    /// HTTP handlers and workers on two cores before it ran again; on its own current-thread
    /// runtime it runs as soon as the answer arrives, and its PostgreSQL connection's I/O is
    /// driven there too, not by the busy runtime.
    pub(crate) async fn start<C>(
        connect: C,
        begin: &'static str,
        finish: Finish<DB::Connection>,
    ) -> StoreResult<Self>
    where
        C: FnOnce() -> BoxFuture<'static, Result<Pool<DB>, sqlx::Error>> + Send + 'static,
    {
        let (queue, rx) = mpsc::channel(QUEUE);
        let commits = CommitMetrics::default();
        let (opened_tx, opened) = oneshot::channel();
        let figures = commits.clone();
        std::thread::Builder::new()
            .name("sealflow-writer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = opened_tx
                            .send(Err(StoreError::Commit(format!("no runtime for the writer: {e}"))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let pool = match connect().await {
                        Ok(pool) => pool,
                        Err(e) => {
                            let _ = opened_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = opened_tx.send(Ok(()));
                    run_writer(pool.clone(), rx, begin, finish, figures).await;
                    pool.close().await;
                });
            })
            .map_err(|e| StoreError::Commit(format!("cannot start the writer thread: {e}")))?;
        opened
            .await
            .map_err(|_| StoreError::Commit("the writer thread stopped while opening".into()))??;
        Ok(Self { queue, commits })
    }

    /// The commit figures, for the application's metrics registry.
    pub(crate) fn commits(&self) -> &CommitMetrics {
        &self.commits
    }

    /// Runs `f` in the next batch and returns its result once the batch has committed; an error
    /// of `f` rolls back `f`'s changes only, a failed commit fails every job of the batch. `f` is
    /// `Clone` so that it can run again when another job's failure rolled its batch back.
    ///
    /// `order`: a job that locks a row many callers share (a rate-limit window) names it, and a
    /// batch runs such jobs first, sorted by that name, then the others in arrival order. Every
    /// batch then takes those rows in the same order, so two instances' batches cannot deadlock
    /// on them.
    pub(crate) async fn write<T, F>(&self, order: Option<String>, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut DB::Connection, &'c mut Batch) -> BoxFuture<'c, StoreResult<T>>
            + Clone
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        // Shared by the attempts; the one that is answered takes it.
        let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
        let attempt = higher_ranked(move |conn: &mut DB::Connection, batch: &mut Batch| {
            let f = f.clone();
            let tx = tx.clone();
            Box::pin(async move {
                let result = f(conn, batch).await;
                Ran {
                    keep: result.is_ok(),
                    again: result.as_ref().is_err_and(StoreError::is_lost_conflict),
                    answer: Box::new(move |commit| {
                        let Some(tx) = tx.lock().unwrap_or_else(|p| p.into_inner()).take() else {
                            return;
                        };
                        let _ = tx.send(match commit {
                            Ok(()) => result,
                            Err(e) => result.and(Err(StoreError::Commit(e))),
                        });
                    }),
                }
            }) as BoxFuture<'_, Ran>
        });
        let job = Job {
            attempt: Box::new(attempt),
            tries: 1,
            order,
        };
        self.queue
            .send(job)
            .await
            .map_err(|_| StoreError::Commit("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Commit("the writer stopped before committing".into()))?
    }
}

/// Makes the compiler infer a job attempt's signature as generic over the connection's lifetime.
fn higher_ranked<C, G>(attempt: G) -> G
where
    G: for<'c> FnMut(&'c mut C, &'c mut Batch) -> BoxFuture<'c, Ran>,
{
    attempt
}

async fn run_writer<DB: Database>(
    pool: Pool<DB>,
    mut rx: mpsc::Receiver<Job<DB::Connection>>,
    begin: &'static str,
    finish: Finish<DB::Connection>,
    commits: CommitMetrics,
) where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut heads = std::collections::HashMap::new();
    // The writer keeps its connection: sqlx pings a connection each time it goes back to the
    // pool, a hand-off (SQLite) or round trip (PostgreSQL) per commit.
    let mut held = None;
    loop {
        // Jobs to run again go first; they never wait for new work to arrive.
        if batch.is_empty() {
            if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return; // every sender is gone: the store was dropped
            }
        } else {
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        // Named jobs first, by name (`None` sorts first, hence the flag); stable for the rest.
        batch.sort_by(|a, b| (a.order.is_none(), &a.order).cmp(&(b.order.is_none(), &b.order)));
        let (jobs, started) = (batch.len(), Instant::now());
        let done = commit_batch(
            &pool,
            &mut held,
            std::mem::take(&mut batch),
            &mut heads,
            begin,
            finish,
        )
        .await;
        // Recorded before anyone is answered, so a scrape after a write always includes it.
        commits.observe(jobs, started.elapsed());
        for answer in done.answers {
            answer(done.outcome.clone());
        }
        batch = done.again;
    }
}

/// What a batch came to.
struct Done<C> {
    /// Answers of the jobs settled by this batch, to call with the outcome.
    answers: Vec<Answer>,
    /// The commit's outcome (`Ok` also when nothing was committed because every job failed).
    outcome: Result<(), String>,
    /// Jobs to run in the next batch; nothing of them is stored.
    again: Vec<Job<C>>,
}

/// The job whose failure ended a batch: answered with its error, or (it lost a deadlock) run
/// again in the next batch, its attempt's answer set aside.
enum Stopped<C> {
    Failed(Answer),
    Again(Job<C>, Answer),
}

/// Runs the jobs in one transaction and commits it.
async fn commit_batch<DB: Database>(
    pool: &Pool<DB>,
    held: &mut Option<PoolConnection<DB>>,
    jobs: Vec<Job<DB::Connection>>,
    heads: &mut std::collections::HashMap<String, (i64, String)>,
    begin: &'static str,
    finish: Finish<DB::Connection>,
) -> Done<DB::Connection>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let conn = match held {
        Some(conn) => conn,
        None => match pool.acquire().await {
            Ok(conn) => held.insert(conn),
            Err(e) => {
                let error = format!("no connection for the writer: {e}");
                tracing::error!(%error);
                // The jobs are dropped without running, which their callers see as a failed write.
                return Done {
                    answers: Vec::new(),
                    outcome: Err(error),
                    again: Vec::new(),
                };
            }
        },
    };
    // Jobs whose changes are in the open transaction, with their answers.
    let mut kept: Vec<(Job<DB::Connection>, Answer)> = Vec::with_capacity(jobs.len());
    // The job whose failure rolled the batch back, if one did.
    let mut stopped: Option<Stopped<DB::Connection>> = None;
    let mut jobs = jobs.into_iter();
    // The heads go back only if they are what the database holds: after a commit, or a
    // rollback before `finish` moved any.
    let mut shared = Batch {
        heads: std::mem::take(heads),
        ..Batch::default()
    };
    let outcome: Result<bool, sqlx::Error> = async {
        (&mut *conn).execute(begin).await?;
        for mut job in jobs.by_ref() {
            let ran = (job.attempt)(&mut *conn, &mut shared).await;
            if ran.keep {
                kept.push((job, ran.answer));
                continue;
            }
            stopped = Some(if ran.again && job.tries < MAX_TRIES {
                job.tries += 1;
                Stopped::Again(job, ran.answer)
            } else {
                Stopped::Failed(ran.answer)
            });
            // Undo the batch; the jobs that ran before this one and those after it run again.
            (&mut *conn).execute("ROLLBACK").await?;
            return Ok(false);
        }
        finish(&mut *conn, &mut shared).await?;
        (&mut *conn).execute("COMMIT").await?;
        Ok(true)
    }
    .await;
    if outcome.is_ok() {
        *heads = std::mem::take(&mut shared.heads);
    }
    match outcome {
        Ok(true) => Done {
            answers: kept.into_iter().map(|(_, answer)| answer).collect(),
            outcome: Ok(()),
            again: Vec::new(),
        },
        Ok(false) => {
            // Rolled back: what had run, and what had not, runs again; their set-aside answers
            // are dropped unused (the next attempt answers).
            let mut answers = Vec::new();
            let mut again: Vec<_> = kept.into_iter().map(|(job, _)| job).collect();
            match stopped {
                Some(Stopped::Failed(answer)) => answers.push(answer),
                Some(Stopped::Again(job, _)) => again.push(job),
                None => {}
            }
            again.extend(jobs);
            Done {
                answers,
                outcome: Ok(()),
                again,
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "a batched commit failed; its writes are answered with an error");
            // The connection's transaction state is unknown: close it, and take a new one next.
            let _ = (&mut **conn).execute("ROLLBACK").await;
            if let Some(mut conn) = held.take() {
                conn.close_on_drop();
            }
            // Nothing of this batch is stored: every job that ran is answered with the failure,
            // and those that never ran are dropped, which fails them too.
            let mut answers: Vec<Answer> = kept.into_iter().map(|(_, answer)| answer).collect();
            answers.extend(stopped.map(|s| match s {
                Stopped::Failed(answer) | Stopped::Again(_, answer) => answer,
            }));
            Done {
                answers,
                outcome: Err(format!("the batched commit failed: {e}")),
                again: Vec::new(),
            }
        }
    }
}
