//! `caxton benchmark system --observations N`: what a start costs and what
//! the host keeps with a large store, beside an empty store and a host
//! without the model, in the same run.
//!
//! Three starts of the large store: the first builds the vector index from
//! the store; a clean stop saves it; the second reads it back (the warm
//! start); a kill and a third start show the rebuild after a crash.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::memory::{Random, centers, synthetic_entities};
use super::metric;
use super::served::{Served, serve};
use crate::config::SqliteConfig;
use crate::memory::Memory;

/// What one start showed.
pub struct StartFigures {
    /// Spawn to the "listening" line.
    pub listening_ms: f64,
    /// Spawn to `/api/v1/ready` answering 200 (model and index loaded).
    pub ready_ms: f64,
    /// VmHWM once settled: the start's peak.
    pub peak_mb: f64,
    pub rss_mb: f64,
    pub anon_mb: f64,
    /// What `memory stats` says the vector index holds.
    pub index_mb: f64,
    pub index_entries: f64,
}

impl StartFigures {
    pub fn json(&self) -> Value {
        json!({
            "listening_ms": self.listening_ms,
            "ready_ms": self.ready_ms,
            "peak_mb": self.peak_mb,
            "rss_mb": self.rss_mb,
            "anon_mb": self.anon_mb,
            "index_mb": self.index_mb,
            "index_entries": self.index_entries,
        })
    }
}

/// Starts a server on `data` with `config`, waits until it is ready and
/// has settled, and reads its memory figures.
pub async fn start_measured(
    agents: &Path,
    data: &Path,
    config: &str,
) -> anyhow::Result<(Served, StartFigures)> {
    let spawned = Instant::now();
    let served = serve(agents, data, config)?;
    let listening_ms = served.startup.as_secs_f64() * 1e3;
    served.wait_ready(Duration::from_secs(120)).await?;
    // The listening line is read by a thread of the harness; what it adds
    // to the spawn time is counted in `ready_ms` either way.
    let ready_ms = (spawned.elapsed().as_secs_f64() * 1e3).max(listening_ms);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats: Value = served
        .client
        .get(format!("{}/api/v1/memory/stats", served.base))
        .send()
        .await?
        .json()
        .await?;
    let figures = StartFigures {
        listening_ms,
        ready_ms,
        peak_mb: served.proc_status_mb("VmHWM").unwrap_or(f64::NAN),
        rss_mb: served.proc_status_mb("VmRSS").unwrap_or(f64::NAN),
        anon_mb: served.proc_status_mb("RssAnon").unwrap_or(f64::NAN),
        index_mb: stats["index_bytes"].as_f64().unwrap_or(f64::NAN) / 1e6,
        index_entries: stats["index_entries"].as_f64().unwrap_or(f64::NAN),
    };
    Ok((served, figures))
}

