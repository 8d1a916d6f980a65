-- depends: 0002_stop_requests
-- A workflow's webhook token, as a SHA-256 hash (the token itself is shown once, when made),
-- and the recent calls of each workflow's webhook, counted against its rate by every process.

ALTER TABLE workflows ADD COLUMN webhook_token_hash TEXT;

CREATE TABLE webhook_calls (
    workflow_id TEXT NOT NULL,
    at          REAL NOT NULL  -- seconds since the epoch
);
CREATE INDEX webhook_calls_by_workflow ON webhook_calls (workflow_id, at);
