//! `caxton benchmark agents`: messages through HTTP to echo agents routed
//! by capability, at several agent counts and concurrencies, beside the
//! same load sent straight to one agent by name (the routing-free
//! baseline); and the hot-reload latency distribution.
//!
//! Runs a real `caxton serve` (this binary) on loopback with its own data
//! and agents directories, so what is measured is what operators run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::percentiles;

pub struct AgentsBenchmark {
    pub agent_counts: Vec<usize>,
    pub concurrencies: Vec<usize>,
    /// Messages per measurement.
    pub messages: usize,
    /// Manifest rewrites timed for the reload distribution.
    pub reloads: usize,
    pub work_dir: PathBuf,
}

/// A server child process, killed on drop.
struct Served {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn echo_component() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/target/wasm32-wasip2/release/echo.wasm")
}

fn manifest(name: &str, version: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"{version}\"\ncapabilities = [\"echo\"]\ncomponent = {:?}\ngrants = [\"log\"]\n",
        echo_component().display().to_string()
    )
}

impl AgentsBenchmark {
    pub async fn run(&self) -> anyhow::Result<Value> {
        if !echo_component().exists() {
            anyhow::bail!(
                "{} is missing; build the plugins first (./scripts/setup)",
                echo_component().display()
            );
        }
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
        Ok(json!({"throughput": throughput, "baseline": baseline, "hot_reload": reload}))
    }

    fn serve(&self, agents: &Path, data: &Path) -> anyhow::Result<Served> {
        std::fs::create_dir_all(data)?;
        let config = data.join("bench.toml");
        std::fs::write(
            &config,
            "[memory.embedding_config]\nenabled = false\n[http_server.rate_limit]\nenabled = false\n[wasm_runtime]\npool_size = 128\n[agents]\nqueue_capacity = 1024\n",
        )?;
        let mut child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data)
            .arg("--agents-dir")
            .arg(agents)
            .arg("--config")
            .arg(&config)
            .env("CAXTON_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let mut base = None;
        for line in BufReader::new(stdout).lines() {
            if let Some(address) = line?.strip_prefix("caxton listening on ") {
                base = Some(address.to_owned());
                break;
            }
        }
        let base = base.ok_or_else(|| anyhow::anyhow!("the server did not start"))?;
        let token = std::fs::read_to_string(data.join(crate::auth::TOKEN_FILE))?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", token.trim()).parse()?,
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Served {
            child,
            base,
            client,
        })
    }

    /// Sends `total` messages from `concurrency` tasks; returns each
    /// latency and the messages per second.
    async fn load(
        &self,
        served: &Served,
        total: usize,
        concurrency: usize,
        path: &str,
        by_capability: bool,
    ) -> anyhow::Result<(Vec<Duration>, f64)> {
        let url = format!("{}{path}", served.base);
        let body = if by_capability {
            json!({"capability": "echo", "content": {"n": 1}})
        } else {
            json!({"content": {"n": 1}})
        };
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (client, url, body, next) = (
                    served.client.clone(),
                    url.clone(),
                    body.clone(),
                    next.clone(),
                );
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                        let sent = Instant::now();
                        let response = client.post(&url).json(&body).send().await?;
                        let status = response.status();
                        response.bytes().await?;
                        if !status.is_success() {
                            anyhow::bail!("{url} answered {status}");
                        }
                        samples.push(sent.elapsed());
                    }
                    Ok(samples)
                })
            })
            .collect();
        let mut samples = Vec::with_capacity(total);
        for task in tasks {
            samples.extend(task.await??);
        }
        let rate = samples.len() as f64 / started.elapsed().as_secs_f64();
        Ok((samples, rate))
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
