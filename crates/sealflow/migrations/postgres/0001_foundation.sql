-- PostgreSQL twin of migrations/sqlite/0001_foundation.sql: same tables, columns and constraint
-- names; BIGINT for epoch milliseconds and counters (Rust i64), BYTEA for blobs.
--
-- Foundation schema: workspaces, API keys, the master-key check values and encrypted secrets.
-- Timestamps are integer epoch milliseconds (UTC); ids are prefixed random text.

CREATE TABLE workspaces (
    id          TEXT    NOT NULL,
    slug        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    CONSTRAINT workspaces_pkey PRIMARY KEY (id),
    CONSTRAINT workspaces_slug_key UNIQUE (slug)
);

-- One row per master key (KEK) that has ever encrypted data here. `check_value` is a constant
-- sealed under that key, so a wrong key is detected at start instead of at first use.
CREATE TABLE master_keys (
    id           TEXT    NOT NULL,
    check_value  BYTEA   NOT NULL,
    created_at   BIGINT  NOT NULL,
    CONSTRAINT master_keys_pkey PRIMARY KEY (id)
);

CREATE TABLE api_keys (
    id              TEXT    NOT NULL,
    workspace_id    TEXT    NOT NULL REFERENCES workspaces (id),
    name            TEXT    NOT NULL,
    role            TEXT    NOT NULL CHECK (role IN ('admin', 'member', 'readonly')),
    key_hash        TEXT    NOT NULL,
    key_preview     TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    last_used       BIGINT,
    total_requests  BIGINT  NOT NULL DEFAULT 0,
    revoked_at      BIGINT,
    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_hash_key UNIQUE (key_hash)
);
CREATE INDEX api_keys_workspace_idx ON api_keys (workspace_id);

-- Envelope-encrypted secret values: `ciphertext` is sealed with a per-version data key, and
-- `wrapped_dek` is that data key sealed with the master key `kek_id`. Both bind
-- (workspace_id, name, version) as associated data.
CREATE TABLE secrets (
    workspace_id   TEXT    NOT NULL REFERENCES workspaces (id),
    name           TEXT    NOT NULL,
    version        BIGINT  NOT NULL CHECK (version >= 1),
    kek_id         TEXT    NOT NULL,
    wrapped_dek    BYTEA   NOT NULL,
    ciphertext     BYTEA   NOT NULL,
    allowed_hosts  TEXT,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    CONSTRAINT secrets_pkey PRIMARY KEY (workspace_id, name)
);
