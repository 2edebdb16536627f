//! Export and import of the whole graph as JSON lines: one entity (with its
//! observations and, optionally, their embeddings) or one relation per line.
//! Import is idempotent (observations and relations dedupe) and embeds only
//! observations that arrive without a vector.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::MemoryError;
use super::graph::{MAX_NAME, MAX_OBSERVATION, MAX_TYPE, Memory, check_text, decode_vector};
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

/// How long an export waits for its reader to take the next line.
const EXPORT_STALL: std::time::Duration = std::time::Duration::from_secs(30);

/// The export's two reads, on a connection inside a read transaction.
async fn export_in(
    conn: &libsql::Connection,
    include_embeddings: bool,
    sink: &tokio::sync::mpsc::Sender<String>,
) -> Result<usize, MemoryError> {
    let send = |line: &ExportLine| {
        let mut text = serde_json::to_string(line).expect("serialisable");
        text.push('\n');
        async move {
            // A reader that stops reading would hold the snapshot (and the
            // WAL behind it) for as long as it likes: it gets a deadline.
            sink.send_timeout(text, EXPORT_STALL).await.map_err(|e| {
                let (kind, why) = match e {
                    tokio::sync::mpsc::error::SendTimeoutError::Timeout(_) => (
                        std::io::ErrorKind::TimedOut,
                        "the export's reader stopped reading",
                    ),
                    tokio::sync::mpsc::error::SendTimeoutError::Closed(_) => (
                        std::io::ErrorKind::BrokenPipe,
                        "the export's reader went away",
                    ),
                };
                MemoryError::Io {
                    path: "export".into(),
                    source: std::io::Error::new(kind, why),
                }
            })
        }
    };
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
                send(&line).await?;
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
        send(&line).await?;
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
        send(&line).await?;
        lines += 1;
    }
    Ok(lines)
}

/// An imported entity's key is held to what a normal write could create:
/// global entities have no owner, the others one.
fn check_key(key: &EntityKey) -> Result<(), MemoryError> {
    check_text("name", &key.name, MAX_NAME)?;
    match (key.scope, key.owner.is_empty()) {
        (Scope::Global, true) => Ok(()),
        (Scope::Global, false) => Err(MemoryError::Invalid(format!(
            "a global entity has no owner, but {:?} names {:?}",
            key.name, key.owner
        ))),
        (scope, true) => Err(MemoryError::Invalid(format!(
            "a {} entity needs an owner; {:?} has none",
            scope.as_str(),
            key.name
        ))),
        (_, false) => check_text("owner", &key.owner, MAX_NAME),
    }
}

/// Imports embed in a turn of their own, beside the agents'.
const IMPORT_LANE: &str = "import";

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ImportReport {
    pub entities: usize,
    pub observations_added: usize,
    pub observations_embedded: usize,
    pub relations: usize,
}

impl Memory {
    /// Sends every entity, then every relation, to `sink` as JSON lines
    /// (each ending in a newline), read in one transaction so a relation
    /// never names an entity the export lacks. Stops early, with an error,
    /// when the receiver is gone (a client that hung up).
    pub async fn export(
        &self,
        include_embeddings: bool,
        sink: &tokio::sync::mpsc::Sender<String>,
    ) -> Result<usize, MemoryError> {
        let conn = self.db.reader().await?;
        // A read transaction is one snapshot for both queries; ended
        // whatever happens, so the pooled connection comes back clean.
        conn.execute("BEGIN", ()).await?;
        let exported = export_in(&conn, include_embeddings, sink).await;
        let ended = conn.execute("ROLLBACK", ()).await;
        let lines = exported?;
        ended?;
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
                    let at = |e: MemoryError| {
                        MemoryError::Invalid(format!("import line {}: {e}", number + 1))
                    };
                    check_key(&key).map_err(at)?;
                    check_text("entity_type", &entity_type, MAX_TYPE).map_err(at)?;
                    for observation in &observations {
                        check_text("observation", &observation.text, MAX_OBSERVATION)
                            .map_err(at)?;
                    }
                    let missing: Vec<String> = observations
                        .iter()
                        .filter(|o| o.embedding.is_none())
                        .map(|o| o.text.clone())
                        .collect();
                    let mut computed = self.embed_all(IMPORT_LANE, &missing).await?.into_iter();
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
                        .write_entity(
                            key.scope,
                            &key.owner,
                            &key.name,
                            &entity_type,
                            prepared,
                            None,
                        )
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
                    check_text("relation_type", &relation_type, MAX_TYPE).map_err(|e| {
                        MemoryError::Invalid(format!("import line {}: {e}", number + 1))
                    })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SqliteConfig;
    use crate::memory::Caller;

    #[tokio::test]
    async fn an_export_is_one_snapshot_even_while_writes_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Memory::open(
            &dir.path().join("memory.db"),
            &SqliteConfig::default(),
            None,
        )
        .await
        .unwrap();
        let operator = Caller::Operator;
        for name in ["a", "b", "c"] {
            memory
                .remember(&operator, Some(Scope::Global), name, "t", &["o".into()])
                .await
                .unwrap();
        }
        // A reader that takes one line at a time keeps the export mid-way.
        let (sink, mut lines) = tokio::sync::mpsc::channel(1);
        let export = tokio::spawn({
            let memory = memory.clone();
            async move { memory.export(false, &sink).await }
        });
        let mut received = vec![lines.recv().await.unwrap()];
        memory
            .remember(&operator, Some(Scope::Global), "z", "t", &["o".into()])
            .await
            .unwrap();
        memory
            .relate(&operator, "a", "z", "knows", 1.0)
            .await
            .unwrap();
        while let Some(line) = lines.recv().await {
            received.push(line);
        }
        export.await.unwrap().unwrap();

        let parsed: Vec<ExportLine> = received
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let names: Vec<&str> = parsed
            .iter()
            .filter_map(|l| match l {
                ExportLine::Entity { key, .. } => Some(key.name.as_str()),
                ExportLine::Relation { .. } => None,
            })
            .collect();
        for line in &parsed {
            if let ExportLine::Relation { from, to, .. } = line {
                assert!(
                    names.contains(&from.name.as_str()) && names.contains(&to.name.as_str()),
                    "a relation names an entity the export lacks: {received:?}"
                );
            }
        }
    }
}
