//! Export and import of the whole graph as JSON lines: one entity (with its
//! observations and, optionally, their embeddings) or one relation per line.
//! Import is idempotent (observations and relations dedupe) and embeds only
//! observations that arrive without a vector.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::MemoryError;
use super::graph::{Memory, decode_vector};
use super::scope::Scope;

/// Identifies an entity across databases.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntityKey {
    pub scope: Scope,
    pub owner: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObservationLine {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

/// One line of an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ExportLine {
    Entity {
        #[serde(flatten)]
        key: EntityKey,
        entity_type: String,
        observations: Vec<ObservationLine>,
    },
    Relation {
        from: EntityKey,
        to: EntityKey,
        relation_type: String,
        strength: f64,
    },
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ImportReport {
    pub entities: usize,
    pub observations_added: usize,
    pub observations_embedded: usize,
    pub relations: usize,
}

impl Memory {
    /// Writes every entity, then every relation, to `sink` as JSON lines.
    pub async fn export(
        &self,
        include_embeddings: bool,
        mut sink: impl FnMut(String) -> std::io::Result<()>,
    ) -> Result<usize, MemoryError> {
        let io = |source| MemoryError::Io {
            path: "export".into(),
            source,
        };
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                "SELECT e.id, e.scope, e.owner, e.name, e.entity_type, o.text, o.embedding
                 FROM entities e LEFT JOIN observations o ON o.entity_id = e.id
                 ORDER BY e.id, o.id",
                (),
            )
            .await?;
        let mut lines = 0;
        let mut current: Option<(i64, ExportLine)> = None;
        while let Some(row) = rows.next().await? {
            let id = row.get::<i64>(0)?;
            if current.as_ref().is_none_or(|(at, _)| *at != id) {
                if let Some((_, line)) = current.take() {
                    sink(serde_json::to_string(&line).expect("serialisable")).map_err(io)?;
                    lines += 1;
                }
                current = Some((
                    id,
                    ExportLine::Entity {
                        key: EntityKey {
                            scope: Scope::parse(&row.get::<String>(1)?).unwrap_or(Scope::Agent),
                            owner: row.get(2)?,
                            name: row.get(3)?,
                        },
                        entity_type: row.get(4)?,
                        observations: Vec::new(),
                    },
                ));
            }
            if let (Some(text), Some((_, ExportLine::Entity { observations, .. }))) =
                (row.get::<Option<String>>(5)?, current.as_mut())
            {
                let embedding = match row.get::<Option<Vec<u8>>>(6)? {
                    Some(blob) if include_embeddings => Some(decode_vector(&blob)),
                    _ => None,
                };
                observations.push(ObservationLine { text, embedding });
            }
        }
        if let Some((_, line)) = current.take() {
            sink(serde_json::to_string(&line).expect("serialisable")).map_err(io)?;
            lines += 1;
        }
        drop(rows);

        let mut rows = conn
            .query(
                "SELECT f.scope, f.owner, f.name, t.scope, t.owner, t.name, r.relation_type, r.strength
                 FROM relations r
                 JOIN entities f ON f.id = r.from_id
                 JOIN entities t ON t.id = r.to_id
                 ORDER BY r.id",
                (),
            )
            .await?;
        while let Some(row) = rows.next().await? {
            let key = |at: i32| -> Result<EntityKey, MemoryError> {
                Ok(EntityKey {
                    scope: Scope::parse(&row.get::<String>(at)?).unwrap_or(Scope::Agent),
                    owner: row.get(at + 1)?,
                    name: row.get(at + 2)?,
                })
            };
            let line = ExportLine::Relation {
                from: key(0)?,
                to: key(3)?,
                relation_type: row.get(6)?,
                strength: row.get(7)?,
            };
            sink(serde_json::to_string(&line).expect("serialisable")).map_err(io)?;
            lines += 1;
        }
        Ok(lines)
    }

    /// Imports JSON lines as written by [`Memory::export`]. Stops at the
    /// first bad line with its number; everything before it is kept.
    pub async fn import(
        &self,
        lines: impl IntoIterator<Item = String>,
    ) -> Result<ImportReport, MemoryError> {
        let mut report = ImportReport::default();
        let mut ids: HashMap<EntityKey, i64> = HashMap::new();
        for (number, line) in lines.into_iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed: ExportLine = serde_json::from_str(&line)
                .map_err(|e| MemoryError::Invalid(format!("import line {}: {e}", number + 1)))?;
            match parsed {
                ExportLine::Entity {
                    key,
                    entity_type,
                    observations,
                } => {
                    let missing: Vec<String> = observations
                        .iter()
                        .filter(|o| o.embedding.is_none())
                        .map(|o| o.text.clone())
                        .collect();
                    let mut computed = self.embed_all(&missing).await?.into_iter();
                    let dims = self.embeddings.as_ref().map_or(384, |e| e.dims());
                    let mut prepared = Vec::with_capacity(observations.len());
                    for observation in observations {
                        let vector = match observation.embedding {
                            Some(vector) if vector.len() == dims => Some(vector),
                            Some(vector) => {
                                return Err(MemoryError::Invalid(format!(
                                    "import line {}: an embedding has {} dimensions, expected {dims}",
                                    number + 1,
                                    vector.len()
                                )));
                            }
                            None => {
                                let vector = computed.next().flatten();
                                report.observations_embedded += usize::from(vector.is_some());
                                vector
                            }
                        };
                        prepared.push((observation.text, vector));
                    }
                    let written = self
                        .write_entity(key.scope, &key.owner, &key.name, &entity_type, prepared)
                        .await?;
                    ids.insert(key, written.id);
                    report.entities += 1;
                    report.observations_added += written.added;
                }
                ExportLine::Relation {
                    from,
                    to,
                    relation_type,
                    strength,
                } => {
                    let from_id = self.entity_id(&from, &ids).await?;
                    let to_id = self.entity_id(&to, &ids).await?;
                    self.write_relation(from_id, to_id, &relation_type, strength)
                        .await?;
                    report.relations += 1;
                }
            }
        }
        Ok(report)
    }

    async fn entity_id(
        &self,
        key: &EntityKey,
        known: &HashMap<EntityKey, i64>,
    ) -> Result<i64, MemoryError> {
        if let Some(id) = known.get(key) {
            return Ok(*id);
        }
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                "SELECT id FROM entities WHERE scope = ?1 AND owner = ?2 AND name = ?3",
                libsql::params![key.scope.as_str(), key.owner.as_str(), key.name.as_str()],
            )
            .await?;
        match rows.next().await? {
            Some(row) => Ok(row.get(0)?),
            None => Err(MemoryError::NotFound(key.name.clone())),
        }
    }
}
