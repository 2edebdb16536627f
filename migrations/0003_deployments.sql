-- Agents and tools deployed through the API (not from the agents
-- directory): their manifest as sent and their component by content hash
-- (the bytes live in <data dir>/deployed/<sha256>.wasm). Read at startup
-- so API deployments survive a restart.

CREATE TABLE deployments (
    name             TEXT    PRIMARY KEY,
    manifest         TEXT    NOT NULL,
    component_sha256 TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,  -- unix milliseconds
    updated_at       INTEGER NOT NULL
);
