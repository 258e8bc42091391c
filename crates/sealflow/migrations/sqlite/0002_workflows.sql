-- Workflow definitions and their version history. The current definition lives in `workflows`;
-- every version ever saved (including the current one) is kept in `workflow_versions`.

CREATE TABLE workflows (
    id             TEXT    NOT NULL,
    workspace_id   TEXT    NOT NULL REFERENCES workspaces (id),
    name           TEXT    NOT NULL,
    description    TEXT    NOT NULL DEFAULT '',
    status         TEXT    NOT NULL CHECK (status IN ('draft', 'active', 'paused')),
    trigger_json   TEXT    NOT NULL,
    steps_json     TEXT    NOT NULL,
    template_id    TEXT,
    version        INTEGER NOT NULL CHECK (version >= 1),
    webhook_token  TEXT,
    -- Creation order within a workspace, so "newest first" is exact even within one millisecond.
    seq            INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    CONSTRAINT workflows_pkey PRIMARY KEY (id),
    CONSTRAINT workflows_webhook_token_key UNIQUE (webhook_token)
);
CREATE INDEX workflows_workspace_seq_idx ON workflows (workspace_id, seq DESC);

CREATE TABLE workflow_versions (
    workflow_id   TEXT    NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    status        TEXT    NOT NULL,
    trigger_json  TEXT    NOT NULL,
    steps_json    TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    CONSTRAINT workflow_versions_pkey PRIMARY KEY (workflow_id, version)
);
