//! `caxton benchmark agents`: messages through HTTP to echo agents routed
//! by capability, at several agent counts and concurrencies, beside the
//! same load sent straight to one agent by name (the routing-free
//! baseline); and the hot-reload latency distribution.
//!
//! Runs a real `caxton serve` (this binary) on loopback with its own data
//! and agents directories, so what is measured is what operators run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::percentiles;
use super::served::{Served, echo_manifest, load, serve};

pub struct AgentsBenchmark {
    pub agent_counts: Vec<usize>,
    pub concurrencies: Vec<usize>,
    /// Messages per measurement.
    pub messages: usize,
    /// Manifest rewrites timed for the reload distribution.
    pub reloads: usize,
    pub work_dir: PathBuf,
}

fn manifest(name: &str, version: &str) -> String {
    echo_manifest(name, version)
}

impl AgentsBenchmark {
    pub async fn run(&self) -> anyhow::Result<Value> {
        let result = self.measure().await;
        let _ = std::fs::remove_dir_all(&self.work_dir);
        result
    }

    async fn measure(&self) -> anyhow::Result<Value> {
        let mut throughput = Vec::new();
        let mut baseline = Value::Null;
        let mut reload = Value::Null;
        for &agents in &self.agent_counts {
            let dir = self.work_dir.join(format!("agents-{agents}"));
            std::fs::create_dir_all(&dir)?;
            for n in 0..agents {
                std::fs::write(
                    dir.join(format!("echo-{n}.toml")),
                    manifest(&format!("echo-{n}"), "1.0.0"),
                )?;
            }
            let served = self.serve(&dir, &self.work_dir.join(format!("data-{agents}")))?;
            // Warm the component cache and the connections.
            self.load(&served, 64, 4, "/api/v1/messages", true).await?;
            if baseline.is_null() {
                let (samples, rate) = self
                    .load(
                        &served,
                        self.messages,
                        16,
                        "/api/v1/agents/echo-0/messages",
                        false,
                    )
                    .await?;
                baseline = json!({"agents": agents, "concurrency": 16, "route": "direct by name", "latency": percentiles(samples), "messages_per_s": rate});
                eprintln!("baseline (direct, c16): {baseline}");
            }
            for &concurrency in &self.concurrencies {
                let (samples, rate) = self
                    .load(
                        &served,
                        self.messages,
                        concurrency,
                        "/api/v1/messages",
                        true,
                    )
                    .await?;
                let row = json!({"agents": agents, "concurrency": concurrency, "route": "by capability", "latency": percentiles(samples), "messages_per_s": rate});
                eprintln!("{row}");
                throughput.push(row);
            }
            if reload.is_null() {
                reload = self.reloads(&served, &dir).await?;
                eprintln!("hot reload: {reload}");
            }
        }
        let mut metrics = Vec::new();
        for row in &throughput {
            let name = format!("agents.{}agents.c{}", row["agents"], row["concurrency"]);
            metrics.push(super::metric(
                &format!("{name}.per_s"),
                row["messages_per_s"].as_f64().unwrap_or(0.0),
                "msg/s",
                "higher",
            ));
            metrics.push(super::metric(
                &format!("{name}.p99_ms"),
                row["latency"]["p99_ms"].as_f64().unwrap_or(f64::NAN),
                "ms",
                "lower",
            ));
        }
        metrics.push(super::metric(
            "agents.reload.median_ms",
            reload["median_ms"].as_f64().unwrap_or(f64::NAN),
            "ms",
            "lower",
        ));
        metrics.push(super::metric(
            "agents.reload.p99_ms",
            reload["p99_ms"].as_f64().unwrap_or(f64::NAN),
            "ms",
            "lower",
        ));
        Ok(
            json!({"suite": "agents", "throughput": throughput, "baseline": baseline, "hot_reload": reload, "metrics": metrics}),
        )
    }

    fn serve(&self, agents: &Path, data: &Path) -> anyhow::Result<Served> {
        serve(
            agents,
            data,
            "[memory.embedding_config]\nenabled = false\n[http_server.rate_limit]\nenabled = false\n[wasm_runtime]\npool_size = 128\n[agents]\nqueue_capacity = 1024\n",
        )
    }

    /// Sends `total` messages from `concurrency` tasks; returns each
    /// latency and the messages per second. Any failure fails the run.
    async fn load(
        &self,
        served: &Served,
        total: usize,
        concurrency: usize,
        path: &str,
        by_capability: bool,
    ) -> anyhow::Result<(Vec<Duration>, f64)> {
        let body = if by_capability {
            json!({"capability": "echo", "content": {"n": 1}})
        } else {
            json!({"content": {"n": 1}})
        };
        let run = load(served, path, body, total, concurrency).await?;
        if run.accepted.len() != total {
            anyhow::bail!(
                "{path}: only {} of {total} succeeded: {:?}",
                run.accepted.len(),
                run.statuses
            );
        }
        let rate = run.accepted.len() as f64 / run.elapsed.as_secs_f64();
        Ok((run.accepted, rate))
    }

    /// Rewrites echo-0's manifest with a new version and times until the
    /// API shows it (polled every millisecond: the figure includes up to
    /// 1 ms of polling and the server's debounce).
    async fn reloads(&self, served: &Served, dir: &Path) -> anyhow::Result<Value> {
        let mut samples = Vec::new();
        let url = format!("{}/api/v1/agents/echo-0", served.base);
        for n in 0..self.reloads {
            let version = format!("2.0.{n}");
            let started = Instant::now();
            std::fs::write(dir.join("echo-0.toml"), manifest("echo-0", &version))?;
            loop {
                let shown: Value = served.client.get(&url).send().await?.json().await?;
                if shown["version"] == version.as_str() {
                    break;
                }
                if started.elapsed() > Duration::from_secs(10) {
                    anyhow::bail!("reload {n} did not show within 10 s");
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            samples.push(started.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(percentiles(samples))
    }
}
