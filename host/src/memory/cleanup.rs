//! The cleanup pass: keeps the store inside the limits an operator set
//! (`[memory.cleanup]`) by forgetting the least recently updated entities
//! first, and removes rows whose entity is gone.
//!
//! Deletes run in batches, each its own short write transaction, so agents'
//! writes interleave with a long cleanup instead of waiting behind it.

use std::collections::HashSet;
use std::time::Instant;

use serde::Serialize;

use super::graph::Memory;
use super::{MemoryError, now_ms};
use crate::config::CleanupConfig;

/// What one pass removed.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CleanupReport {
    /// Entities not updated within `max_age`.
    pub expired_entities: u64,
    /// Entities beyond `max_entities_per_agent` in some agent's own scope.
    pub agent_limit_entities: u64,
    /// Entities beyond `entity_limit` across the whole store.
    pub store_limit_entities: u64,
    /// Relations beyond `relation_limit` (weakest, then oldest, first).
    pub limit_relations: u64,
    /// Relations or observations whose entity no longer exists.
    pub orphans: u64,
    pub elapsed_ms: u64,
}

impl CleanupReport {
    pub fn removed(&self) -> u64 {
        self.expired_entities
            + self.agent_limit_entities
            + self.store_limit_entities
            + self.limit_relations
            + self.orphans
    }
}

impl Memory {
    /// One cleanup pass under `policy`.
    pub async fn cleanup(&self, policy: &CleanupConfig) -> Result<CleanupReport, MemoryError> {
        let started = Instant::now();
        let batch = policy.batch_size.max(1) as i64;
        let mut report = CleanupReport::default();

        if let Some(max_age) = policy.max_age.filter(|age| !age.is_zero()) {
            let cutoff = now_ms() - max_age.as_millis() as i64;
            report.expired_entities = self
                .delete_entities(
                    "SELECT id FROM entities WHERE updated_at < ?2 LIMIT ?1",
                    Some(libsql::Value::Integer(cutoff)),
                    i64::MAX,
                    batch,
                )
                .await?;
        }

        if policy.max_entities_per_agent > 0 {
            let limit = policy.max_entities_per_agent as i64;
            for (owner, excess) in self.owners_over_limit(limit).await? {
                report.agent_limit_entities += self
                    .delete_entities(
                        "SELECT id FROM entities WHERE scope = 'agent' AND owner = ?2
                         ORDER BY updated_at, id LIMIT ?1",
                        Some(libsql::Value::Text(owner)),
                        excess,
                        batch,
                    )
                    .await?;
            }
        }

        if policy.entity_limit > 0 {
            let excess =
                self.count("SELECT count(*) FROM entities").await? - policy.entity_limit as i64;
            if excess > 0 {
                report.store_limit_entities = self
                    .delete_entities(
                        "SELECT id FROM entities ORDER BY updated_at, id LIMIT ?1",
                        None,
                        excess,
                        batch,
                    )
                    .await?;
            }
        }

        if policy.relation_limit > 0 {
            let excess =
                self.count("SELECT count(*) FROM relations").await? - policy.relation_limit as i64;
            if excess > 0 {
                report.limit_relations = self
                    .delete_rows(
                        "DELETE FROM relations WHERE id IN (SELECT id FROM relations
                         ORDER BY strength, created_at, id LIMIT ?1) RETURNING id",
                        excess,
                        batch,
                    )
                    .await?
                    .len() as u64;
            }
        }

