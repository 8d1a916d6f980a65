-- depends: 0001_init
-- A Stop sent to a process that does not run the execution: the process that runs it reads the
-- request when it next renews its lease, and cancels the run.

ALTER TABLE executions ADD COLUMN stop_requested BOOLEAN NOT NULL DEFAULT FALSE;
