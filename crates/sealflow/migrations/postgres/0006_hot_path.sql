-- PostgreSQL twin of migrations/sqlite/0006_hot_path.sql.
--
-- The hot path: claim counting, and indexes for the run list's filters.
--
-- `claims` counts the claims of a run since it last recorded a step result; a run whose worker
-- keeps dying mid-step is failed once it exceeds the configured attempts instead of looping.
ALTER TABLE runs ADD COLUMN claims BIGINT NOT NULL DEFAULT 0;

-- `GET /api/workflows/runs?workflow_id=` and `?status=`: newest first within the filter.
CREATE INDEX runs_workflow_seq_idx ON runs (workspace_id, workflow_id, seq DESC);
CREATE INDEX runs_status_seq_idx ON runs (workspace_id, status, seq DESC);
