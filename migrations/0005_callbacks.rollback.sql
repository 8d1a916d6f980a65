ALTER TABLE executions DROP COLUMN callbacks;
