-- Conversations between clients and agents: each message in order, with
-- the reply links, so a thread can be read back (GET
-- /api/v1/conversations/{id}/messages) and idle ones closed.

CREATE TABLE conversations (
    id            TEXT    PRIMARY KEY,
    status        TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
    created_at    INTEGER NOT NULL,  -- unix milliseconds
    last_activity INTEGER NOT NULL
);
CREATE INDEX conversations_by_activity ON conversations (status, last_activity);

CREATE TABLE conversation_participants (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    agent           TEXT NOT NULL,
    PRIMARY KEY (conversation_id, agent)
) WITHOUT ROWID;
CREATE INDEX participants_by_agent ON conversation_participants (agent);

CREATE TABLE conversation_messages (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id      TEXT    NOT NULL,
    performative    TEXT    NOT NULL,
    sender          TEXT    NOT NULL,
    receiver        TEXT,
    in_reply_to     TEXT,
    content         TEXT    NOT NULL,  -- JSON
    created_at      INTEGER NOT NULL
);
CREATE INDEX conversation_messages_in_order ON conversation_messages (conversation_id, seq);
