//! `caxton benchmark fleet`: what crossing hosts costs, in one run on
//! loopback with the real servers (`scripts/fleet-servers`).
//!
//! - Messages: host A asks its own echo by name, and host B's echo by name
//!   through NATS, taken in alternating rounds; NATS's own request/reply
//!   between two clients of the same server is the floor under the second.
//! - Replication: a fact written on host C, searched on host D until found
//!   (the lag a user sees, at the default `sync_interval`).
//! - Search at scale: the same synthetic store in a local file and in an
//!   embedded replica of sqld, searched in-process the same way.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::memory::{Random, centers, normalized, synthetic_entities};
use super::percentiles;
use super::served::{Served, echo_manifest, load, serve};
use super::suite::metric;
use crate::config::{EmbeddingConfig, SqliteConfig};
use crate::harness::fleet_servers::{Nats, Sqld};
use crate::memory::{Caller, Memory, SearchOptions};
use crate::store::Db;

/// What `caxton benchmark fleet` runs.
#[derive(Debug, Clone)]
pub struct FleetBenchmark {
    /// Messages per path (c=1), split into rounds.
    pub requests: usize,
    /// Writes whose replication lag is measured.
    pub lag_samples: usize,
    /// Observations in the search comparison (0 skips it).
    pub observations: usize,
    /// The replicas' `[memory] sync_interval` in the lag measurement.
    pub sync_interval: Duration,
}

const ROUNDS: usize = 5;
const QUIET: &str =
    "[http_server]\nmax_connections_per_client = 1024\n[http_server.rate_limit]\nenabled = false\n";
const NO_MODEL: &str = "[memory.embedding_config]\nenabled = false\n";

impl FleetBenchmark {
    pub async fn run(&self, work: &Path) -> anyhow::Result<Value> {
        let mut metrics = Vec::new();
        let messages = self.messages(work, &mut metrics).await?;
        let replication = self.replication(work, &mut metrics).await?;
        let search = if self.observations > 0 {
            self.search(work, &mut metrics).await?
        } else {
            Value::Null
        };
        Ok(json!({
            "suite": "fleet",
            "messages": messages,
            "replication": replication,
            "search": search,
            "metrics": metrics,
        }))
    }

