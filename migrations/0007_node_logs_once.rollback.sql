CREATE TABLE node_logs_twice (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    node_id      TEXT NOT NULL,
    log          TEXT NOT NULL,
    PRIMARY KEY (execution_id, position)
);
INSERT INTO node_logs_twice (execution_id, position, node_id, log)
    SELECT node_logs.execution_id, node_logs.position, node_logs.node_id,
           COALESCE(node_logs.log, execution_events.data)
    FROM node_logs LEFT JOIN execution_events
        ON execution_events.execution_id = node_logs.execution_id
        AND execution_events.seq = node_logs.event_seq
    WHERE COALESCE(node_logs.log, execution_events.data) IS NOT NULL;
DROP TABLE node_logs;
ALTER TABLE node_logs_twice RENAME TO node_logs;
