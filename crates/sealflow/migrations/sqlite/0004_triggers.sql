-- Schedule firings: one row per (workflow, tick) ever fired. The primary key is what makes a tick
-- fire exactly once across every instance sharing the database.

CREATE TABLE schedule_firings (
    workflow_id  TEXT   NOT NULL,
    tick_at      BIGINT NOT NULL,
    run_id       TEXT   NOT NULL,
    fired_at     BIGINT NOT NULL,
    CONSTRAINT schedule_firings_pkey PRIMARY KEY (workflow_id, tick_at)
);

CREATE INDEX workflows_status_idx ON workflows (status);
