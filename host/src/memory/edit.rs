//! Removing parts of an entity short of the whole: single observations and
//! single relations (the MCP memory tools `delete_observations` and
//! `delete_relations` need both; `forget` removes a whole entity).

use super::MemoryError;
use super::graph::{MAX_OBSERVATIONS_PER_CALL, Memory, finish};
use super::scope::Caller;
use crate::store::AfterCommit;

impl Memory {
    /// Deletes the observations of `name` whose text is one of `texts`
    /// (texts it does not have are skipped); returns how many went.
    pub async fn delete_observations(
        &self,
        caller: &Caller,
        name: &str,
        texts: &[String],
    ) -> Result<usize, MemoryError> {
        if texts.len() > MAX_OBSERVATIONS_PER_CALL {
            return Err(MemoryError::Invalid(format!(
                "observations: at most {MAX_OBSERVATIONS_PER_CALL} per call"
            )));
        }
        let entity = self.resolve(caller, name).await?;
        self.check_write(caller, &entity)?;
        let index = self.index.clone();
        let texts = texts.to_vec();
        self.db
            .write(|tx| async move {
                let mut removed = Vec::new();
                for text in &texts {
                    let mut rows = tx
                        .query(
                            "DELETE FROM observations WHERE entity_id = ?1 AND text = ?2 RETURNING id",
                            libsql::params![entity.id, text.as_str()],
                        )
                        .await?;
                    while let Some(row) = rows.next().await? {
                        removed.push(row.get::<i64>(0)?);
                    }
                    finish(rows).await?;
                }
                let count = removed.len();
                let update: AfterCommit = Box::new(move || {
                    let mut index = index.write().expect("index lock");
                    for id in removed {
                        index.remove(id);
                    }
                });
                Ok((count, Some(update)))
            })
            .await
    }

    /// Deletes the relation `from -relation_type-> to`; returns whether it
    /// existed. As with [`Memory::relate`], the caller must be able to
    /// write `from`.
    pub async fn unrelate(
        &self,
        caller: &Caller,
        from: &str,
        to: &str,
        relation_type: &str,
    ) -> Result<bool, MemoryError> {
        let source = self.resolve(caller, from).await?;
        let target = self.resolve(caller, to).await?;
        self.check_write(caller, &source)?;
        let relation_type = relation_type.to_owned();
        self.db
            .write(|tx| async move {
                let deleted = tx
                    .execute(
                        "DELETE FROM relations WHERE from_id = ?1 AND to_id = ?2 AND relation_type = ?3",
                        libsql::params![source.id, target.id, relation_type],
                    )
                    .await?;
                Ok((deleted > 0, None))
            })
            .await
    }
}
