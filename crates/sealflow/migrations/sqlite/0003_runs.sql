-- Runs, their step results, and the shared counters behind the run rate limit.
--
-- A run is claimed by a worker with a lease (lease_owner, lease_expires_at); a lease that is not
-- renewed expires and another worker takes the run over. `wake_at` is when the run may next be
-- worked on: its creation time, or the end of a delay step it is parked on.

CREATE TABLE runs (
    id                TEXT    NOT NULL,
    workspace_id      TEXT    NOT NULL REFERENCES workspaces (id),
    workflow_id       TEXT    NOT NULL,
    workflow_name     TEXT    NOT NULL,
    workflow_version  INTEGER NOT NULL,
    -- The trigger and steps the run started with (runs pin their version).
    definition_json   TEXT    NOT NULL,
    status            TEXT    NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    trigger_type      TEXT    NOT NULL CHECK (trigger_type IN ('manual', 'webhook', 'schedule')),
    input_json        TEXT    NOT NULL,
    error             TEXT,
    next_step         INTEGER NOT NULL DEFAULT 0,
    wake_at           INTEGER NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    idempotency_key   TEXT,
    request_hash      TEXT,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    completed_at      INTEGER,
    seq               INTEGER NOT NULL,
    CONSTRAINT runs_pkey PRIMARY KEY (id)
);
CREATE UNIQUE INDEX runs_idempotency_key ON runs (workspace_id, workflow_id, idempotency_key);
CREATE INDEX runs_workspace_seq_idx ON runs (workspace_id, seq DESC);
CREATE INDEX runs_claimable_idx ON runs (wake_at) WHERE status IN ('queued', 'running');

CREATE TABLE run_steps (
    run_id        TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,
    step_id       TEXT    NOT NULL,
    step_type     TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'skipped', 'cancelled')),
    output_json   TEXT,
    error         TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    started_at    INTEGER,
    completed_at  INTEGER,
    CONSTRAINT run_steps_pkey PRIMARY KEY (run_id, idx)
);

-- Fixed one-minute windows per caller; the count is incremented atomically by every instance.
CREATE TABLE rate_limit_windows (
    bucket        TEXT    NOT NULL,
    window_start  INTEGER NOT NULL,
    hits          INTEGER NOT NULL,
    CONSTRAINT rate_limit_windows_pkey PRIMARY KEY (bucket, window_start)
);
