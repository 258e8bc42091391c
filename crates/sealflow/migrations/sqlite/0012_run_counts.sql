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
CREATE TABLE run_counts (
    workspace_id  TEXT    NOT NULL,
    workflow_id   TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('completed', 'failed', 'cancelled')),
    shard         INTEGER NOT NULL,
    n             BIGINT  NOT NULL,
    CONSTRAINT run_counts_pkey PRIMARY KEY (workspace_id, workflow_id, status, shard)
);

-- The runs that ended before this migration (its transaction holds SQLite's write lock from the
-- CREATE TABLE on, so no run ends between this count and the triggers).
INSERT INTO run_counts (workspace_id, workflow_id, status, shard, n)
SELECT workspace_id, workflow_id, status, 0, COUNT(*) FROM runs
WHERE status IN ('completed', 'failed', 'cancelled')
GROUP BY workspace_id, workflow_id, status;

CREATE TRIGGER runs_count_insert AFTER INSERT ON runs
WHEN NEW.status IN ('completed', 'failed', 'cancelled')
BEGIN
    INSERT INTO run_counts (workspace_id, workflow_id, status, shard, n)
    VALUES (NEW.workspace_id, NEW.workflow_id, NEW.status, 0, 1)
    ON CONFLICT (workspace_id, workflow_id, status, shard) DO UPDATE SET n = n + 1;
END;

-- Fires only when the status really changes to or from a final one: the step writes that set
-- `status = COALESCE(…, status)` cost one comparison.
CREATE TRIGGER runs_count_update AFTER UPDATE OF status ON runs
WHEN OLD.status IS NOT NEW.status
 AND (OLD.status IN ('completed', 'failed', 'cancelled') OR NEW.status IN ('completed', 'failed', 'cancelled'))
BEGIN
    UPDATE run_counts SET n = n - 1
    WHERE workspace_id = OLD.workspace_id AND workflow_id = OLD.workflow_id AND status = OLD.status AND shard = 0;
    INSERT INTO run_counts (workspace_id, workflow_id, status, shard, n)
    SELECT NEW.workspace_id, NEW.workflow_id, NEW.status, 0, 1
    WHERE NEW.status IN ('completed', 'failed', 'cancelled')
    ON CONFLICT (workspace_id, workflow_id, status, shard) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER runs_count_delete AFTER DELETE ON runs
WHEN OLD.status IN ('completed', 'failed', 'cancelled')
BEGIN
    UPDATE run_counts SET n = n - 1
    WHERE workspace_id = OLD.workspace_id AND workflow_id = OLD.workflow_id AND status = OLD.status AND shard = 0;
END;

-- The unfinished runs only, with every column a total filters on, so their live count reads this
-- small index alone (never a row, never the finished history).
CREATE INDEX runs_active_idx ON runs (workspace_id, workflow_id, status) WHERE status IN ('queued', 'running');
