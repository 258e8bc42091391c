-- What the terminal clients need: per-key credits, uploaded files, and the results of batch runs.
--
-- Credits: one run started by an API key is one credit (`credits_used`); a key with a
-- `credit_limit` is refused further runs once it is reached. A disabled key keeps `revoked_at`.
ALTER TABLE api_keys ADD COLUMN credit_limit INTEGER;
ALTER TABLE api_keys ADD COLUMN credits_used INTEGER NOT NULL DEFAULT 0;

-- An uploaded CSV/TXT file: its header (`columns_json`, a JSON array of names) and the column
-- that identifies a row. The rows are kept one per line of `run_file_rows`, so a batch run reads
-- them in pages and never holds a whole file.
CREATE TABLE run_files (
    id                 TEXT    NOT NULL,
    workspace_id       TEXT    NOT NULL REFERENCES workspaces (id),
    workflow_id        TEXT,
    filename           TEXT    NOT NULL,
    columns_json       TEXT    NOT NULL,
    identifier_type    TEXT    NOT NULL,
    identifier_column  TEXT    NOT NULL,
    row_count          INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    CONSTRAINT run_files_pkey PRIMARY KEY (id)
);
CREATE INDEX run_files_workspace_idx ON run_files (workspace_id, created_at);

CREATE TABLE run_file_rows (
    file_id      TEXT    NOT NULL REFERENCES run_files (id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    values_json  TEXT    NOT NULL,
    CONSTRAINT run_file_rows_pkey PRIMARY KEY (file_id, idx)
);

-- One row per file row a batch run has processed: the last step's (masked) output, or the error.
CREATE TABLE batch_items (
    run_id       TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('completed', 'failed')),
    output_json  TEXT,
    error        TEXT,
    CONSTRAINT batch_items_pkey PRIMARY KEY (run_id, idx)
);
