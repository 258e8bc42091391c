-- Master-key rotation: which registered key seals new data (one row, so every instance of a fleet
-- agrees), when a key was retired, who is rewrapping, and the derivation root.
-- Same tables, columns and constraint names in the SQLite and PostgreSQL folders.

-- A retired key may no longer be used by anything; an instance holding only it refuses to start.
ALTER TABLE master_keys ADD COLUMN retired_at INTEGER;

-- `current_key_id` seals new secret values and wraps new data keys. `rewrap_owner` and
-- `rewrap_until` are the lease of the process rewrapping data keys under it: a server takes
-- over a rewrap only once the lease has lapsed (its holder died or stopped), so a fleet does
-- not repeat one another's work. `sealflow key rotate` takes the lease at once.
CREATE TABLE key_ring (
    singleton       INTEGER NOT NULL CHECK (singleton = 1),
    current_key_id  TEXT    NOT NULL REFERENCES master_keys (id),
    updated_at      INTEGER NOT NULL,
    rewrap_owner    TEXT,
    rewrap_until    INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT key_ring_pkey PRIMARY KEY (singleton)
);
-- A database made before rotation has exactly one key: it is the current one.
INSERT INTO key_ring (singleton, current_key_id, updated_at)
SELECT 1, id, created_at FROM master_keys ORDER BY created_at LIMIT 1;

-- A random 32-byte root the login-token and webhook-signing keys are derived from, wrapped by a
-- master key exactly like a data key (so rotation rewraps it and the derived keys stay the same).
-- Created on the first start after this migration.
CREATE TABLE derivation_root (
    singleton     INTEGER NOT NULL CHECK (singleton = 1),
    kek_id        TEXT    NOT NULL REFERENCES master_keys (id),
    wrapped_root  BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    CONSTRAINT derivation_root_pkey PRIMARY KEY (singleton)
);

-- Rewrap batches and `sealflow key status` look secrets up by the key wrapping them.
CREATE INDEX secrets_kek_idx ON secrets (kek_id);
