DROP INDEX executions_ended;
DROP INDEX sessions_by_expiry;
