//! A real `caxton serve` (this binary) on loopback for the end-to-end
//! suites, with its own data and agents directories; killed on drop.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use crate::harness::plugin_component;
use crate::harness::{ServeOptions, ServerProcess};

pub struct Served {
    /// The server, started by the harness the tests use too.
    process: ServerProcess,
    pub base: String,
    pub client: reqwest::Client,
    /// From spawning the process to its "listening" line.
    pub startup: Duration,
}

/// A manifest for agent `name` on plugin `plugin`; `rest` is more TOML.
pub fn plugin_manifest(name: &str, version: &str, plugin: &str, rest: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"{version}\"\ncomponent = {:?}\n{rest}\n",
        plugin_component(plugin).display().to_string()
    )
}

/// A manifest for echo named `name`.
pub fn echo_manifest(name: &str, version: &str) -> String {
    plugin_manifest(
        name,
        version,
        "echo",
        "capabilities = [\"echo\"]\ngrants = [\"log\"]",
    )
}

/// Lets this process open as many sockets as the system allows: a ramp to
/// hundreds of clients needs more than the usual soft limit of 1024.
fn raise_open_file_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Starts a server on `agents` and `data` with `config` (TOML text).
pub fn serve(agents: &Path, data: &Path, config: &str) -> anyhow::Result<Served> {
    if !plugin_component("echo").exists() {
        anyhow::bail!(
            "{} is missing; build the plugins first (./scripts/setup)",
            plugin_component("echo").display()
        );
    }
    raise_open_file_limit();
    std::fs::create_dir_all(data)?;
    let mut options = ServeOptions::new(&std::env::current_exe()?, data, agents);
    options.config = Some(config.to_owned());
    // Warnings and errors only: a failed start says why.
    options.capture_log = true;
    let process = ServerProcess::start(&options)?;
    let token = process
        .token
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the server wrote no API token"))?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", token.trim()).parse()?,
    );
    let client = client_builder().default_headers(headers).build()?;
    Ok(Served {
        base: process.base.clone(),
        startup: process.startup,
        process,
        client,
    })
}

impl Served {
    /// Polls `/api/v1/ready` every 10 ms until it answers 200 (the model
    /// and the index are loaded), for at most `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let ready = self
                .client
                .get(format!("{}/api/v1/ready", self.base))
                .send()
                .await?
                .status();
            if ready == 200 {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the server never became ready");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the server cleanly (SIGTERM) and returns its exit status.
    pub fn terminate(mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.process.terminate()
    }

    /// A figure from the server's `/proc/PID/status` (`VmHWM`, `RssAnon`,
    /// ...) in MB; `None` where there is no procfs.
    pub fn proc_status_mb(&self, field: &str) -> Option<f64> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.process.pid())).ok()?;
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
        let kb: f64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024.0 / 1e6)
    }
}

/// What one load run saw.
#[derive(Default)]
pub struct Load {
    /// Latencies of 2xx answers.
    pub accepted: Vec<Duration>,
    /// Answers by status code.
    pub statuses: std::collections::BTreeMap<u16, usize>,
    /// Refusals (429/503) without a Retry-After header: should be none.
    pub refusals_without_retry_after: usize,
    pub elapsed: Duration,
}

impl Load {
    /// Adds another run of the same load (a segment of an interleaved
    /// measurement): its samples, statuses and time.
    pub fn add(&mut self, other: Load) {
        self.accepted.extend(other.accepted);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.refusals_without_retry_after += other.refusals_without_retry_after;
        self.elapsed += other.elapsed;
    }

    pub fn summary(&self) -> Value {
        let total: usize = self.statuses.values().sum();
        json!({
            "latency_accepted": super::percentiles(self.accepted.clone()),
            "accepted_per_s": self.accepted.len() as f64 / self.elapsed.as_secs_f64(),
            "statuses": self.statuses,
            "error_rate": 1.0 - self.accepted.len() as f64 / total.max(1) as f64,
            "refusals_without_retry_after": self.refusals_without_retry_after,
        })
    }
}

/// Sends `total` POSTs of `body` to `path` from `concurrency` tasks.
pub async fn load(
    served: &Served,
    path: &str,
    body: Value,
    total: usize,
    concurrency: usize,
) -> anyhow::Result<Load> {
    load_url(
        &served.client,
        &format!("{}{path}", served.base),
        body,
        total,
        concurrency,
    )
    .await
}

/// The load client's settings: room for every connection of a ramp, and
/// a timeout no healthy answer comes near.
fn client_builder() -> reqwest::ClientBuilder {
    crate::llm::install_tls_provider();
    reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(60))
}

/// A client like the one [`serve`] gives, without a token: for a baseline
/// server driven the same way.
pub fn plain_client() -> anyhow::Result<reqwest::Client> {
    Ok(client_builder().build()?)
}

/// Sends `total` POSTs of `body` to `url` through `client` from
/// `concurrency` tasks.
pub async fn load_url(
    client: &reqwest::Client,
    url: &str,
    body: Value,
    total: usize,
    concurrency: usize,
) -> anyhow::Result<Load> {
    let url = url.to_owned();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body, next) =
                (client.clone(), url.clone(), body.clone(), next.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let sent = Instant::now();
                    // A connection that fails counts as status 0: an error
                    // of the run, not the end of the benchmark.
                    let Ok(response) = client.post(&url).json(&body).send().await else {
                        seen.push((0, false, sent.elapsed()));
                        continue;
                    };
                    let status = response.status().as_u16();
                    let retry_after = response.headers().contains_key("retry-after");
                    let complete = response.bytes().await.is_ok();
                    seen.push((
                        if complete { status } else { 0 },
                        retry_after,
                        sent.elapsed(),
                    ));
                }
                anyhow::Ok(seen)
            })
        })
        .collect();
    let mut result = Load {
        accepted: Vec::with_capacity(total),
        statuses: Default::default(),
        refusals_without_retry_after: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        for (status, retry_after, latency) in task.await?? {
            *result.statuses.entry(status).or_default() += 1;
            if (200..300).contains(&status) {
                result.accepted.push(latency);
            } else if matches!(status, 429 | 503) && !retry_after {
                result.refusals_without_retry_after += 1;
            }
        }
    }
    result.elapsed = started.elapsed();
    Ok(result)
}
