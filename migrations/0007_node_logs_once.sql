-- depends: 0006_stop_request_times
-- A node's log is stored once: the log of a node that ran is the data of its node_complete
-- event (`event_seq`), which the history reads; only a skipped node's log (it sends no event)
-- is stored here as JSON.

CREATE TABLE node_logs_once (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    node_id      TEXT NOT NULL,
    log          TEXT,
    event_seq    INTEGER,
    PRIMARY KEY (execution_id, position),
    CHECK ((log IS NULL) != (event_seq IS NULL))
);
INSERT INTO node_logs_once (execution_id, position, node_id, log)
    SELECT execution_id, position, node_id, log FROM node_logs;
DROP TABLE node_logs;
ALTER TABLE node_logs_once RENAME TO node_logs;
