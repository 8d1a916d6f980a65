-- FlowTrux schema. Portable SQL: the same file applies to SQLite and PostgreSQL.
-- Timestamps are UTC ISO-8601 text ('2026-11-28T13:45:00.123Z'), which sorts in time order.
-- JSON documents are stored as text.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

-- A session's id is only ever in the cookie; the table keeps its SHA-256.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE memberships (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'operator', 'viewer')),
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE workflows (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    definition   TEXT NOT NULL,  -- JSON {nodes, edges}, as submitted
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX workflows_by_workspace ON workflows (workspace_id, updated_at);

-- History outlives the workflow: no foreign key on workflow_id.
CREATE TABLE executions (
    id            TEXT PRIMARY KEY,
    workflow_id   TEXT NOT NULL,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    workflow_name TEXT NOT NULL,
    status        TEXT NOT NULL
        CHECK (status IN ('RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED', 'INTERRUPTED')),
    trigger       TEXT NOT NULL,
    background    BOOLEAN NOT NULL DEFAULT FALSE,
    trigger_data  TEXT NOT NULL,
    output        TEXT,
    error         TEXT,
    started_by    TEXT,
    process_id    TEXT NOT NULL,  -- the process that runs it (see processes)
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    duration_ms   INTEGER
);
CREATE INDEX executions_by_workflow ON executions (workflow_id, started_at);
CREATE INDEX executions_by_workspace ON executions (workspace_id, started_at);
CREATE INDEX executions_running ON executions (process_id) WHERE status = 'RUNNING';

-- What the stream sent, in order: `seq` is the SSE `id:`.
CREATE TABLE execution_events (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    name         TEXT NOT NULL,
    data         TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

-- The history: one final log per node that ran or was skipped, in the order they ended.
CREATE TABLE node_logs (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    node_id      TEXT NOT NULL,
    log          TEXT NOT NULL,
    PRIMARY KEY (execution_id, position)
);

-- Each serving process holds a lease; the runs of a process whose lease lapsed are INTERRUPTED.
CREATE TABLE processes (
    id           TEXT PRIMARY KEY,
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);