        if policy.orphan_cleanup {
            report.orphans = self.delete_orphans(batch).await?;
        }

        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Agents whose own-scope entities exceed `limit`, with the excess.
    async fn owners_over_limit(&self, limit: i64) -> Result<Vec<(String, i64)>, MemoryError> {
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                "SELECT owner, count(*) - ?1 FROM entities WHERE scope = 'agent'
                 GROUP BY owner HAVING count(*) > ?1",
                [limit],
            )
            .await?;
        let mut owners = Vec::new();
        while let Some(row) = rows.next().await? {
            owners.push((row.get::<String>(0)?, row.get::<i64>(1)?));
        }
        Ok(owners)
    }

    async fn count(&self, sql: &str) -> Result<i64, MemoryError> {
        let conn = self.db.reader().await?;
        let mut rows = conn.query(sql, ()).await?;
        Ok(rows.next().await?.map_or(Ok(0), |row| row.get::<i64>(0))?)
    }

    /// Deletes up to `total` entities picked by `select` (which takes a
    /// batch size as ?1 and `key`, if any, as ?2), cascading to their observations
    /// and relations, and drops them from the vector index.
    async fn delete_entities(
        &self,
        select: &str,
        key: Option<libsql::Value>,
        total: i64,
        batch: i64,
    ) -> Result<u64, MemoryError> {
        let mut removed = 0u64;
        let mut left = total;
        while left > 0 {
            let take = left.min(batch);
            let ids = {
                let writer = self.db.writer().await;
                let mut params = vec![libsql::Value::Integer(take)];
                params.extend(key.clone());
                let mut rows = writer
                    .query(
                        &format!("DELETE FROM entities WHERE id IN ({select}) RETURNING id"),
                        params,
                    )
                    .await?;
                let mut ids = HashSet::new();
                while let Some(row) = rows.next().await? {
                    ids.insert(row.get::<i64>(0)?);
                }
                ids
            };
            if ids.is_empty() {
                break;
            }
            self.index
                .write()
                .expect("index lock")
                .remove_entities(&ids);
            removed += ids.len() as u64;
            left -= ids.len() as i64;
        }
        Ok(removed)
    }

    /// Runs a `DELETE ... LIMIT ?1 ... RETURNING id` in batches until it
    /// removes nothing or `total` rows are gone; returns the ids.
    async fn delete_rows(
        &self,
        sql: &str,
        total: i64,
        batch: i64,
    ) -> Result<Vec<i64>, MemoryError> {
        let mut ids = Vec::new();
        let mut left = total;
        while left > 0 {
            let writer = self.db.writer().await;
            let mut rows = writer.query(sql, [left.min(batch)]).await?;
            let before = ids.len();
            while let Some(row) = rows.next().await? {
                ids.push(row.get::<i64>(0)?);
            }
            if ids.len() == before {
                break;
            }
            left -= (ids.len() - before) as i64;
        }
        Ok(ids)
    }

    /// Foreign keys cascade every delete this host makes; orphans come from
    /// files written with foreign keys off (other tools, old backups).
    async fn delete_orphans(&self, batch: i64) -> Result<u64, MemoryError> {
        let relations = self
            .delete_rows(
                "DELETE FROM relations WHERE id IN (SELECT r.id FROM relations r
                 WHERE NOT EXISTS (SELECT 1 FROM entities e WHERE e.id = r.from_id)
                    OR NOT EXISTS (SELECT 1 FROM entities e WHERE e.id = r.to_id)
                 LIMIT ?1) RETURNING id",
                i64::MAX,
                batch,
            )
            .await?;
        let observations = self
            .delete_rows(
                "DELETE FROM observations WHERE id IN (SELECT o.id FROM observations o
                 WHERE NOT EXISTS (SELECT 1 FROM entities e WHERE e.id = o.entity_id)
                 LIMIT ?1) RETURNING id",
                i64::MAX,
                batch,
            )
            .await?;
        let mut index = self.index.write().expect("index lock");
        for id in &observations {
            index.remove(*id);
        }
        Ok((relations.len() + observations.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SqliteConfig;
    use crate::memory::Caller;

    fn policy() -> CleanupConfig {
        CleanupConfig {
            max_entities_per_agent: 0,
            batch_size: 2,
            ..CleanupConfig::default()
        }
    }

    #[tokio::test]
    async fn store_and_relation_limits_drop_the_stalest_and_weakest() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Memory::open(&dir.path().join("m.db"), &SqliteConfig::default(), None)
            .await
            .unwrap();
        let operator = Caller::Operator;
        for n in 0..5 {
            memory
                .remember(&operator, None, &format!("e{n}"), "t", &[format!("o{n}")])
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        for (to, strength) in [("e2", 0.9), ("e3", 0.1), ("e4", 0.5)] {
            memory
                .relate(&operator, "e4", to, "knows", strength)
                .await
                .unwrap();
        }

        let report = memory
            .cleanup(&CleanupConfig {
                relation_limit: 2,
                ..policy()
            })
            .await
            .unwrap();
        assert_eq!(report.limit_relations, 1);
        let relations = memory
            .neighbours(&operator, "e4", 1)
            .await
            .unwrap()
            .relations;
        assert!(relations.iter().all(|r| r.to != "e3"), "{relations:?}");

        // Five entities, limit three, batches of two: e0 and e1 go.
        let report = memory
            .cleanup(&CleanupConfig {
                entity_limit: 3,
                ..policy()
            })
            .await
            .unwrap();
        assert_eq!(report.store_limit_entities, 2);
        assert!(
            memory
                .entities(&operator, &["e0".into()])
                .await
                .unwrap()
                .is_empty()
        );
        let stats = memory.stats().await.unwrap();
        assert_eq!((stats.entities, stats.observations), (3, 3));
        // A second pass finds nothing left to do.
        let again = memory
            .cleanup(&CleanupConfig {
                entity_limit: 3,
                ..policy()
            })
            .await
            .unwrap();
        assert_eq!(again.removed(), 0);
    }
}
