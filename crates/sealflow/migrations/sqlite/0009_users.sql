-- People who sign in: users, their role in each workspace, and dashboard sessions.
-- Same tables, columns and constraint names in the SQLite and PostgreSQL folders.

-- `email` is stored lowercased, so the unique constraint is case-insensitive in effect.
-- `password_hash` is a PHC string (argon2id, parameters inside it).
CREATE TABLE users (
    id             TEXT    NOT NULL,
    email          TEXT    NOT NULL,
    password_hash  TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_email_key UNIQUE (email)
);

-- A user may belong to several workspaces, with one role in each.
CREATE TABLE memberships (
    user_id       TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id  TEXT    NOT NULL REFERENCES workspaces (id),
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'member', 'readonly')),
    created_at    BIGINT  NOT NULL,
    CONSTRAINT memberships_pkey PRIMARY KEY (user_id, workspace_id)
);
CREATE INDEX memberships_workspace_idx ON memberships (workspace_id);

-- Dashboard sessions: only the SHA-256 of the cookie's random token is kept. `workspace_id` is
-- the workspace the session currently acts in (the switcher changes it). Signing out deletes
-- the row; expired rows are refused and swept on the next sign-in.
CREATE TABLE sessions (
    token_hash    TEXT    NOT NULL,
    user_id       TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id  TEXT    NOT NULL REFERENCES workspaces (id),
    csrf_token    TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    CONSTRAINT sessions_pkey PRIMARY KEY (token_hash)
);
CREATE INDEX sessions_expiry_idx ON sessions (expires_at);