    async fn messages(&self, work: &Path, metrics: &mut Vec<Value>) -> anyhow::Result<Value> {
        let nats = Nats::start()?;
        let host = |name: &str| -> anyhow::Result<Served> {
            let agents = work.join(format!("agents-{name}"));
            std::fs::create_dir_all(&agents)?;
            std::fs::write(
                agents.join("echo.toml"),
                echo_manifest(&format!("echo-{name}"), "1.0.0"),
            )?;
            serve(
                &agents,
                &work.join(format!("data-{name}")),
                &format!(
                    "{QUIET}{NO_MODEL}[cluster]\nnats_url = {:?}\nnode_name = {name:?}\nheartbeat_interval = \"500ms\"\n",
                    nats.url()
                ),
            )
        };
        let (a, _b) = (host("a")?, host("b")?);
        let body = json!({"content": {"text": "hello"}});
        // Until A reaches B's echo (B serves its subjects after a heartbeat).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reply = a
                .client
                .post(format!("{}/api/v1/agents/echo-b/messages", a.base))
                .json(&body)
                .send()
                .await?;
            if reply.status().is_success() {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "host a never reached host b's echo: {}",
                reply.text().await?
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // NATS's own request/reply: a responder echoing the payload.
        let client = async_nats::connect(nats.url()).await?;
        let mut responder = client.subscribe("bench.echo").await?;
        let answering = {
            let client = client.clone();
            tokio::spawn(async move {
                while let Some(message) = responder.next().await {
                    if let Some(reply) = message.reply {
                        let _ = client.publish(reply, message.payload).await;
                    }
                }
            })
        };
        let payload = serde_json::to_vec(&body)?;

        let per_round = (self.requests / ROUNDS).max(1);
        let (mut local, mut remote, mut floor) = (Vec::new(), Vec::new(), Vec::new());
        let (mut local_time, mut remote_time, mut floor_time) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for _ in 0..ROUNDS {
            let run = load(
                &a,
                "/api/v1/agents/echo-a/messages",
                body.clone(),
                per_round,
                1,
            )
            .await?;
            local_time += run.elapsed;
            local.extend(run.accepted);
            let run = load(
                &a,
                "/api/v1/agents/echo-b/messages",
                body.clone(),
                per_round,
                1,
            )
            .await?;
            remote_time += run.elapsed;
            remote.extend(run.accepted);
            let started = Instant::now();
            for _ in 0..per_round {
                let sent = Instant::now();
                client.request("bench.echo", payload.clone().into()).await?;
                floor.push(sent.elapsed());
            }
            floor_time += started.elapsed();
        }
        answering.abort();
        // Throughput with 16 in flight, same alternation.
        let (mut local16, mut remote16) = (
            super::served::Load::default(),
            super::served::Load::default(),
        );
        for _ in 0..ROUNDS {
            local16.add(
                load(
                    &a,
                    "/api/v1/agents/echo-a/messages",
                    body.clone(),
                    per_round * 4,
                    16,
                )
                .await?,
            );
            remote16.add(
                load(
                    &a,
                    "/api/v1/agents/echo-b/messages",
                    body.clone(),
                    per_round * 4,
                    16,
                )
                .await?,
            );
        }
        let rate = |n: usize, t: Duration| n as f64 / t.as_secs_f64().max(1e-9);
        let summary = json!({
            "local_by_name_c1": {"per_s": rate(local.len(), local_time), "latency": percentiles(local.clone())},
            "cross_host_by_name_c1": {"per_s": rate(remote.len(), remote_time), "latency": percentiles(remote.clone())},
            "nats_request_reply_floor": {"per_s": rate(floor.len(), floor_time), "latency": percentiles(floor.clone())},
            "local_by_name_c16": local16.summary(),
            "cross_host_by_name_c16": remote16.summary(),
        });
        for (name, path) in [
            ("local_by_name_c1", "fleet.local_c1"),
            ("cross_host_by_name_c1", "fleet.cross_host_c1"),
            ("nats_request_reply_floor", "fleet.nats_floor"),
        ] {
            for key in ["median_ms", "p99_ms"] {
                metrics.push(metric(
                    &format!("{path}.{key}"),
                    summary[name]["latency"][key].as_f64().unwrap_or(f64::NAN),
                    "ms",
                    "lower",
                ));
            }
            metrics.push(metric(
                &format!("{path}.per_s"),
                summary[name]["per_s"].as_f64().unwrap_or(f64::NAN),
                "msg/s",
                "higher",
            ));
        }
        for (name, path) in [
            ("local_by_name_c16", "fleet.local_c16"),
            ("cross_host_by_name_c16", "fleet.cross_host_c16"),
        ] {
            metrics.push(metric(
                &format!("{path}.per_s"),
                summary[name]["accepted_per_s"].as_f64().unwrap_or(f64::NAN),
                "msg/s",
                "higher",
            ));
            metrics.push(metric(
                &format!("{path}.p99_ms"),
                summary[name]["latency_accepted"]["p99_ms"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                "ms",
                "lower",
            ));
        }
        eprintln!("fleet: messages {summary:#}");
        Ok(summary)
    }

    async fn replication(&self, work: &Path, metrics: &mut Vec<Value>) -> anyhow::Result<Value> {
        let sqld = Sqld::start()?;
        let host = |name: &str| -> anyhow::Result<Served> {
            let agents = work.join(format!("agents-{name}"));
            std::fs::create_dir_all(&agents)?;
            serve(
                &agents,
                &work.join(format!("data-{name}")),
                &format!(
                    "{QUIET}{NO_MODEL}[memory]\nprimary_url = {:?}\nsync_interval = \"{}ms\"\n",
                    sqld.url(),
                    self.sync_interval.as_millis()
                ),
            )
        };
        let (c, d) = (host("c")?, host("d")?);
        let mut lags = Vec::new();
        let mut writes = Vec::new();
        for i in 0..self.lag_samples {
            // Writes at spread-out points of the sync cycle, not each one
            // right after the sync that found the last.
            tokio::time::sleep(self.sync_interval.mul_f64((i * 37 % 100) as f64 / 100.0)).await;
            // A word no other fact has: only this write can match it.
            let marker = format!("zqx{i}marker");
            let started = Instant::now();
            c.client
                .post(format!("{}/api/v1/memory/entities", c.base))
                .json(&json!({"scope": "workspace", "name": format!("fact-{i}"), "entity_type": "fact", "observations": [format!("fact {marker} recorded")]}))
                .send()
                .await?
                .error_for_status()?;
            let written = Instant::now();
            writes.push(written - started);
            loop {
                let hits: Value = d
                    .client
                    .post(format!("{}/api/v1/memory/search", d.base))
                    .json(&json!({"query": marker, "limit": 1}))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                if hits["hits"].as_array().is_some_and(|h| !h.is_empty()) {
                    lags.push(written.elapsed());
                    break;
                }
                anyhow::ensure!(
                    written.elapsed() < Duration::from_secs(30),
                    "a write on host c never reached host d"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let summary = json!({
            "sync_interval_ms": self.sync_interval.as_millis() as u64,
            "write_to_primary": percentiles(writes),
            "write_on_a_to_hit_on_b": percentiles(lags),
        });
        for key in ["median_ms", "p99_ms"] {
            metrics.push(metric(
                &format!("fleet.replication_lag.{key}"),
                summary["write_on_a_to_hit_on_b"][key]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                "ms",
                "lower",
            ));
        }
        eprintln!("fleet: replication {summary:#}");
        Ok(summary)
    }

    async fn search(&self, work: &Path, metrics: &mut Vec<Value>) -> anyhow::Result<Value> {
        let sqld = Sqld::start()?;
        let engine = crate::embed::EmbeddingEngine::start(
            &EmbeddingConfig::default(),
            &crate::harness::model_dir(),
        )?;
        let sqlite = SqliteConfig::default();
        let local = Memory::open(&work.join("local.db"), &sqlite, Some(engine.clone())).await?;
        let replica_db =
            Db::open_replica(&work.join("replica.db"), &sqld.url(), "", &sqlite).await?;
        let replica = Memory::on(Arc::new(replica_db), Some(engine)).await?;

        let mut random = Random(0xF1EE7);
        let centers = centers(&mut random);
        let mut vectors = Vec::new();
        let started = Instant::now();
        let (mut local_load, mut replica_load) = (Duration::ZERO, Duration::ZERO);
        let mut retries = 0;
        while vectors.len() < self.observations {
            let lines = synthetic_entities(&mut random, &centers, &mut vectors, 100)?;
            let at = Instant::now();
            local.import(lines.clone()).await?;
            local_load += at.elapsed();
            let at = Instant::now();
            // The primary compacts its log into snapshots as it grows; a
            // replica that asks for one not yet written is told to retry
            // (503 `storage_unavailable` on the server). Imports are
            // idempotent, so the batch is sent again.
            loop {
                match replica.import(lines.clone()).await {
                    Ok(_) => break,
                    Err(error) if error.is_unavailable() && retries < 100 => {
                        retries += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            replica_load += at.elapsed();
            if vectors.len() % 10_000 == 0 {
                eprintln!(
                    "fleet: loaded {} observations into both stores ({:.0} s)",
                    vectors.len(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        // Every observation is in the replica's file, not only its index:
        // a catch-up the primary could not serve while compacting is made
        // up by the next sync.
        replica.db().sync().await?;
        let (in_local, in_replica) = (
            local.stats().await?.observations,
            replica.stats().await?.observations,
        );
        anyhow::ensure!(
            in_local == in_replica,
            "the replica holds {in_replica} observations after a sync, the local store {in_local}"
        );
        let reader = Caller::agent("synthetic");
        let options = SearchOptions {
            limit: 10,
            entity_type: None,
        };
        let queries = 200;
        let (mut local_hybrid, mut replica_hybrid, mut local_index, mut replica_index) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for q in 0..queries {
            let base = &vectors[random.below(vectors.len())];
            let query: Vec<f32> = normalized(
                base.iter()
                    .map(|x| x + random.normal() * 0.6 / (base.len() as f32).sqrt())
                    .collect(),
            );
            let text = format!("the river near the garden {}", q % 8);
            // Alternate which store goes first: neither always finds the
            // query's embedding cached.
            for (memory, hybrid, index) in if q % 2 == 0 {
                [
                    (&local, &mut local_hybrid, &mut local_index),
                    (&replica, &mut replica_hybrid, &mut replica_index),
                ]
            } else {
                [
                    (&replica, &mut replica_hybrid, &mut replica_index),
                    (&local, &mut local_hybrid, &mut local_index),
                ]
            } {
                let at = Instant::now();
                memory.nearest(&reader, &query, 10, &options).await?;
                index.push(at.elapsed());
                let at = Instant::now();
                memory.search(&reader, &text, &options).await?;
                if q >= 8 {
                    hybrid.push(at.elapsed());
                }
            }
        }
        let summary = json!({
            "observations": vectors.len(),
            "import_local_s": local_load.as_secs_f64(),
            "import_through_primary_s": replica_load.as_secs_f64(),
            "import_batches_retried": retries,
            "local": {"hybrid_search": percentiles(local_hybrid), "index_search": percentiles(local_index)},
            "replica": {"hybrid_search": percentiles(replica_hybrid), "index_search": percentiles(replica_index)},
        });
        for store in ["local", "replica"] {
            for kind in ["hybrid_search", "index_search"] {
                metrics.push(metric(
                    &format!("fleet.search_{}obs.{store}.{kind}.p99_ms", vectors.len()),
                    summary[store][kind]["p99_ms"].as_f64().unwrap_or(f64::NAN),
                    "ms",
                    "lower",
                ));
            }
        }
        eprintln!("fleet: search {summary:#}");
        Ok(summary)
    }
}
