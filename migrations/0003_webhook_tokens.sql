-- depends: 0002_stop_requests
-- A workflow's webhook token, as a SHA-256 hash (the token itself is shown once, when made).

ALTER TABLE workflows ADD COLUMN webhook_token_hash TEXT;
