-- One random id per store, made when this migration runs: a file derived
-- from the store (the saved vector index) records it, and is refused by a
-- store with another id (a different file copied over, another host's
-- backup restored). A replica has its primary's id: the same history.
CREATE TABLE store_identity (
    id TEXT NOT NULL
);
INSERT INTO store_identity (id) VALUES (lower(hex(randomblob(16))));
