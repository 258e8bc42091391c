-- The audit trail: an append-only log of secret, API-key and master-key events, hash-chained per
-- workspace (chain = the workspace id) and in one global chain (chain = 'global').
-- Same tables, columns and constraint names in the SQLite and PostgreSQL folders.

-- One row per chain: its head (the last entry's seq and hash), which every append reads and moves
-- in the appending transaction (PostgreSQL locks it FOR UPDATE, so appends to one chain take
-- turns across a fleet), and its checkpoint: the seq and hash of the last entry pruned (0 and the
-- genesis hash before any prune), from which `sealflow audit verify` starts.
CREATE TABLE audit_chains (
    chain            TEXT    NOT NULL,
    head_seq         BIGINT  NOT NULL,
    head_hash        TEXT    NOT NULL,
    checkpoint_seq   BIGINT  NOT NULL,
    checkpoint_hash  TEXT    NOT NULL,
    checkpoint_at    BIGINT,
    CONSTRAINT audit_chains_pkey PRIMARY KEY (chain)
);

-- One event. `hash` is SHA-256 over a canonical encoding of every other column, `prev_hash` the
-- previous entry's hash. No column ever holds a secret value or anything derived from one.
CREATE TABLE audit_entries (
    chain           TEXT    NOT NULL,
    seq             BIGINT  NOT NULL,
    at              BIGINT  NOT NULL,
    kind            TEXT    NOT NULL,
    actor           TEXT    NOT NULL,
    secret_name     TEXT,
    secret_version  BIGINT,
    run_id          TEXT,
    step_id         TEXT,
    host            TEXT,
    outcome         TEXT,
    subject         TEXT,
    detail          TEXT,
    prev_hash       TEXT    NOT NULL,
    hash            TEXT    NOT NULL,
    CONSTRAINT audit_entries_pkey PRIMARY KEY (chain, seq)
);
CREATE INDEX audit_entries_secret_idx ON audit_entries (chain, secret_name, seq);
CREATE INDEX audit_entries_run_idx ON audit_entries (chain, run_id, seq);
CREATE INDEX audit_entries_at_idx ON audit_entries (chain, at);
