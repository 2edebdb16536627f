-- The knowledge graph: entities with observations, typed relations.
-- Scope and owner decide who may read a row (see host/src/memory/scope.rs):
--   agent     owner = the agent's name      (only that agent)
--   workspace owner = the workspace's name  (agents of that workspace)
--   global    owner = ''                    (every agent reads)

-- AUTOINCREMENT: ids are never reused, so an id read before a concurrent
-- delete can never come to name another agent's row.
CREATE TABLE entities (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    scope       TEXT    NOT NULL CHECK (scope IN ('agent', 'workspace', 'global')),
    owner       TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    entity_type TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,  -- unix milliseconds
    updated_at  INTEGER NOT NULL,
    UNIQUE (scope, owner, name)
);
CREATE INDEX entities_by_type ON entities (entity_type);
CREATE INDEX entities_by_age ON entities (updated_at);

CREATE TABLE observations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    entity_id  INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    text       TEXT    NOT NULL,
    -- 384 little-endian f32s, L2-normalised; NULL until embedded.
    embedding  F32_BLOB(384),
    created_at INTEGER NOT NULL,
    UNIQUE (entity_id, text)
);

CREATE TABLE relations (
    id            INTEGER PRIMARY KEY,
    from_id       INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    to_id         INTEGER NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
    relation_type TEXT    NOT NULL,
    strength      REAL    NOT NULL DEFAULT 1.0 CHECK (strength >= 0 AND strength <= 1),
    created_at    INTEGER NOT NULL,
    UNIQUE (from_id, to_id, relation_type)
);
CREATE INDEX relations_to ON relations (to_id);

-- Keyword search over observation text. External content: the text is
-- stored once (in observations) and the index follows it through triggers.
CREATE VIRTUAL TABLE observations_fts USING fts5 (
    text,
    content = 'observations',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER observations_fts_insert AFTER INSERT ON observations BEGIN
    INSERT INTO observations_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER observations_fts_delete AFTER DELETE ON observations BEGIN
    INSERT INTO observations_fts (observations_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
