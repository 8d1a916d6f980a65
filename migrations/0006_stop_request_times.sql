-- depends: 0005_callbacks
-- When a Stop was asked of another process: its Stop latency counts from then.

ALTER TABLE executions ADD COLUMN stop_requested_at TEXT;
