//! `caxton benchmark memory`: insert rate, search latency and recall of
//! the knowledge graph beside an exact scan, at growing sizes.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Value, json};

use super::percentiles;
use crate::config::{EmbeddingConfig, SqliteConfig};
use crate::embed::EmbeddingEngine;
use crate::memory::{Caller, EntityKey, ExportLine, Memory, ObservationLine, Scope, SearchOptions};

/// What `caxton benchmark memory` runs.
#[derive(Debug, Clone)]
pub struct MemoryBenchmark {
    /// Observation counts to measure search at (ascending); the last is the total.
    pub checkpoints: Vec<usize>,
    /// Queries per checkpoint.
    pub queries: usize,
    /// Observations inserted through `remember` (real embedding) for the insert rate.
    pub embedded_inserts: usize,
    /// Writes per configuration for the durability comparison (0 skips it).
    pub durable_writes: usize,
    /// Where the temporary database goes (removed afterwards).
    pub work_dir: PathBuf,
}

/// Concurrent writers in the durability comparison: one (every write its
/// own commit) and many (what group commit is for).
const WRITERS: [usize; 2] = [1, 16];

/// Deterministic random numbers (xorshift64*), so runs are comparable.
pub(super) struct Random(pub(super) u64);

impl Random {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// A standard normal sample (Box-Muller).
    pub(super) fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit().max(1e-7), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Synthetic entities have this many observations each.
const OBSERVATIONS_PER_ENTITY: usize = 10;

pub(super) fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Clustered unit vectors: sentence embeddings bunch by topic like this.
fn clustered(random: &mut Random, centers: &[Vec<f32>], spread: f32) -> Vec<f32> {
    let center = &centers[random.below(centers.len())];
    let scale = spread / (center.len() as f32).sqrt();
    normalized(center.iter().map(|c| c + random.normal() * scale).collect())
}

/// `entities` synthetic entities of [`OBSERVATIONS_PER_ENTITY`] clustered
/// observations each, owned by agent `synthetic`, as import lines; their
/// vectors are appended to `vectors` (whose length numbers them).
pub(super) fn synthetic_entities(
    random: &mut Random,
    centers: &[Vec<f32>],
    vectors: &mut Vec<Vec<f32>>,
    entities: usize,
) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for _ in 0..entities {
        let entity = vectors.len() / OBSERVATIONS_PER_ENTITY;
        let observations: Vec<ObservationLine> = (0..OBSERVATIONS_PER_ENTITY)
            .map(|_| {
                let vector = clustered(random, centers, 1.2);
                let text = sentence(random, vectors.len());
                vectors.push(vector.clone());
                ObservationLine {
                    text,
                    embedding: Some(vector),
                }
            })
            .collect();
        lines.push(serde_json::to_string(&ExportLine::Entity {
            key: EntityKey {
                scope: Scope::Agent,
                owner: "synthetic".into(),
                name: format!("entity-{entity}"),
            },
            entity_type: "synthetic".into(),
            observations,
        })?);
    }
    Ok(lines)
}

/// 256 random unit vectors: the topics synthetic observations cluster on.
pub(super) fn centers(random: &mut Random) -> Vec<Vec<f32>> {
    (0..256)
        .map(|_| normalized((0..384).map(|_| random.normal()).collect()))
        .collect()
}

const WORDS: [&str; 16] = [
    "river", "invoice", "garden", "server", "meeting", "bicycle", "recipe", "contract", "sensor",
    "library", "harbour", "ticket", "battery", "forest", "camera", "kitchen",
];

fn sentence(random: &mut Random, i: usize) -> String {
    let mut pick = || WORDS[random.below(WORDS.len())];
    format!(
        "Observation {i}: the {} near the {} was checked after the {} and before the {}.",
        pick(),
        pick(),
        pick(),
        pick()
    )
}

impl MemoryBenchmark {
    pub async fn run(&self) -> anyhow::Result<Value> {
        std::fs::create_dir_all(&self.work_dir)?;
        let result = self.measure().await;
        let _ = std::fs::remove_dir_all(&self.work_dir);
        result
    }

