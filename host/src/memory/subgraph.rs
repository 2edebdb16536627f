//! Reading the graph as a whole or around a set of entities: what the
//! MCP memory tools `read_graph`, `open_nodes` and `search_nodes` answer
//! with, bounded so one read cannot pull a large store into memory.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::MemoryError;
use super::graph::{EntityRow, EntityView, Memory, RelationView, placeholders};
use super::scope::{Caller, Scope};

/// Entities one graph read returns at most.
pub const MAX_GRAPH_ENTITIES: usize = 1000;
/// Relations one graph read returns at most.
pub const MAX_GRAPH_RELATIONS: usize = 5000;
/// Observation text one graph read returns at most, in bytes: a thousand
/// entities may carry far more than an answer should.
pub const MAX_GRAPH_TEXT_BYTES: usize = 8 << 20;

/// A part of the knowledge graph as one caller sees it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Graph {
    pub entities: Vec<EntityView>,
    pub relations: Vec<RelationView>,
    /// There was more than [`MAX_GRAPH_ENTITIES`] entities,
    /// [`MAX_GRAPH_RELATIONS`] relations or [`MAX_GRAPH_TEXT_BYTES`] of
    /// observations to return; the oldest are the ones returned.
    pub truncated: bool,
}

/// The SQL condition "entity `alias` is readable by `caller`", with its
/// parameters numbered from `first`.
fn readable(caller: &Caller, alias: &str, first: usize) -> (String, Vec<libsql::Value>) {
    match caller {
        Caller::Operator => ("1".into(), vec![]),
        Caller::Agent {
            name, workspace, ..
        } => (
            format!(
                "(({alias}.scope = 'agent' AND {alias}.owner = ?{first})
                  OR ({alias}.scope = 'workspace' AND {alias}.owner = ?{})
                  OR {alias}.scope = 'global')",
                first + 1
            ),
            vec![name.clone().into(), workspace.clone().into()],
        ),
    }
}

impl Memory {
    /// Every entity and relation the caller can read, oldest first, up to
    /// the bounds above.
    pub async fn graph(&self, caller: &Caller) -> Result<Graph, MemoryError> {
        let (visible, params) = readable(caller, "e", 2);
        let mut params_with_limit: Vec<libsql::Value> =
            vec![((MAX_GRAPH_ENTITIES + 1) as i64).into()];
        params_with_limit.extend(params);
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                &format!(
                    "SELECT e.id, e.name, e.entity_type, e.scope, e.owner FROM entities e
                     WHERE {visible} ORDER BY e.id LIMIT ?1"
                ),
                params_with_limit,
            )
            .await?;
        let mut entities = Vec::new();
        let mut truncated = false;
        while let Some(row) = rows.next().await? {
            if entities.len() == MAX_GRAPH_ENTITIES {
                truncated = true;
                break;
            }
            entities.push(entity_row(&row)?);
        }
        drop(rows);
        let ids: HashSet<i64> = entities.iter().map(|e| e.id).collect();

