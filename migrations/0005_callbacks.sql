-- depends: 0004_ended_executions
-- The tries of a background run's completion callback, as a JSON array, in the order made.

ALTER TABLE executions ADD COLUMN callbacks TEXT;
