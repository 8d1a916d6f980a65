-- depends: 0003_webhooks
-- Retention finds the ended executions that are old enough by when they ended, and expired
-- sessions by when they expire.

CREATE INDEX executions_ended ON executions (finished_at) WHERE status != 'RUNNING';
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
