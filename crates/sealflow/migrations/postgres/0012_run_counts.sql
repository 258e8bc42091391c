-- PostgreSQL twin of migrations/sqlite/0012_run_counts.sql.
--
-- Exact run totals without counting the history (`GET /api/workflows/runs` returns `total`).
-- Same tables, columns, index and trigger names in the SQLite and PostgreSQL folders.
--
-- The finished runs (completed, failed, cancelled) are counted in `run_counts` by triggers on
-- `runs`, in the statement that ends, inserts or deletes a run, so a total is exact in every
-- snapshot whoever wrote the row: this version, an older instance still running during a rolling
-- upgrade, an import, a manual fix. The unfinished runs (queued, running) are few and counted
-- live from `runs_active_idx`. A total is the sum of the matching counters plus the live count of
-- the matching unfinished runs (`list_runs` in store/sql/runs.rs).
--
-- `shard`: on PostgreSQL every end of one workflow's runs would update the same row, held until
-- the writing batch commits and taken in no fixed order with the batch's other rows, so two
-- instances' batches would wait on and deadlock over it. A status change adds to the shard of the
-- connection writing it (its backend pid modulo 16): each instance's writer has its own row, and
-- two instances share one only when their pids collide (then a deadlock is possible, and the job
-- that lost runs again, see `writer.rs`). A total sums the shards. SQLite has one writer anyway and
-- always uses shard 0, as bulk inserts and deletes (counted once per statement) do.

-- Other instances keep writing runs while this migrates: hold their writes until the triggers
-- exist, so no run ends between the count below and the triggers (reads go on).
LOCK TABLE runs IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE run_counts (
    workspace_id  TEXT    NOT NULL,
    workflow_id   TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('completed', 'failed', 'cancelled')),
    shard         BIGINT  NOT NULL,
    n             BIGINT  NOT NULL,
    CONSTRAINT run_counts_pkey PRIMARY KEY (workspace_id, workflow_id, status, shard)
);

-- The runs that ended before this migration.
INSERT INTO run_counts (workspace_id, workflow_id, status, shard, n)
SELECT workspace_id, workflow_id, status, 0, COUNT(*) FROM runs
WHERE status IN ('completed', 'failed', 'cancelled')
GROUP BY workspace_id, workflow_id, status;

-- A run's status change, one row at a time: -1 for its old final status, +1 for its new one (a
-- shard may go negative: only the sum over the shards means something).
CREATE FUNCTION runs_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN ('completed', 'failed', 'cancelled') THEN
        INSERT INTO run_counts (workspace_id, workflow_id, status, shard, n)
        VALUES (OLD.workspace_id, OLD.workflow_id, OLD.status, pg_backend_pid() % 16, -1)
        ON CONFLICT (workspace_id, workflow_id, status, shard) DO UPDATE SET n = run_counts.n + excluded.n;
    END IF;
    IF NEW.status IN ('completed', 'failed', 'cancelled') THEN
        INSERT INTO run_counts (workspace_id, workflow_id, status, shard, n)
        VALUES (NEW.workspace_id, NEW.workflow_id, NEW.status, pg_backend_pid() % 16, 1)
        ON CONFLICT (workspace_id, workflow_id, status, shard) DO UPDATE SET n = run_counts.n + excluded.n;
    END IF;
    RETURN NULL;
END;
$$;

-- Fires only when the status really changes to or from a final one: the step writes that set
-- `status = COALESCE(…, status)` cost one comparison, no function call.
CREATE TRIGGER runs_count_update AFTER UPDATE OF status ON runs FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status
      AND (OLD.status IN ('completed', 'failed', 'cancelled') OR NEW.status IN ('completed', 'failed', 'cancelled')))
EXECUTE FUNCTION runs_count_update();

-- Inserts and deletes, once per statement: an import or a purge of many runs adds to each
-- counter once. (Row by row, one transaction updating one counter row 300,000 times took minutes:
-- every update walks the versions the transaction left before it.) A run is inserted queued or
-- running by sealflow itself, so on that path the statement finds nothing to count.
CREATE FUNCTION runs_count_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO run_counts (workspace_id, workflow_id, status, shard, n)
        SELECT workspace_id, workflow_id, status, 0, COUNT(*) FROM runs_inserted
        WHERE status IN ('completed', 'failed', 'cancelled')
        GROUP BY workspace_id, workflow_id, status
        ON CONFLICT (workspace_id, workflow_id, status, shard) DO UPDATE SET n = run_counts.n + excluded.n;
    ELSE
        INSERT INTO run_counts (workspace_id, workflow_id, status, shard, n)
        SELECT workspace_id, workflow_id, status, 0, -COUNT(*) FROM runs_deleted
        WHERE status IN ('completed', 'failed', 'cancelled')
        GROUP BY workspace_id, workflow_id, status
        ON CONFLICT (workspace_id, workflow_id, status, shard) DO UPDATE SET n = run_counts.n + excluded.n;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER runs_count_insert AFTER INSERT ON runs REFERENCING NEW TABLE AS runs_inserted
FOR EACH STATEMENT EXECUTE FUNCTION runs_count_rows();

CREATE TRIGGER runs_count_delete AFTER DELETE ON runs REFERENCING OLD TABLE AS runs_deleted
FOR EACH STATEMENT EXECUTE FUNCTION runs_count_rows();

-- The unfinished runs only, with every column a total filters on, so their live count reads this
-- small index alone (never a row, never the finished history).
CREATE INDEX runs_active_idx ON runs (workspace_id, workflow_id, status) WHERE status IN ('queued', 'running');
