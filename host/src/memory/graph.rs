//! The memory service: the knowledge graph's reads and writes, with scope
//! checks on every call, and hybrid search.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use libsql::Value;
use serde::Serialize;

use super::index::{EntryFilter, VectorIndex, Visibility};
use super::index_file;
use super::scope::{Caller, Scope};
use super::{MemoryError, now_ms};
use crate::config::SqliteConfig;
use crate::embed::EmbeddingEngine;
use crate::store::AfterCommit;
use crate::store::Db;

/// Bounds that keep one call from flooding the store.
pub(super) const MAX_NAME: usize = 256;
pub(super) const MAX_TYPE: usize = 64;
pub(super) const MAX_OBSERVATION: usize = 8 * 1024;
pub(super) const MAX_OBSERVATIONS_PER_CALL: usize = 256;
const MAX_SEARCH_LIMIT: usize = 100;
const MAX_DEPTH: usize = 5;
/// Entities and relations one neighbourhood query returns at most: a hub
/// with thousands of links must not make one request read them all.
pub const MAX_NEIGHBOURHOOD: usize = 1000;
/// Keyword candidates ranked per result wanted, before scope filtering.
const KEYWORD_OVERSAMPLE: usize = 20;
/// Most keyword matches scored with bm25, newest first. A query whose words
/// are everywhere would otherwise score a large part of the store; past
/// this many matches the words select little and the vector path decides.
const KEYWORD_SCORED: usize = 2000;
/// Words too common to select anything; they only slow FTS5 down.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "has", "have",
    "how", "i", "in", "is", "it", "its", "of", "on", "or", "that", "the", "their", "this", "to",
    "was", "were", "what", "when", "where", "which", "who", "why", "with",
];
/// Reciprocal rank fusion constant (the usual 60).
const RRF_K: f32 = 60.0;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RememberOutcome {
    pub entity: String,
    pub scope: Scope,
    /// Observations stored by this call (duplicates are skipped).
    pub added: usize,
    pub created: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EntityView {
    pub name: String,
    pub entity_type: String,
    pub scope: Scope,
    pub owner: String,
    pub observations: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RelationView {
    pub from: String,
    pub to: String,
    pub relation_type: String,
    pub strength: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SearchHit {
    pub entity: String,
    pub entity_type: String,
    pub scope: Scope,
    pub observation: String,
    /// Fused relevance (reciprocal rank fusion); higher is better.
    pub score: f32,
    /// Exact cosine similarity to the query, when the vector path found it.
    pub similarity: Option<f32>,
}

#[derive(Debug, Clone, Default)]
pub struct SearchOptions {
    pub limit: usize,
    pub entity_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stats {
    pub entities: u64,
    pub observations: u64,
    pub relations: u64,
    pub observations_without_embedding: u64,
    pub database_bytes: u64,
    pub index_entries: usize,
    pub index_bytes: usize,
    pub embedding_cache_hit_rate: Option<f64>,
}

/// What `write_entity` did.
/// An entity with what is related to it, up to a depth.
#[derive(Debug, Clone, Serialize)]
pub struct Neighbourhood {
    pub entities: Vec<EntityView>,
    pub relations: Vec<RelationView>,
    /// More was related than [`MAX_NEIGHBOURHOOD`]; the strongest links
    /// nearest the entity are the ones returned.
    pub truncated: bool,
}

pub(super) struct WrittenEntity {
    pub id: i64,
    pub created: bool,
    pub added: usize,
}

/// An entity row as resolved for a caller.
#[derive(Debug, Clone)]
pub(super) struct EntityRow {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) entity_type: String,
    pub(super) scope: Scope,
    pub(super) owner: String,
}

/// An observation as the index files it: id, entity, visibility, entity
/// type and vector.
type IndexRow = (i64, i64, Visibility, u32, Vec<f32>);

/// Observations read from the store per query when the index is built or
/// caught up: bounds what a start holds as float32 (~3 MB) however large
/// the store.
const INDEX_BATCH: i64 = 2048;

pub struct Memory {
    pub(super) db: Arc<Db>,
    pub(super) embeddings: Option<Arc<EmbeddingEngine>>,
    pub(super) index: Arc<RwLock<VectorIndex>>,
    /// Owners and entity types as small integers for the index's filters.
    interned: Mutex<HashMap<String, u32>>,
    /// The highest observation id the index has read from the store: what
    /// replication brings in past it is new (ids only grow).
    followed: AtomicI64,
}

impl Memory {
    /// Opens (creating and migrating) the store and loads the vector index.
    pub async fn open(
        path: &std::path::Path,
        sqlite: &SqliteConfig,
        embeddings: Option<Arc<EmbeddingEngine>>,
    ) -> Result<Arc<Self>, MemoryError> {
        let db = Arc::new(Db::open(path, sqlite).await?);
        Self::on(db, embeddings).await
    }

    /// The knowledge graph in the store `db` (which other modules' tables
    /// share).
    pub async fn on(
        db: Arc<Db>,
        embeddings: Option<Arc<EmbeddingEngine>>,
    ) -> Result<Arc<Self>, MemoryError> {
        let dims = embeddings.as_ref().map_or(384, |e| e.dims());
        let memory = Arc::new(Self {
            db,
            embeddings,
            index: Arc::new(RwLock::new(VectorIndex::new(dims))),
            interned: Mutex::default(),
            followed: AtomicI64::new(0),
        });
        memory.load_index().await?;
        Ok(memory)
    }

    /// The store the graph lives in.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    pub(super) fn intern(&self, text: &str) -> u32 {
        let mut interned = self.interned.lock().expect("intern lock");
        let next = interned.len() as u32;
        *interned.entry(text.to_owned()).or_insert(next)
    }

    /// The interned id of `text`, without adding it: a filter on a string
    /// no entry has can match nothing, and must not grow the table.
    fn interned(&self, text: &str) -> Option<u32> {
        self.interned
            .lock()
            .expect("intern lock")
            .get(text)
            .copied()
    }

    /// What the index files an entity's observations under, from the
    /// store's scope, owner and type columns.
    fn filing(&self, scope: &str, owner: &str, entity_type: &str) -> (Visibility, u32) {
        let scope = Scope::parse(scope).unwrap_or(Scope::Agent);
        (self.visibility(scope, owner), self.intern(entity_type))
    }

    pub(super) fn visibility(&self, scope: Scope, owner: &str) -> Visibility {
        Visibility {
            scope: scope.code(),
            owner: self.intern(owner),
        }
    }

    /// Up to `limit` observations with a vector and an id past `after`, in
    /// id order, with what the index files them under.
    async fn read_vectors(&self, after: i64, limit: i64) -> Result<Vec<IndexRow>, MemoryError> {
        self.query_vectors(
            "o.id > ?1 AND o.embedding IS NOT NULL ORDER BY o.id LIMIT ?2",
            vec![libsql::Value::Integer(after), libsql::Value::Integer(limit)],
        )
        .await
    }

    /// Adds every observation with a vector and an id past `after`, a
    /// batch at a time. Returns how many.
    async fn index_past(&self, mut after: i64) -> Result<usize, MemoryError> {
        let mut added = 0;
        loop {
            let rows = self.read_vectors(after, INDEX_BATCH).await?;
            let full = rows.len() as i64 == INDEX_BATCH;
            if let Some(last) = rows.last() {
                after = last.0;
            }
            added += self.index_rows(rows);
            if !full {
                return Ok(added);
            }
        }
    }

    /// The observations of `ids` that have a vector, as [`Self::read_vectors`].
    async fn read_vectors_of(&self, ids: &[i64]) -> Result<Vec<IndexRow>, MemoryError> {
        let placeholders = vec!["?"; ids.len()].join(", ");
        self.query_vectors(
            &format!("o.id IN ({placeholders}) AND o.embedding IS NOT NULL"),
            ids.iter().map(|id| libsql::Value::Integer(*id)).collect(),
        )
        .await
    }

    async fn query_vectors(
        &self,
        condition: &str,
        params: Vec<libsql::Value>,
    ) -> Result<Vec<IndexRow>, MemoryError> {
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                &format!(
                    "SELECT o.id, o.entity_id, e.scope, e.owner, e.entity_type, o.embedding
                     FROM observations o JOIN entities e ON e.id = o.entity_id
                     WHERE {condition}"
                ),
                params,
            )
            .await?;
        let mut loaded = Vec::new();
        while let Some(row) = rows.next().await? {
            let (visibility, entity_type) = self.filing(
                &row.get::<String>(2)?,
                &row.get::<String>(3)?,
                &row.get::<String>(4)?,
            );
            let vector = decode_vector(&row.get::<Vec<u8>>(5)?);
            loaded.push((
                row.get::<i64>(0)?,
                row.get::<i64>(1)?,
                visibility,
                entity_type,
                vector,
            ));
        }
        Ok(loaded)
    }

    /// Adds rows to the index and moves the followed id past them.
    fn index_rows(&self, rows: Vec<IndexRow>) -> usize {
        let added = rows.len();
        let mut index = self.index.write().expect("index lock");
        for (id, entity_id, visibility, entity_type, vector) in rows {
            self.followed.fetch_max(id, Ordering::AcqRel);
            index.insert(id, entity_id, visibility, entity_type, &vector);
        }
        added
    }

    /// Brings the vector index up to what replication brought into the
    /// store (a replica of a primary other hosts write to): observations
    /// past the last id followed are added; then the store's count and sum
    /// of the ids of observations with a vector (two index scans) are
    /// compared with the index's, and only when they differ (removed
    /// elsewhere, or given a vector elsewhere by a backfill) are the ids
    /// reconciled: the missing read in, the gone dropped. The index is never
    /// rebuilt. Returns the number of observations added and removed.
    pub async fn follow_replication(&self) -> Result<usize, MemoryError> {
        let mut changed = self
            .index_past(self.followed.load(Ordering::Acquire))
            .await?;
        let stored: (i64, i128) = {
            let conn = self.db.reader().await?;
            let mut rows = conn
                .query(
                    "SELECT (SELECT count(*) FROM observations)
                          - (SELECT count(*) FROM observations WHERE embedding IS NULL),
                            coalesce((SELECT sum(id) FROM observations), 0)
                          - coalesce((SELECT sum(id) FROM observations WHERE embedding IS NULL), 0)",
                    (),
                )
                .await?;
            match rows.next().await? {
                Some(row) => (row.get(0)?, i128::from(row.get::<i64>(1)?)),
                None => (0, 0),
            }
        };
        if self.index.read().expect("index lock").fingerprint() == stored {
            return Ok(changed);
        }
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                "SELECT id FROM observations WHERE embedding IS NOT NULL",
                (),
            )
            .await?;
        let mut present = std::collections::HashSet::new();
        while let Some(row) = rows.next().await? {
            present.insert(row.get::<i64>(0)?);
        }
        drop(rows);
        drop(conn);
        let missing: Vec<i64> = {
            let mut index = self.index.write().expect("index lock");
            let gone: Vec<i64> = index
                .ids()
                .iter()
                .copied()
                .filter(|id| !present.contains(id))
                .collect();
            for id in &gone {
                index.remove(*id);
            }
            changed += gone.len();
            present
                .into_iter()
                .filter(|id| !index.contains(*id))
                .collect()
        };
        for chunk in missing.chunks(500) {
            let rows = self.read_vectors_of(chunk).await?;
            changed += self.index_rows(rows);
        }
        Ok(changed)
    }

    /// The store's identity (see `migrations/0005_store_identity.sql`).
    async fn store_identity(&self) -> Result<String, MemoryError> {
        let conn = self.db.reader().await?;
        let mut rows = conn.query("SELECT id FROM store_identity", ()).await?;
        Ok(match rows.next().await? {
            Some(row) => row.get(0)?,
            None => String::new(),
        })
    }

    /// Files every index entry under its entity's scope, owner and type as
    /// the store has them now, dropping entries of entities gone: what a
    /// saved index cannot know (an entity re-typed by another host while
    /// this one was down). One read of the entities, no vectors.
    async fn refile_from_store(&self) -> Result<usize, MemoryError> {
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query("SELECT id, scope, owner, entity_type FROM entities", ())
            .await?;
        let mut entities = HashMap::new();
        while let Some(row) = rows.next().await? {
            let filing = self.filing(
                &row.get::<String>(1)?,
                &row.get::<String>(2)?,
                &row.get::<String>(3)?,
            );
            entities.insert(row.get::<i64>(0)?, filing);
        }
        drop(rows);
        drop(conn);
        Ok(self.index.write().expect("index lock").refile(&entities))
    }

    /// Loads the vector index: from the file the last clean stop saved,
    /// brought up to the store, or else built from the store.
    async fn load_index(&self) -> Result<(), MemoryError> {
        let started = std::time::Instant::now();
        let file = index_file::path_for(self.db.path());
        let dims = self.index.read().expect("index lock").dims();
        let store = self.store_identity().await?;
        let saved = {
            let file = file.clone();
            tokio::task::spawn_blocking(move || index_file::take(&file, &store, dims))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
        };
        let source = match saved.and_then(|taken| taken) {
            Ok(Some(snapshot)) => {
                *self.interned.lock().expect("intern lock") = snapshot
                    .interned
                    .into_iter()
                    .enumerate()
                    .map(|(id, name)| (name, id as u32))
                    .collect();
                self.followed.store(snapshot.followed, Ordering::Release);
                *self.index.write().expect("index lock") = snapshot.index;
                let refiled = self.refile_from_store().await?;
                let caught_up = self.follow_replication().await?;
                tracing::debug!(
                    refiled,
                    caught_up,
                    "memory index file brought up to the store"
                );
                "file"
            }
            Ok(None) => {
                self.build_index().await?;
                "store"
            }
            Err(error) => {
                tracing::warn!(
                    %error,
                    file = %file.display(),
                    "cannot use the saved memory index; rebuilding it from the store"
                );
                self.build_index().await?;
                "store"
            }
        };
        crate::heap::release_freed_memory();
        let index = self.index.read().expect("index lock");
        tracing::info!(
            observations = index.len(),
            index_mb = index.memory_bytes() as f64 / 1_048_576.0,
            elapsed_ms = started.elapsed().as_millis() as u64,
            from = source,
            "memory index loaded"
        );
        Ok(())
    }

    /// Builds the index from every vector in the store, in batches, into
    /// arrays sized once for the count.
    async fn build_index(&self) -> Result<(), MemoryError> {
        let count: i64 = {
            let conn = self.db.reader().await?;
            let mut rows = conn
                .query(
                    "SELECT count(*) FROM observations WHERE embedding IS NOT NULL",
                    (),
                )
                .await?;
            match rows.next().await? {
                Some(row) => row.get(0)?,
                None => 0,
            }
        };
        self.index
            .write()
            .expect("index lock")
            .reserve_exact(count.max(0) as usize);
        self.index_past(0).await?;
        self.index.write().expect("index lock").shrink_to_fit();
        self.db.release_read_caches().await;
        Ok(())
    }

    /// Saves the vector index for the next start (see [`index_file`]), when
    /// it holds anything. Returns the file's size.
    pub async fn save_index(self: &Arc<Self>) -> Result<Option<u64>, MemoryError> {
        let store = self.store_identity().await?;
        // Held until the file is written: any open write group commits
        // (with its index updates) first, and nothing commits meanwhile,
        // so the file is exactly the store at one moment.
        let _writer = self.db.writer().await;
        let memory = self.clone();
        let file = index_file::path_for(self.db.path());
        let path = file.clone();
        tokio::task::spawn_blocking(move || {
            let index = memory.index.read().expect("index lock");
            if index.is_empty() {
                return Ok(None);
            }
            let interned = {
                let map = memory.interned.lock().expect("intern lock");
                let mut names = vec![String::new(); map.len()];
                for (name, &id) in map.iter() {
                    names[id as usize] = name.clone();
                }
                names
            };
            // This host's own writes never moved `followed`: the highest id
            // held is as far as the file needs no catching up.
            let followed = memory.followed.load(Ordering::Acquire).max(index.max_id());
            index_file::save(&path, &store, &index, &interned, followed).map(Some)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|saved| saved)
        .map_err(|source| MemoryError::Io { path: file, source })
    }

    /// Creates the entity if needed and adds observations (each text once
    /// per entity). Embeds before taking the write lock.
    pub async fn remember(
        &self,
        caller: &Caller,
        scope: Option<Scope>,
        name: &str,
        entity_type: &str,
        observations: &[String],
    ) -> Result<RememberOutcome, MemoryError> {
        self.remember_within(caller, scope, name, entity_type, observations, None)
            .await
    }

    /// [`Self::remember`] for an agent held to `max_owned` entities in its
    /// own scope: a write that would create one past it is refused. The
    /// count is taken inside the write's transaction, so concurrent writes
    /// cannot both slip under the limit.
    pub async fn remember_within(
        &self,
        caller: &Caller,
        scope: Option<Scope>,
        name: &str,
        entity_type: &str,
        observations: &[String],
        max_owned: Option<u64>,
    ) -> Result<RememberOutcome, MemoryError> {
        check_text("name", name, MAX_NAME)?;
        check_text("entity_type", entity_type, MAX_TYPE)?;
        let texts = distinct_observations(observations)?;
        let scope = scope.unwrap_or_else(|| caller.default_scope());
        let owner = caller.owner_for(scope).map_err(MemoryError::Denied)?;
        let vectors = self.embed_all(&caller.lane(), &texts).await?;
        let observations = texts.into_iter().zip(vectors).collect();
        let written = self
            .write_entity(scope, &owner, name, entity_type, observations, max_owned)
            .await?;
        Ok(RememberOutcome {
            entity: name.to_owned(),
            scope,
            added: written.added,
            created: written.created,
        })
    }

    /// Adds observations to an existing entity the caller can write.
    pub async fn add_observations(
        &self,
        caller: &Caller,
        name: &str,
        observations: &[String],
    ) -> Result<RememberOutcome, MemoryError> {
        let texts = distinct_observations(observations)?;
        let entity = self.resolve(caller, name).await?;
        self.check_write(caller, &entity)?;
        let vectors = self.embed_all(&caller.lane(), &texts).await?;
        let written = self
            .write_entity(
                entity.scope,
                &entity.owner,
                &entity.name,
                &entity.entity_type,
                texts.into_iter().zip(vectors).collect(),
                None,
            )
            .await?;
        Ok(RememberOutcome {
            entity: entity.name,
            scope: entity.scope,
            added: written.added,
            created: false,
        })
    }

    /// Embeddings for `texts` (all `None` when semantic search is off),
    /// computed in `lane`'s turn (see [`EmbeddingEngine::embed_as`]).
    pub(super) async fn embed_all(
        &self,
        lane: &str,
        texts: &[String],
    ) -> Result<Vec<Option<Vec<f32>>>, MemoryError> {
        Ok(match &self.embeddings {
            Some(engine) if !texts.is_empty() => engine
                .embed_as(lane, texts)
                .await?
                .iter()
                .map(|e| Some(e.vector.clone()))
                .collect(),
            _ => vec![None; texts.len()],
        })
    }

    /// Upserts an entity and adds the observations it does not have yet, in
    /// one transaction, and updates the index under the same write lock so
    /// the index changes in commit order.
    pub(super) async fn write_entity(
        &self,
        scope: Scope,
        owner: &str,
        name: &str,
        entity_type: &str,
        observations: Vec<(String, Option<Vec<f32>>)>,
        max_owned: Option<u64>,
    ) -> Result<WrittenEntity, MemoryError> {
        let now = now_ms();
        let visibility = self.visibility(scope, owner);
        let type_id = self.intern(entity_type);
        let index = self.index.clone();
        self.db
            .write(|tx| async move {
                // Insert, or else update: RETURNING tells which happened.
                let mut rows = tx
                    .query(
                        "INSERT INTO entities (scope, owner, name, entity_type, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                         ON CONFLICT (scope, owner, name) DO NOTHING
                         RETURNING id",
                        libsql::params![scope.as_str(), owner, name, entity_type, now],
                    )
                    .await?;
                let inserted = match rows.next().await? {
                    Some(row) => Some(row.get::<i64>(0)?),
                    None => None,
                };
                finish(rows).await?;
                if let (Some(_), Some(limit)) = (inserted, max_owned) {
                    let mut rows = tx
                        .query(
                            "SELECT count(*) FROM entities WHERE scope = ?1 AND owner = ?2",
                            libsql::params![scope.as_str(), owner],
                        )
                        .await?;
                    let owned = match rows.next().await? {
                        Some(row) => row.get::<i64>(0)? as u64,
                        None => 0,
                    };
                    finish(rows).await?;
                    if owned > limit {
                        // The savepoint rolls the insert back.
                        return Err(MemoryError::Denied(format!(
                            "{owner:?} has {limit} entities, its resource_limits.max_memory_entities; forget some first"
                        )));
                    }
                }
                let (entity_id, created) = match inserted {
                    Some(id) => (id, true),
                    None => {
                        let mut rows = tx
                            .query(
                                "UPDATE entities SET entity_type = ?4, updated_at = ?5
                                 WHERE scope = ?1 AND owner = ?2 AND name = ?3
                                 RETURNING id",
                                libsql::params![scope.as_str(), owner, name, entity_type, now],
                            )
                            .await?;
                        let row = rows.next().await?.expect("the conflicting row exists");
                        let id = row.get::<i64>(0)?;
                        finish(rows).await?;
                        (id, false)
                    }
                };

                let mut added = Vec::new();
                for (text, vector) in observations {
                    let blob = vector
                        .as_deref()
                        .map_or(Value::Null, |v| Value::Blob(encode_vector(v)));
                    let mut rows = tx
                        .query(
                            "INSERT INTO observations (entity_id, text, embedding, created_at)
                             VALUES (?1, ?2, ?3, ?4)
                             ON CONFLICT (entity_id, text) DO NOTHING
                             RETURNING id",
                            libsql::params![entity_id, text, blob, now],
                        )
                        .await?;
                    if let Some(row) = rows.next().await? {
                        added.push((row.get::<i64>(0)?, vector));
                    }
                    finish(rows).await?;
                }
                let written = WrittenEntity {
                    id: entity_id,
                    created,
                    added: added.len(),
                };
                // The index changes once the rows are committed, in commit order.
                let update: AfterCommit = Box::new(move || {
                    let mut index = index.write().expect("index lock");
                    if !created {
                        index.set_entity_type(entity_id, type_id);
                    }
                    for (id, vector) in &added {
                        if let Some(vector) = vector {
                            index.insert(*id, entity_id, visibility, type_id, vector);
                        }
                    }
                });
                Ok((written, Some(update)))
            })
            .await
    }

    /// The entity `name` as the caller sees it: the most private scope wins.
    pub(super) async fn resolve(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<EntityRow, MemoryError> {
        // An agent means its own entity first; the operator means the
        // shared one first (it can still reach agent-private ones).
        let order = if *caller == Caller::Operator {
            "CASE scope WHEN 'global' THEN 0 WHEN 'workspace' THEN 1 ELSE 2 END"
        } else {
            "CASE scope WHEN 'agent' THEN 0 WHEN 'workspace' THEN 1 ELSE 2 END"
        };
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                &format!(
                    "SELECT id, name, entity_type, scope, owner FROM entities WHERE name = ?1
                     ORDER BY {order}, id"
                ),
                libsql::params![name],
            )
            .await?;
        while let Some(row) = rows.next().await? {
            let entity = EntityRow {
                id: row.get(0)?,
                name: row.get(1)?,
                entity_type: row.get(2)?,
                scope: Scope::parse(&row.get::<String>(3)?).unwrap_or(Scope::Agent),
                owner: row.get(4)?,
            };
            if caller.can_read(entity.scope, &entity.owner) {
                return Ok(entity);
            }
        }
        Err(MemoryError::NotFound(name.to_owned()))
    }

    pub(super) fn check_write(
        &self,
        caller: &Caller,
        entity: &EntityRow,
    ) -> Result<(), MemoryError> {
        if *caller == Caller::Operator {
            return Ok(());
        }
        match caller.owner_for(entity.scope) {
            Ok(owner) if *caller == Caller::Operator || owner == entity.owner => Ok(()),
            Ok(_) => Err(MemoryError::Denied(format!(
                "entity {:?} is not writable by this caller",
                entity.name
            ))),
            Err(reason) => Err(MemoryError::Denied(reason)),
        }
    }

    /// Records `from -relation_type-> to` (once per triple; a repeat updates
    /// the strength). Returns whether the relation is new.
    pub async fn relate(
        &self,
        caller: &Caller,
        from: &str,
        to: &str,
        relation_type: &str,
        strength: f64,
    ) -> Result<bool, MemoryError> {
        check_text("relation_type", relation_type, MAX_TYPE)?;
        let source = self.resolve(caller, from).await?;
        let target = self.resolve(caller, to).await?;
        self.check_write(caller, &source)?;
        self.write_relation(source.id, target.id, relation_type, strength)
            .await
    }

    /// Inserts the relation, or updates its strength if the triple exists.
    pub(super) async fn write_relation(
        &self,
        from_id: i64,
        to_id: i64,
        relation_type: &str,
        strength: f64,
    ) -> Result<bool, MemoryError> {
        if !(0.0..=1.0).contains(&strength) {
            return Err(MemoryError::Invalid(
                "strength must be between 0 and 1".into(),
            ));
        }
        self.db
            .write(|tx| async move {
                let inserted = tx
                    .execute(
                        "INSERT INTO relations (from_id, to_id, relation_type, strength, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (from_id, to_id, relation_type) DO NOTHING",
                        libsql::params![from_id, to_id, relation_type, strength, now_ms()],
                    )
                    .await?;
                if inserted == 0 {
                    tx.execute(
                        "UPDATE relations SET strength = ?4
                         WHERE from_id = ?1 AND to_id = ?2 AND relation_type = ?3",
                        libsql::params![from_id, to_id, relation_type, strength],
                    )
                    .await?;
                }
                Ok((inserted > 0, None))
            })
            .await
    }

    /// Entities by name with their observations; names the caller cannot
    /// see are skipped.
    pub async fn entities(
        &self,
        caller: &Caller,
        names: &[String],
    ) -> Result<Vec<EntityView>, MemoryError> {
        let mut views = Vec::new();
        for name in names {
            let entity = match self.resolve(caller, name).await {
                Ok(entity) => entity,
                Err(MemoryError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            views.push(self.view(&entity).await?);
        }
        Ok(views)
    }

    pub(super) async fn view(&self, entity: &EntityRow) -> Result<EntityView, MemoryError> {
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                "SELECT text FROM observations WHERE entity_id = ?1 ORDER BY id",
                libsql::params![entity.id],
            )
            .await?;
        let mut observations = Vec::new();
        while let Some(row) = rows.next().await? {
            observations.push(row.get::<String>(0)?);
        }
        Ok(EntityView {
            name: entity.name.clone(),
            entity_type: entity.entity_type.clone(),
            scope: entity.scope,
            owner: entity.owner.clone(),
            observations,
        })
    }

    /// The entity and everything within `depth` relation hops of it that
    /// the caller can see.
    pub async fn neighbours(
        &self,
        caller: &Caller,
        name: &str,
        depth: usize,
    ) -> Result<Neighbourhood, MemoryError> {
        let depth = depth.min(MAX_DEPTH);
        let start = self.resolve(caller, name).await?;
        let mut seen: HashSet<i64> = HashSet::from([start.id]);
        let mut frontier = vec![start.clone()];
        let mut entities = vec![start];
        let mut relations = Vec::new();
        let mut related: HashSet<(i64, i64, String)> = HashSet::new();
        let mut truncated = false;
        'walk: for _ in 0..depth {
            let mut next = Vec::new();
            for entity in &frontier {
                let conn = self.db.reader().await?;
                // Only what the caller may read is counted against the cap;
                // one more row than can be taken tells that there were more.
                let (visible, owners) = match caller {
                    Caller::Operator => ("", vec![]),
                    Caller::Agent {
                        name, workspace, ..
                    } => (
                        "AND ((o.scope = 'agent' AND o.owner = ?3)
                              OR (o.scope = 'workspace' AND o.owner = ?4)
                              OR o.scope = 'global')",
                        vec![name.clone(), workspace.clone()],
                    ),
                };
                let mut params: Vec<libsql::Value> =
                    vec![entity.id.into(), ((MAX_NEIGHBOURHOOD + 1) as i64).into()];
                params.extend(owners.into_iter().map(libsql::Value::from));
                let mut rows = conn
                    .query(
                        &format!(
                            "SELECT r.from_id, r.to_id, r.relation_type, r.strength,
                                    f.name, t.name, o.id, o.name, o.entity_type, o.scope, o.owner
                             FROM relations r
                             JOIN entities f ON f.id = r.from_id
                             JOIN entities t ON t.id = r.to_id
                             JOIN entities o ON o.id = CASE WHEN r.from_id = ?1 THEN r.to_id ELSE r.from_id END
                             WHERE (r.from_id = ?1 OR r.to_id = ?1) {visible}
                             ORDER BY r.strength DESC, r.id
                             LIMIT ?2"
                        ),
                        params,
                    )
                    .await?;
                while let Some(row) = rows.next().await? {
                    if relations.len() >= MAX_NEIGHBOURHOOD || entities.len() >= MAX_NEIGHBOURHOOD {
                        truncated = true;
                        break 'walk;
                    }
                    let other = EntityRow {
                        id: row.get(6)?,
                        name: row.get(7)?,
                        entity_type: row.get(8)?,
                        scope: Scope::parse(&row.get::<String>(9)?).unwrap_or(Scope::Agent),
                        owner: row.get(10)?,
                    };
                    if !caller.can_read(other.scope, &other.owner) {
                        continue;
                    }
                    let key = (
                        row.get::<i64>(0)?,
                        row.get::<i64>(1)?,
                        row.get::<String>(2)?,
                    );
                    if related.insert(key.clone()) {
                        relations.push(RelationView {
                            from: row.get(4)?,
                            to: row.get(5)?,
                            relation_type: key.2,
                            strength: row.get(3)?,
                        });
                    }
                    if seen.insert(other.id) {
                        next.push(other.clone());
                        entities.push(other);
                    }
                }
            }
            frontier = next;
        }
        let mut views = Vec::with_capacity(entities.len());
        for entity in &entities {
            views.push(self.view(entity).await?);
        }
        Ok(Neighbourhood {
            entities: views,
            relations,
            truncated,
        })
    }

    /// Deletes the entity with its observations and relations.
    pub async fn forget(&self, caller: &Caller, name: &str) -> Result<(), MemoryError> {
        let entity = self.resolve(caller, name).await?;
        self.check_write(caller, &entity)?;
        let index = self.index.clone();
        self.db
            .write(|tx| async move {
                tx.execute(
                    "DELETE FROM entities WHERE id = ?1 AND scope = ?2 AND owner = ?3",
                    libsql::params![entity.id, entity.scope.as_str(), entity.owner.as_str()],
                )
                .await?;
                let update: AfterCommit = Box::new(move || {
                    index.write().expect("index lock").remove_entity(entity.id);
                });
                Ok(((), Some(update)))
            })
            .await
    }

    /// Hybrid search: vector candidates re-ranked exactly, fused with FTS5
    /// keyword matches by reciprocal rank; only what the caller may read.
    pub async fn search(
        &self,
        caller: &Caller,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Vec<SearchHit>, MemoryError> {
        check_text("query", query, MAX_OBSERVATION)?;
        let _timer = crate::metrics::metrics()
            .memory_search_latency
            .start_timer();
        let limit = options.limit.clamp(1, MAX_SEARCH_LIMIT);
        // The two paths are independent: the vector scan runs on a blocking
        // thread while the keyword query runs here, so the search costs the
        // slower of the two rather than their sum.
        let vector_path = async {
            let Some(engine) = &self.embeddings else {
                return Ok(Vec::new());
            };
            let embedded = engine.embed_as(&caller.lane(), &[query.to_owned()]).await?;
            self.nearest(caller, &embedded[0].vector, limit * 2, options)
                .await
        };
        let keyword_path = self.keyword_search(caller, query, options, limit * 2);
        let (nearest, keyword_ranking) = tokio::join!(vector_path, keyword_path);
        let nearest = nearest?;
        let keyword_ranking = keyword_ranking?;
        let vector_ranking: Vec<i64> = nearest.iter().map(|(id, _)| *id).collect();
        let similarity: HashMap<i64, f32> = nearest.into_iter().collect();

        let mut fused: HashMap<i64, f32> = HashMap::new();
        for ranking in [&vector_ranking, &keyword_ranking] {
            for (rank, id) in ranking.iter().enumerate() {
                *fused.entry(*id).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
            }
        }
        let mut order: Vec<(i64, f32)> = fused.into_iter().collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        order.truncate(limit);

        let details = self
            .observation_details(&order.iter().map(|o| o.0).collect::<Vec<_>>())
            .await?;
        Ok(order
            .into_iter()
            .filter_map(|(id, score)| {
                let (observation, entity, entity_type, scope) = details.get(&id)?.clone();
                Some(SearchHit {
                    entity,
                    entity_type,
                    scope,
                    observation,
                    score,
                    similarity: similarity.get(&id).copied(),
                })
            })
            .collect())
    }

    /// The vector path of search: the `k` observations nearest `query`
    /// (exact cosine, best first) among those the caller may read. The
    /// int8 scan proposes 2x `k` candidates; their stored float32 vectors
    /// decide the order.
    pub async fn nearest(
        &self,
        caller: &Caller,
        query: &[f32],
        k: usize,
        options: &SearchOptions,
    ) -> Result<Vec<(i64, f32)>, MemoryError> {
        let entity_type = match options.entity_type.as_deref() {
            Some(name) => match self.interned(name) {
                Some(id) => Some(id),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let filter = ScanFilter {
            allowed: caller
                .readable()
                .iter()
                .filter_map(|(scope, owner)| {
                    self.interned(owner).map(|owner| Visibility {
                        scope: scope.code(),
                        owner,
                    })
                })
                .collect(),
            operator: *caller == Caller::Operator,
            entity_type,
        };
        let index = self.index.clone();
        let query_vector = query.to_vec();
        let candidates = tokio::task::spawn_blocking(move || {
            index
                .read()
                .expect("index lock")
                .search(&query_vector, k * 2, &filter)
        })
        .await
        .expect("index search panicked");
        let ids: Vec<i64> = candidates.iter().map(|c| c.0).collect();
        let mut exact: Vec<(i64, f32)> = self
            .vectors(&ids)
            .await?
            .into_iter()
            .map(|(id, vector)| (id, vector.iter().zip(query).map(|(a, b)| a * b).sum()))
            .collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        exact.truncate(k);
        Ok(exact)
    }

    async fn vectors(&self, ids: &[i64]) -> Result<Vec<(i64, Vec<f32>)>, MemoryError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.db.reader().await?;
        let sql = format!(
            "SELECT id, embedding FROM observations WHERE embedding IS NOT NULL AND id IN ({})",
            placeholders(ids.len(), 1)
        );
        let mut rows = conn
            .query(&sql, libsql::params_from_iter(ids.iter().copied()))
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        while let Some(row) = rows.next().await? {
            out.push((row.get::<i64>(0)?, decode_vector(&row.get::<Vec<u8>>(1)?)));
        }
        Ok(out)
    }

    async fn keyword_search(
        &self,
        caller: &Caller,
        query: &str,
        options: &SearchOptions,
        limit: usize,
    ) -> Result<Vec<i64>, MemoryError> {
        let Some(expression) = fts_expression(query) else {
            return Ok(Vec::new());
        };
        let mut params: Vec<Value> = vec![expression.into()];
        // Rank inside FTS5 first, then check scopes on the best few: joining
        // every match to its entity costs ~100 ms at 100k observations.
        // FTS5 walks matches in rowid order, so the inner LIMIT stops the
        // scoring after the newest KEYWORD_SCORED matches.
        let mut sql = format!(
            "SELECT o.id FROM (
                 SELECT rowid, score FROM (
                     SELECT rowid, bm25(observations_fts) AS score FROM observations_fts
                     WHERE observations_fts MATCH ?1 ORDER BY rowid DESC LIMIT {KEYWORD_SCORED}
                 ) ORDER BY score LIMIT {}
             ) f
             JOIN observations o ON o.id = f.rowid
             JOIN entities e ON e.id = o.entity_id
             WHERE 1 = 1",
            limit * KEYWORD_OVERSAMPLE
        );
        if *caller != Caller::Operator {
            let readable = caller.readable();
            let clauses: Vec<String> = readable
                .iter()
                .map(|(scope, owner)| {
                    params.push(scope.as_str().into());
                    params.push(owner.clone().into());
                    format!(
                        "(e.scope = ?{} AND e.owner = ?{})",
                        params.len() - 1,
                        params.len()
                    )
                })
                .collect();
            sql.push_str(&format!(" AND ({})", clauses.join(" OR ")));
        }
        if let Some(entity_type) = &options.entity_type {
            params.push(entity_type.clone().into());
            sql.push_str(&format!(" AND e.entity_type = ?{}", params.len()));
        }
        sql.push_str(&format!(" ORDER BY f.score LIMIT {limit}"));
        let conn = self.db.reader().await?;
        let mut rows = conn.query(&sql, libsql::params_from_iter(params)).await?;
        let mut ids = Vec::new();
        while let Some(row) = rows.next().await? {
            ids.push(row.get::<i64>(0)?);
        }
        Ok(ids)
    }

    async fn observation_details(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, (String, String, String, Scope)>, MemoryError> {
        let mut out = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let conn = self.db.reader().await?;
        let sql = format!(
            "SELECT o.id, o.text, e.name, e.entity_type, e.scope
             FROM observations o JOIN entities e ON e.id = o.entity_id
             WHERE o.id IN ({})",
            placeholders(ids.len(), 1)
        );
        let mut rows = conn
            .query(&sql, libsql::params_from_iter(ids.iter().copied()))
            .await?;
        while let Some(row) = rows.next().await? {
            out.insert(
                row.get::<i64>(0)?,
                (
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    Scope::parse(&row.get::<String>(4)?).unwrap_or(Scope::Agent),
                ),
            );
        }
        Ok(out)
    }

    /// Entities created since `since_ms` (unix ms): how fast the store
    /// grows. A range over the age index (`updated_at` is never before
    /// `created_at`), not a scan.
    pub async fn entities_created_since(&self, since_ms: i64) -> Result<u64, MemoryError> {
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                "SELECT count(*) FROM entities WHERE updated_at >= ?1 AND created_at >= ?1",
                [since_ms],
            )
            .await?;
        let row = rows.next().await?.expect("one row");
        Ok(row.get::<i64>(0)? as u64)
    }

    /// When the store's first surviving entity was created (unix ms).
    pub async fn first_created_ms(&self) -> Result<Option<i64>, MemoryError> {
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query("SELECT created_at FROM entities ORDER BY id LIMIT 1", ())
            .await?;
        Ok(match rows.next().await? {
            Some(row) => Some(row.get::<i64>(0)?),
            None => None,
        })
    }

    pub async fn stats(&self) -> Result<Stats, MemoryError> {
        let conn = self.db.reader().await?;
        let mut rows = conn
            .query(
                "SELECT (SELECT count(*) FROM entities),
                        (SELECT count(*) FROM observations),
                        (SELECT count(*) FROM relations),
                        (SELECT count(*) FROM observations WHERE embedding IS NULL),
                        (SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size())",
                (),
            )
            .await?;
        let row = rows.next().await?.expect("one row");
        let index = self.index.read().expect("index lock");
        let wal =
            std::fs::metadata(format!("{}-wal", self.db.path().display())).map_or(0, |m| m.len());
        Ok(Stats {
            entities: row.get::<i64>(0)? as u64,
            observations: row.get::<i64>(1)? as u64,
            relations: row.get::<i64>(2)? as u64,
            observations_without_embedding: row.get::<i64>(3)? as u64,
            database_bytes: row.get::<i64>(4)? as u64 + wal,
            index_entries: index.len(),
            index_bytes: index.memory_bytes(),
            embedding_cache_hit_rate: self
                .embeddings
                .as_ref()
                .and_then(|e| e.cache_stats().hit_rate()),
        })
    }
}

struct ScanFilter {
    allowed: Vec<Visibility>,
    operator: bool,
    entity_type: Option<u32>,
}

impl EntryFilter for ScanFilter {
    fn allow(&self, visibility: Visibility, entity_type: u32) -> bool {
        (self.operator || self.allowed.contains(&visibility))
            && self.entity_type.is_none_or(|t| t == entity_type)
    }
}

/// Steps a statement to its end: an `INSERT ... RETURNING` left mid-way
/// keeps the statement active and the transaction cannot commit.
pub(super) async fn finish(mut rows: libsql::Rows) -> Result<(), MemoryError> {
    while rows.next().await?.is_some() {}
    Ok(())
}

/// Checks each observation and drops repeats within the call.
fn distinct_observations(observations: &[String]) -> Result<Vec<String>, MemoryError> {
    if observations.len() > MAX_OBSERVATIONS_PER_CALL {
        return Err(MemoryError::Invalid(format!(
            "observations: at most {MAX_OBSERVATIONS_PER_CALL} per call"
        )));
    }
    let mut texts: Vec<String> = Vec::new();
    for text in observations {
        check_text("observation", text, MAX_OBSERVATION)?;
        if !texts.contains(text) {
            texts.push(text.clone());
        }
    }
    Ok(texts)
}

pub(super) fn check_text(what: &str, text: &str, max: usize) -> Result<(), MemoryError> {
    if text.trim().is_empty() {
        return Err(MemoryError::Invalid(format!("{what} must not be empty")));
    }
    if text.len() > max {
        return Err(MemoryError::Invalid(format!(
            "{what} is {} bytes; the limit is {max}",
            text.len()
        )));
    }
    Ok(())
}

/// `?first, ?first+1, ...` for `count` parameters.
pub(super) fn placeholders(count: usize, first: usize) -> String {
    (first..first + count)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The query's words, minus stopwords, as quoted FTS5 terms that must all
/// match: user text never reaches FTS5's query syntax, and meaning-only
/// matches are the vector path's job.
fn fts_expression(query: &str) -> Option<String> {
    let terms: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty() && !STOPWORDS.contains(&t.to_lowercase().as_str()))
        .take(32)
        .map(|t| format!("\"{t}\""))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

pub(super) fn encode_vector(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub(super) fn decode_vector(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_queries_are_quoted_terms() {
        assert_eq!(
            fts_expression("who* manages \"Bob\"? NEAR(x)").as_deref(),
            Some("\"manages\" \"Bob\" \"NEAR\" \"x\"")
        );
        assert_eq!(fts_expression("?!"), None);
        assert_eq!(fts_expression("what is the"), None);
    }

    #[test]
    fn vectors_round_trip_through_blobs() {
        let v = vec![0.25f32, -1.0, 3.5];
        assert_eq!(decode_vector(&encode_vector(&v)), v);
    }

    /// Rows changed behind the index's back, as replication changes a
    /// replica's file: the index follows each kind of change.
    #[tokio::test]
    async fn the_index_follows_rows_changed_behind_its_back() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Memory::open(
            &dir.path().join("m.db"),
            &crate::config::SqliteConfig::default(),
            None,
        )
        .await
        .unwrap();
        let unit = |axis: usize| {
            let mut v = vec![0.0f32; 384];
            v[axis] = 1.0;
            encode_vector(&v)
        };
        let sql = |statement: &'static str, params: Vec<libsql::Value>| {
            let memory = memory.clone();
            async move {
                memory
                    .db()
                    .writer()
                    .await
                    .execute(statement, params)
                    .await
                    .unwrap();
            }
        };
        sql(
            "INSERT INTO entities (id, scope, owner, name, entity_type, created_at, updated_at)
             VALUES (1, 'global', '', 'e', 't', 0, 0)",
            vec![],
        )
        .await;
        let insert = "INSERT INTO observations (id, entity_id, text, embedding, created_at) VALUES (?1, 1, ?2, ?3, 0)";
        for id in 1..=3i64 {
            sql(
                insert,
                vec![id.into(), format!("o{id}").into(), unit(id as usize).into()],
            )
            .await;
        }
        let held = |memory: &Memory| {
            let mut ids = memory.index.read().unwrap().ids().to_vec();
            ids.sort();
            ids
        };
        // New rows past the last id followed.
        memory.follow_replication().await.unwrap();
        assert_eq!(held(&memory), [1, 2, 3]);
        // One row without a vector arrives, then is given one by a backfill
        // elsewhere while another is deleted: the counts match, the ids do
        // not.
        sql(
            "INSERT INTO observations (id, entity_id, text, embedding, created_at) VALUES (4, 1, 'o4', NULL, 0)",
            vec![],
        )
        .await;
        memory.follow_replication().await.unwrap();
        sql("INSERT INTO observations (id, entity_id, text, embedding, created_at) VALUES (5, 1, 'o5', ?1, 0)", vec![unit(5).into()]).await;
        memory.follow_replication().await.unwrap();
        assert_eq!(held(&memory), [1, 2, 3, 5]);
        sql(
            "UPDATE observations SET embedding = ?1 WHERE id = 4",
            vec![unit(4).into()],
        )
        .await;
        sql("DELETE FROM observations WHERE id = 2", vec![]).await;
        assert_eq!(memory.follow_replication().await.unwrap(), 2);
        assert_eq!(held(&memory), [1, 3, 4, 5]);
        // Nothing changed: nothing read.
        assert_eq!(memory.follow_replication().await.unwrap(), 0);
    }
}
