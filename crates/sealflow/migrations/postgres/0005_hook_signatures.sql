-- Webhook signatures already accepted, kept until their timestamp leaves the 5-minute window, so a
-- captured signed call cannot start a second run. In the database (not in process memory) so the
-- refusal holds across every instance sharing it.

CREATE TABLE hook_signatures (
    workflow_id  TEXT   NOT NULL,
    signature    TEXT   NOT NULL,
    expires_at   BIGINT NOT NULL,
    CONSTRAINT hook_signatures_pkey PRIMARY KEY (workflow_id, signature)
);

CREATE INDEX hook_signatures_expires_idx ON hook_signatures (expires_at);
