-- Observations stored without a vector (no model installed yet, or
-- semantic search off): the background backfill walks them, and memory
-- stats count them, without scanning every observation.
CREATE INDEX observations_without_embedding ON observations (id) WHERE embedding IS NULL;