        let mut rows = relations_where(&conn, caller, None).await?;
        let mut relations = Vec::new();
        while let Some(row) = rows.next().await? {
            if relations.len() == MAX_GRAPH_RELATIONS {
                truncated = true;
                break;
            }
            // A relation to an entity past the entity bound would name
            // something the answer does not contain.
            if !ids.contains(&row.get::<i64>(1)?) || !ids.contains(&row.get::<i64>(2)?) {
                continue;
            }
            relations.push(relation_view(&row)?);
        }
        drop(rows);
        let (entities, cut) = self.views(&entities).await?;
        Ok(Graph {
            entities,
            relations,
            truncated: truncated || cut,
        })
    }

    /// The named entities the caller can read (names it cannot are
    /// skipped) and every readable relation with at least one end among
    /// them, so a caller can discover what they connect to.
    pub async fn subgraph(&self, caller: &Caller, names: &[String]) -> Result<Graph, MemoryError> {
        let truncated = names.len() > MAX_GRAPH_ENTITIES;
        let names = &names[..names.len().min(MAX_GRAPH_ENTITIES)];
        let entities = self.resolve_all(caller, names).await?;
        let mut relations = Vec::new();
        let mut truncated = truncated;
        if !entities.is_empty() {
            let conn = self.db.reader().await?;
            let ids: Vec<i64> = entities.iter().map(|e| e.id).collect();
            let mut rows = relations_where(&conn, caller, Some(&ids)).await?;
            while let Some(row) = rows.next().await? {
                if relations.len() == MAX_GRAPH_RELATIONS {
                    truncated = true;
                    break;
                }
                relations.push(relation_view(&row)?);
            }
        }
        let (entities, cut) = self.views(&entities).await?;
        Ok(Graph {
            entities,
            relations,
            truncated: truncated || cut,
        })
    }

    /// [`Memory::resolve`] for many names in one query: each name as the
    /// caller sees it (the same scope preference), in the order given,
    /// names it cannot see skipped, each entity once.
    async fn resolve_all(
        &self,
        caller: &Caller,
        names: &[String],
    ) -> Result<Vec<EntityRow>, MemoryError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.db.reader().await?;
        let params: Vec<libsql::Value> = names.iter().map(|n| n.clone().into()).collect();
        let mut rows = conn
            .query(
                &format!(
                    "SELECT id, name, entity_type, scope, owner FROM entities
                     WHERE name IN ({}) ORDER BY id",
                    placeholders(names.len(), 1)
                ),
                params,
            )
            .await?;
        // The scope an agent means first is its own; the operator's, the
        // shared one (as `resolve` orders them).
        let rank = |scope: Scope| match (caller, scope) {
            (Caller::Operator, Scope::Global) | (Caller::Agent { .. }, Scope::Agent) => 0,
            (_, Scope::Workspace) => 1,
            _ => 2,
        };
        let mut best: HashMap<String, EntityRow> = HashMap::new();
        while let Some(row) = rows.next().await? {
            let entity = entity_row(&row)?;
            if !caller.can_read(entity.scope, &entity.owner) {
                continue;
            }
            match best.get(&entity.name) {
                Some(kept) if rank(kept.scope) <= rank(entity.scope) => {}
                _ => {
                    best.insert(entity.name.clone(), entity);
                }
            }
        }
        let mut seen = HashSet::new();
        Ok(names
            .iter()
            .filter_map(|name| best.get(name))
            .filter(|entity| seen.insert(entity.id))
            .cloned()
            .collect())
    }

    /// Names of readable entities whose name or type contains `text`
    /// (case-insensitively), oldest first: the reference memory server's
    /// match, which observation search does not cover.
    pub async fn names_containing(
        &self,
        caller: &Caller,
        text: &str,
        limit: usize,
    ) -> Result<Vec<String>, MemoryError> {
        let (visible, params) = readable(caller, "e", 3);
        let mut all: Vec<libsql::Value> = vec![text.to_lowercase().into(), (limit as i64).into()];
        all.extend(params);
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                &format!(
                    "SELECT DISTINCT e.name FROM entities e
                     WHERE (instr(lower(e.name), ?1) > 0 OR instr(lower(e.entity_type), ?1) > 0)
                       AND {visible}
                     ORDER BY e.id LIMIT ?2"
                ),
                all,
            )
            .await?;
        let mut names = Vec::new();
        while let Some(row) = rows.next().await? {
            names.push(row.get::<String>(0)?);
        }
        Ok(names)
    }

    /// The entities with their observations, read in one query per 500,
    /// and whether observations were left out past
    /// [`MAX_GRAPH_TEXT_BYTES`].
    async fn views(&self, entities: &[EntityRow]) -> Result<(Vec<EntityView>, bool), MemoryError> {
        let mut observations: HashMap<i64, Vec<String>> = HashMap::new();
        let mut bytes = 0;
        let mut cut = false;
        if !entities.is_empty() {
            let conn = self.db.reader().await?;
            for chunk in entities.chunks(500) {
                let params: Vec<libsql::Value> = chunk.iter().map(|e| e.id.into()).collect();
                let mut rows = conn
                    .query(
                        &format!(
                            "SELECT entity_id, text FROM observations
                             WHERE entity_id IN ({}) ORDER BY id",
                            placeholders(chunk.len(), 1)
                        ),
                        params,
                    )
                    .await?;
                while let Some(row) = rows.next().await? {
                    let text = row.get::<String>(1)?;
                    bytes += text.len();
                    if bytes > MAX_GRAPH_TEXT_BYTES {
                        cut = true;
                        break;
                    }
                    observations
                        .entry(row.get::<i64>(0)?)
                        .or_default()
                        .push(text);
                }
                if cut {
                    break;
                }
            }
        }
        let views = entities
            .iter()
            .map(|entity| EntityView {
                name: entity.name.clone(),
                entity_type: entity.entity_type.clone(),
                scope: entity.scope,
                owner: entity.owner.clone(),
                observations: observations.remove(&entity.id).unwrap_or_default(),
            })
            .collect();
        Ok((views, cut))
    }
}

fn entity_row(row: &libsql::Row) -> Result<EntityRow, MemoryError> {
    Ok(EntityRow {
        id: row.get(0)?,
        name: row.get(1)?,
        entity_type: row.get(2)?,
        scope: Scope::parse(&row.get::<String>(3)?).unwrap_or(Scope::Agent),
        owner: row.get(4)?,
    })
}

/// Relations whose both ends the caller can read — all of them, or (with
/// `ids`) those with at least one end among `ids` — oldest first, one more
/// than [`MAX_GRAPH_RELATIONS`] at most (so a reader can tell there were
/// more). Columns: id, from id, to id, then what [`relation_view`] reads.
async fn relations_where(
    conn: &libsql::Connection,
    caller: &Caller,
    ids: Option<&[i64]>,
) -> Result<libsql::Rows, MemoryError> {
    let mut params: Vec<libsql::Value> = vec![((MAX_GRAPH_RELATIONS + 1) as i64).into()];
    let condition = match ids {
        Some(ids) => {
            let list = placeholders(ids.len(), 2);
            params.extend(ids.iter().map(|id| libsql::Value::from(*id)));
            format!("(r.from_id IN ({list}) OR r.to_id IN ({list}))")
        }
        None => "1".into(),
    };
    let (from_visible, from_params) = readable(caller, "f", params.len() + 1);
    params.extend(from_params);
    let (to_visible, to_params) = readable(caller, "t", params.len() + 1);
    params.extend(to_params);
    Ok(conn
        .query(
            &format!(
                "SELECT r.id, r.from_id, r.to_id, f.name, t.name, r.relation_type, r.strength
                 FROM relations r
                 JOIN entities f ON f.id = r.from_id
                 JOIN entities t ON t.id = r.to_id
                 WHERE {condition} AND {from_visible} AND {to_visible}
                 ORDER BY r.id LIMIT ?1"
            ),
            params,
        )
        .await?)
}

/// A relation from a row of [`relations_where`].
fn relation_view(row: &libsql::Row) -> Result<RelationView, MemoryError> {
    Ok(RelationView {
        from: row.get(3)?,
        to: row.get(4)?,
        relation_type: row.get(5)?,
        strength: row.get(6)?,
    })
}
