ALTER TABLE executions DROP COLUMN stop_requested_at;