/// Writes `observations` synthetic observations with their vectors into
/// the store at `database` (10 per entity, as `benchmark memory` does).
pub async fn build_store(database: &Path, observations: usize) -> anyhow::Result<()> {
    if let Some(dir) = database.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let memory = Memory::open(database, &SqliteConfig::default(), None).await?;
    let mut random = Random(0x5EED_F00D);
    let centers = centers(&mut random);
    let mut vectors = Vec::new();
    let started = Instant::now();
    let mut reported = 0;
    let mut written = 0;
    while written < observations {
        vectors.clear();
        let lines = synthetic_entities(&mut random, &centers, &mut vectors, 200)?;
        written += vectors.len();
        memory.import(lines).await?;
        if written * 10 / observations.max(1) > reported {
            reported = written * 10 / observations.max(1);
            eprintln!(
                "store: {written} observations ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// Requests in the in-use phase: three distinct searches to one write.
const USE_REQUESTS: usize = 2000;

/// Sends [`USE_REQUESTS`] requests from 4 clients: searches with distinct
/// queries and writes of one observation. Returns the searches' latency
/// summary and the anonymous memory afterwards.
async fn use_for_a_while(served: &Served) -> anyhow::Result<(Value, f64)> {
    let clients = 4;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let http = served.client.clone();
            let base = served.base.clone();
            tokio::spawn(async move {
                let mut searches = Vec::new();
                for i in (client..USE_REQUESTS).step_by(clients) {
                    let started = Instant::now();
                    let (path, body) = if i % 4 == 3 {
                        (
                            "/api/v1/memory/entities",
                            json!({"agent": "writer", "name": format!("note-{i}"), "entity_type": "note",
                                   "observations": [format!("note {i}: the kitchen sensor read {}", i * 7)]}),
                        )
                    } else {
                        (
                            "/api/v1/memory/search",
                            json!({"agent": "synthetic", "query": format!("what happened to the invoice {i}"), "limit": 10}),
                        )
                    };
                    let reply = http.post(format!("{base}{path}")).json(&body).send().await?;
                    anyhow::ensure!(
                        reply.status().is_success(),
                        "{path}: {}",
                        reply.status()
                    );
                    if path.ends_with("search") {
                        searches.push(started.elapsed());
                    }
                }
                Ok(searches)
            })
        })
        .collect();
    let mut searches = Vec::new();
    for task in tasks {
        searches.extend(task.await??);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let anon = served.proc_status_mb("RssAnon").unwrap_or(f64::NAN);
    Ok((super::percentiles(searches), anon))
}

/// The large-store section of `benchmark system`. `empty` and `no_model`
/// are the same run's starts on an empty store, with and without the
/// model: the baselines the figures are read against.
pub async fn at_scale(
    work: &Path,
    agents: &Path,
    config: &str,
    observations: usize,
    empty: &StartFigures,
    no_model: &StartFigures,
) -> anyhow::Result<(Value, Vec<Value>)> {
    let data = work.join("data-scale");
    build_store(&data.join("memory.db"), observations).await?;

    let (first_server, first) = start_measured(agents, &data, config).await?;
    let status = first_server.terminate()?;
    anyhow::ensure!(status.success(), "the server exited with {status}");
    let index_file = data.join("memory.db.index");
    anyhow::ensure!(
        index_file.exists(),
        "a clean stop left no index file at {}",
        index_file.display()
    );
    let (warm_server, warm) = start_measured(agents, &data, config).await?;
    anyhow::ensure!(
        !index_file.exists(),
        "the index file was not consumed at start"
    );
    anyhow::ensure!(
        warm.index_entries == first.index_entries,
        "the warm start's index holds {} entries, the rebuilt one {}",
        warm.index_entries,
        first.index_entries
    );
    // In use: distinct searches (each embeds its query, filling the
    // embedding cache and the readers' page caches) and writes.
    let (search_latency, anon_after_load_mb) = use_for_a_while(&warm_server).await?;
    // A crash leaves no file: the next start rebuilds.
    drop(warm_server);
    let (_crashed, after_crash) = start_measured(agents, &data, config).await?;

    let model_mb = empty.anon_mb - no_model.anon_mb;
    let allowance = model_mb + warm.index_mb + 40.0;
    eprintln!(
        "{observations} observations: index {:.1} MB ({} entries); model {model_mb:.1} MB anonymous",
        warm.index_mb, warm.index_entries
    );
    for (name, f) in [
        ("empty store", empty),
        ("first start (index built)", &first),
        ("warm start (index file)", &warm),
        ("after a crash (index built)", &after_crash),
    ] {
        eprintln!(
            "  {name}: ready {:.0} ms (listening {:.0}); peak {:.1} MB; RSS {:.1} MB, anonymous {:.1} MB",
            f.ready_ms, f.listening_ms, f.peak_mb, f.rss_mb, f.anon_mb
        );
    }
    eprintln!(
        "  warm peak - steady {:.1} MB (goal <= 32); anonymous {:.1} MB against model + index + 40 = {allowance:.1} MB",
        warm.peak_mb - warm.rss_mb,
        warm.anon_mb
    );
    eprintln!(
        "  after {USE_REQUESTS} searches and writes: anonymous {anon_after_load_mb:.1} MB; search {search_latency}"
    );

    let prefix = format!("system.{observations}obs");
    let mut metrics = Vec::new();
    for (name, f) in [("built", &first), ("warm", &warm)] {
        metrics.push(metric(
            &format!("{prefix}.{name}.ready_ms"),
            f.ready_ms,
            "ms",
            "lower",
        ));
        metrics.push(metric(
            &format!("{prefix}.{name}.peak_mb"),
            f.peak_mb,
            "MB",
            "lower",
        ));
        metrics.push(metric(
            &format!("{prefix}.{name}.peak_over_steady_mb"),
            f.peak_mb - f.rss_mb,
            "MB",
            "lower",
        ));
        metrics.push(metric(
            &format!("{prefix}.{name}.anon_mb"),
            f.anon_mb,
            "MB",
            "lower",
        ));
    }
    metrics.push(metric(
        &format!("{prefix}.in_use.anon_mb"),
        anon_after_load_mb,
        "MB",
        "lower",
    ));
    metrics.push(metric(
        &format!("{prefix}.anon_over_model_and_index_mb"),
        warm.anon_mb - model_mb - warm.index_mb,
        "MB",
        "lower",
    ));
    let report = json!({
        "observations": observations,
        "model_anon_mb": model_mb,
        "empty": empty.json(),
        "no_model": no_model.json(),
        "first_start": first.json(),
        "warm_start": warm.json(),
        "after_crash": after_crash.json(),
        "in_use": {"requests": USE_REQUESTS, "anon_mb": anon_after_load_mb, "search": search_latency},
    });
    Ok((report, metrics))
}
