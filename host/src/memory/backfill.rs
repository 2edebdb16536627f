//! Observations written while no embedding model was installed (or with
//! semantic search off) are stored without vectors and found by keywords
//! only. Once a model is loaded, this embeds them in the background, a
//! batch at a time, so older memories become searchable by meaning too.

use std::time::Duration;

use libsql::Value;

use super::MemoryError;
use super::graph::{Memory, encode_vector, finish};
use super::scope::Scope;
use crate::embed::EmbedError;

/// Observations embedded per batch: one engine call and one short write.
const BATCH: i64 = 32;

/// How long backfill waits when the engine's queue is full.
const BUSY_PAUSE: Duration = Duration::from_millis(500);

/// The engine lane backfill embeds in: its own, so a request's embedding
/// never waits behind the whole backlog (the engine is fair across lanes).
const LANE: &str = "caxton:backfill";

impl Memory {
    /// Embeds every observation that has no vector yet; returns how many.
    /// Does nothing without an embedding engine.
    pub async fn embed_missing(&self) -> Result<usize, MemoryError> {
        let Some(engine) = self.embeddings.clone() else {
            return Ok(0);
        };
        let mut done = 0;
        let mut after = 0_i64;
        loop {
            let conn = self.db.reader().await?;
            let mut rows = conn
                .query(
                    "SELECT o.id, o.text, o.entity_id, e.scope, e.owner, e.entity_type
                     FROM observations o JOIN entities e ON e.id = o.entity_id
                     WHERE o.embedding IS NULL AND o.id > ?1
                     ORDER BY o.id LIMIT ?2",
                    libsql::params![after, BATCH],
                )
                .await?;
            let mut batch = Vec::new();
            while let Some(row) = rows.next().await? {
                batch.push((
                    row.get::<i64>(0)?,
                    row.get::<String>(1)?,
                    row.get::<i64>(2)?,
                    Scope::parse(&row.get::<String>(3)?).unwrap_or(Scope::Agent),
                    row.get::<String>(4)?,
                    row.get::<String>(5)?,
                ));
            }
            drop(rows);
            drop(conn);
            let Some(last) = batch.last() else {
                return Ok(done);
            };
            after = last.0;
            let texts: Vec<String> = batch.iter().map(|b| b.1.clone()).collect();
            // A full queue means requests are busy: wait for a turn rather
            // than give up until the next restart.
            let vectors = loop {
                match engine.embed_as(LANE, &texts).await {
                    Err(EmbedError::Busy) => tokio::time::sleep(BUSY_PAUSE).await,
                    other => break other?,
                }
            };
            let entries: Vec<_> = batch
                .into_iter()
                .zip(vectors)
                .map(
                    |((id, _, entity_id, scope, owner, entity_type), embedded)| {
                        let visibility = self.visibility(scope, &owner);
                        let type_id = self.intern(&entity_type);
                        (id, entity_id, visibility, type_id, embedded.vector.clone())
                    },
                )
                .collect();
            let index = self.index.clone();
            let written = self
                .db
                .write(|tx| async move {
                    let mut updated = Vec::new();
                    for entry in entries {
                        // Only still-unembedded rows: the observation may
                        // have been deleted or re-written meanwhile.
                        let mut rows = tx
                            .query(
                                "UPDATE observations SET embedding = ?2
                                 WHERE id = ?1 AND embedding IS NULL RETURNING id",
                                libsql::params![entry.0, Value::Blob(encode_vector(&entry.4))],
                            )
                            .await?;
                        let hit = rows.next().await?.is_some();
                        finish(rows).await?;
                        if hit {
                            updated.push(entry);
                        }
                    }
                    let count = updated.len();
                    let update: crate::store::AfterCommit = Box::new(move || {
                        let mut index = index.write().expect("index lock");
                        for (id, entity_id, visibility, type_id, vector) in &updated {
                            index.insert(*id, *entity_id, *visibility, *type_id, vector);
                        }
                    });
                    Ok::<_, MemoryError>((count, Some(update)))
                })
                .await?;
            done += written;
        }
    }
}