    async fn measure(&self) -> anyhow::Result<Value> {
        let engine =
            EmbeddingEngine::start(&EmbeddingConfig::default(), &crate::harness::model_dir())?;
        engine.embed(&["warm up".to_owned()]).await?;
        let memory = Memory::open(
            &self.work_dir.join("memory.db"),
            &SqliteConfig::default(),
            Some(engine.clone()),
        )
        .await?;
        let mut random = Random(0x5EED_CAFE);
        let mut results = serde_json::Map::new();
        let mut metrics = Vec::new();

        if self.durable_writes > 0 {
            let (table, rows) = self.write_throughput().await?;
            results.insert("write_throughput".into(), table);
            metrics.extend(rows);
        }

        // Insert rate through the full path: embed + write + index.
        let writer = Caller::agent("bench");
        let started = Instant::now();
        for i in 0..self.embedded_inserts {
            let text = sentence(&mut random, i);
            memory
                .remember(&writer, None, &format!("note-{i}"), "note", &[text])
                .await?;
        }
        let rate = self.embedded_inserts as f64 / started.elapsed().as_secs_f64();
        eprintln!("insert with embedding: {rate:.1} observations/s");
        results.insert("insert_with_embedding_per_s".into(), json!(rate));

        // Synthetic vectors for scale: owned by another agent so the
        // embedded notes above stay out of the comparison.
        let centers = centers(&mut random);
        let reader = Caller::agent("synthetic");
        let mut vectors: Vec<Vec<f32>> = Vec::new();
        let mut ids: Vec<i64> = Vec::new();
        let first_id = self.embedded_inserts as i64 + 1;
        let mut checkpoints = Vec::new();
        let load_started = Instant::now();
        for &target in &self.checkpoints {
            while vectors.len() < target {
                let from = vectors.len();
                let lines = synthetic_entities(&mut random, &centers, &mut vectors, 100)?;
                ids.extend((from..vectors.len()).map(|i| first_id + i as i64));
                memory.import(lines).await?;
            }
            eprintln!(
                "loaded {} observations ({:.0} s)",
                vectors.len(),
                load_started.elapsed().as_secs_f64()
            );
            checkpoints.push(
                self.search_at(&memory, &reader, &vectors, &ids, &mut random)
                    .await?,
            );
        }
        metrics.push(super::metric(
            "memory.insert_with_embedding.per_s",
            rate,
            "obs/s",
            "higher",
        ));
        for row in &checkpoints {
            let name = format!("memory.{}obs", row["observations"]);
            metrics.push(super::metric(
                &format!("{name}.hybrid_p99_ms"),
                row["hybrid_search"]["p99_ms"].as_f64().unwrap_or(f64::NAN),
                "ms",
                "lower",
            ));
            metrics.push(super::metric(
                &format!("{name}.index_p99_ms"),
                row["index_search"]["p99_ms"].as_f64().unwrap_or(f64::NAN),
                "ms",
                "lower",
            ));
            metrics.push(super::metric(
                &format!("{name}.sqlite_point_read_p99_ms"),
                row["sqlite_point_read"]["p99_ms"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                "ms",
                "lower",
            ));
            metrics.push(super::metric(
                &format!("{name}.recall_at_10"),
                row["recall_at_10"].as_f64().unwrap_or(0.0),
                "",
                "higher",
            ));
        }
        results.insert("checkpoints".into(), Value::Array(checkpoints));
        results.insert("suite".into(), json!("memory"));
        results.insert("metrics".into(), Value::Array(metrics));
        Ok(Value::Object(results))
    }

    /// Store writes per second (no embedding: the store's cost alone) with
    /// `synchronous = NORMAL` (the old default: an acknowledged write can
    /// be lost on power loss) and `FULL` (the default: it cannot), for one
    /// writer and for many, in the same run.
    async fn write_throughput(&self) -> anyhow::Result<(Value, Vec<Value>)> {
        use crate::config::Synchronous;
        let mut table = serde_json::Map::new();
        let mut metrics = Vec::new();
        let mut per_s = std::collections::HashMap::new();
        for synchronous in [Synchronous::Normal, Synchronous::Full] {
            let name = synchronous.as_sql().to_lowercase();
            let mut row = serde_json::Map::new();
            for writers in WRITERS {
                let dir = self.work_dir.join(format!("writes-{name}-{writers}"));
                let config = SqliteConfig {
                    synchronous,
                    ..SqliteConfig::default()
                };
                let memory = Memory::open(&dir.join("memory.db"), &config, None).await?;
                let each = self.durable_writes.div_ceil(writers);
                let started = Instant::now();
                let tasks: Vec<_> = (0..writers)
                    .map(|w| {
                        let memory = memory.clone();
                        tokio::spawn(async move {
                            let caller = Caller::agent(format!("writer-{w}"));
                            for i in 0..each {
                                memory
                                    .remember(
                                        &caller,
                                        None,
                                        &format!("fact-{i}"),
                                        "fact",
                                        &[format!("writer {w} wrote fact {i}")],
                                    )
                                    .await?;
                            }
                            anyhow::Ok(())
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await??;
                }
                let rate = (each * writers) as f64 / started.elapsed().as_secs_f64();
                eprintln!("memory writes, synchronous={name}, {writers} writer(s): {rate:.0}/s");
                row.insert(writers.to_string(), json!(rate));
                per_s.insert((name.clone(), writers), rate);
                metrics.push(super::metric(
                    &format!("memory.writes.{name}.{writers}_writers.per_s"),
                    rate,
                    "writes/s",
                    "higher",
                ));
                drop(memory);
                let _ = std::fs::remove_dir_all(&dir);
            }
            table.insert(name, Value::Object(row));
        }
        for writers in WRITERS {
            let ratio =
                per_s[&("full".to_owned(), writers)] / per_s[&("normal".to_owned(), writers)];
            eprintln!("full / normal with {writers} writer(s): {ratio:.2}");
            table.insert(format!("full_over_normal_{writers}_writers"), json!(ratio));
        }
        Ok((Value::Object(table), metrics))
    }

    async fn search_at(
        &self,
        memory: &Memory,
        reader: &Caller,
        vectors: &[Vec<f32>],
        ids: &[i64],
        random: &mut Random,
    ) -> anyhow::Result<Value> {
        let options = SearchOptions {
            limit: 10,
            entity_type: None,
        };
        let mut indexed = Vec::new();
        let mut exact = Vec::new();
        let mut hybrid = Vec::new();
        let mut found = 0usize;
        for q in 0..self.queries {
            // A query near a stored point, as real questions are near facts.
            let base = &vectors[random.below(vectors.len())];
            let query = normalized(
                base.iter()
                    .map(|x| x + random.normal() * 0.6 / (base.len() as f32).sqrt())
                    .collect(),
            );

            let started = Instant::now();
            let approximate = memory.nearest(reader, &query, 10, &options).await?;
            indexed.push(started.elapsed());

            // Baseline: exact float32 cosine over every vector, in RAM.
            let started = Instant::now();
            let mut scored: Vec<(usize, f32)> = vectors
                .iter()
                .enumerate()
                .map(|(i, v)| (i, v.iter().zip(&query).map(|(a, b)| a * b).sum()))
                .collect();
            scored.select_nth_unstable_by(9, |a, b| b.1.total_cmp(&a.1));
            let truth: Vec<i64> = scored[..10].iter().map(|(i, _)| ids[*i]).collect();
            exact.push(started.elapsed());
            found += approximate
                .iter()
                .filter(|(id, _)| truth.contains(id))
                .count();

            // The whole hybrid search; the query text repeats, so its
            // embedding comes from the cache and is excluded as asked.
            let text = format!("the {} near the garden", WORDS[q % 4]);
            let started = Instant::now();
            memory.search(reader, &text, &options).await?;
            if q >= 4 {
                hybrid.push(started.elapsed());
            }
        }
        // SQLite on its own: an entity and its observations by name (an
        // indexed point read through the reader pool), no vectors involved.
        let mut point_reads = Vec::new();
        let entities = vectors.len() / OBSERVATIONS_PER_ENTITY;
        for _ in 0..self.queries {
            let name = format!("entity-{}", random.below(entities));
            let started = Instant::now();
            let found = memory.entities(reader, &[name]).await?;
            point_reads.push(started.elapsed());
            anyhow::ensure!(found.len() == 1, "a stored entity was not found");
        }
        let stats = memory.stats().await?;
        let count = vectors.len();
        let recall = found as f64 / (self.queries * 10) as f64;
        let row = json!({
            "observations": count,
            "index_search": percentiles(indexed),
            "exact_scan_baseline": percentiles(exact),
            "hybrid_search": percentiles(hybrid),
            "sqlite_point_read": percentiles(point_reads),
            "recall_at_10": recall,
            "index_bytes": stats.index_bytes,
            "disk_bytes_per_observation": stats.database_bytes as f64 / stats.observations as f64,
        });
        eprintln!("{row}");
        Ok(row)
    }
}
