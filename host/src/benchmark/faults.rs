//! `caxton benchmark faults`: healthy echo latency alone (the baseline) and
//! while runaway plugins run — each fault alone, then all of them at once —
//! with the server's RSS. `--no-isolation` turns the low-priority lane off
//! (`long_call_after` of an hour, no probation) to show what it buys.
//!
//! Fault traffic is closed-loop: one client per fault sends its request
//! again as soon as the last one is answered, for as long as the healthy
//! measurement runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::served::{Served, echo_manifest, plugin_manifest, serve};
use super::{metric, percentiles};

pub struct FaultsBenchmark {
    /// Healthy requests per measurement.
    pub requests: usize,
    /// Whether the low-priority lane is on (the default configuration).
    pub isolation: bool,
    pub work_dir: PathBuf,
}

/// Limits for every faulty agent: a runaway call ends within a second.
const LIMITS: &str =
    "[resource_limits]\nfuel = 2_000_000_000\nmemory_mb = 32\nexecution_timeout = \"1s\"";

/// What the `faults` plugin can be asked to do (`{"fault": KIND}`).
pub const FAULT_KINDS: [&str; 7] = [
    "loop",
    "alloc",
    "panic",
    "recurse",
    "flood",
    "huge_reply",
    "escape",
];

/// One kind of misbehaviour: its label, the agent, the message content.
fn faults() -> Vec<(&'static str, &'static str, Value)> {
    let mut faults: Vec<_> = FAULT_KINDS
        .into_iter()
        .map(|kind| (kind, "fault", json!({"fault": kind})))
        .collect();
    faults.push(("log+memory loop", "chatter", json!({})));
    faults.push((
        "request cycle",
        "cycle",
        json!({"cycle": ["cycle"], "hop": 0}),
    ));
    faults
}

/// What the healthy client saw in one measurement.
struct Healthy {
    latencies: Vec<Duration>,
    errors: Vec<String>,
}

impl FaultsBenchmark {
    pub async fn run(&self) -> anyhow::Result<Value> {
        let result = self.measure().await;
        let _ = std::fs::remove_dir_all(&self.work_dir);
        result
    }

    fn serve(&self) -> anyhow::Result<Served> {
        // A missing component would turn its fault into 404s: a benchmark
        // of nothing that looks like perfect isolation.
        for plugin in ["faults", "chatter", "relay"] {
            let path = super::served::plugin_component(plugin);
            anyhow::ensure!(
                path.exists(),
                "{} is missing; build the plugins first (./scripts/setup)",
                path.display()
            );
        }
        let agents = self.work_dir.join("agents");
        std::fs::create_dir_all(&agents)?;
        let write = |name: &str, text: String| std::fs::write(agents.join(name), text);
        write("echo.toml", echo_manifest("echo", "1.0.0"))?;
        write(
            "fault.toml",
            plugin_manifest(
                "fault",
                "1.0.0",
                "faults",
                &format!("capabilities = [\"faults\"]\n{LIMITS}"),
            ),
        )?;
        write(
            "chatter.toml",
            plugin_manifest(
                "chatter",
                "1.0.0",
                "chatter",
                &format!("capabilities = [\"chatter\"]\ngrants = [\"log\", \"memory\"]\n{LIMITS}"),
            ),
        )?;
        write(
            "cycle.toml",
            plugin_manifest(
                "cycle",
                "1.0.0",
                "relay",
                &format!("capabilities = [\"cycle\"]\ngrants = [\"log\", \"messaging\"]\n{LIMITS}"),
            ),
        )?;
        let lanes = if self.isolation {
            ""
        } else {
            "long_call_after = \"1h\"\nfault_probation = \"0s\"\n"
        };
        serve(
            &agents,
            &self.work_dir.join("data"),
            &format!(
                "[memory.embedding_config]\nenabled = false\n[http_server.rate_limit]\nenabled = false\n[wasm_runtime]\npool_size = 32\n{lanes}"
            ),
        )
    }

    async fn measure(&self) -> anyhow::Result<Value> {
        let served = self.serve()?;
        healthy(&served, 200).await;
        let before = healthy(&served, self.requests).await;
        eprintln!(
            "healthy echo alone: {}",
            percentiles(before.latencies.clone())
        );

        let all = faults();
        let mut scenarios: Vec<(String, Vec<_>)> = all
            .iter()
            .map(|fault| (fault.0.to_owned(), vec![fault.clone()]))
            .collect();
        scenarios.push(("all at once".into(), all));
        let mut rows = Vec::new();
        let mut peak_rss = 0u64;
        let mut healthy_errors = before.errors.len();
        for (label, faults) in scenarios {
            let stop = Arc::new(AtomicBool::new(false));
            let clients: Vec<_> = faults
                .into_iter()
                .map(|(_, agent, content)| fault_client(&served, agent, content, stop.clone()))
                .collect();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let seen = healthy(&served, self.requests).await;
            let rss = resident_bytes(&served).await;
            stop.store(true, Ordering::Relaxed);
            let mut fault_statuses = std::collections::BTreeMap::<u16, usize>::new();
            for client in clients {
                for (status, count) in client.await? {
                    *fault_statuses.entry(status).or_default() += count;
                }
            }
            peak_rss = peak_rss.max(rss);
            healthy_errors += seen.errors.len();
            let row = json!({
                "faults": label,
                "healthy": percentiles(seen.latencies),
                "healthy_errors": seen.errors.len(),
                "first_healthy_error": seen.errors.first(),
                "fault_answers": fault_statuses,
                "rss_bytes": rss,
            });
            eprintln!("{row}");
            rows.push(row);
            // Let the last runaway calls end before the next scenario.
            tokio::time::sleep(Duration::from_millis(1200)).await;
        }
        // Alone again at the end: the machine's own noise moves the
        // baseline, and the better of the two is the stricter comparison.
        let after = healthy(&served, self.requests).await;
        healthy_errors += after.errors.len();
        let (before, after) = (percentiles(before.latencies), percentiles(after.latencies));
        eprintln!("healthy echo alone again: {after}");
        let best = |key: &str| {
            let at = |run: &Value| run[key].as_f64().unwrap_or(f64::NAN);
            at(&before).min(at(&after))
        };
        let (base_p50, base_p99) = (best("median_ms"), best("p99_ms"));
        for row in &mut rows {
            let at = |key: &str| row["healthy"][key].as_f64().unwrap_or(f64::NAN);
            let ratios = (at("median_ms") / base_p50, at("p99_ms") / base_p99);
            row["p50_vs_alone"] = json!(ratios.0);
            row["p99_vs_alone"] = json!(ratios.1);
        }
        let all_at_once = |key: &str| {
            rows.last()
                .and_then(|row| row["healthy"][key].as_f64())
                .unwrap_or(f64::NAN)
        };

        let metrics = vec![
            metric("healthy_alone_p50", base_p50, "ms", "lower"),
            metric("healthy_alone_p99", base_p99, "ms", "lower"),
            metric(
                "healthy_under_all_faults_p50",
                all_at_once("median_ms"),
                "ms",
                "lower",
            ),
            metric(
                "healthy_under_all_faults_p99",
                all_at_once("p99_ms"),
                "ms",
                "lower",
            ),
            metric("healthy_errors", healthy_errors as f64, "count", "lower"),
            metric("peak_rss", peak_rss as f64 / 1e6, "MB", "lower"),
        ];
        Ok(json!({
            "suite": "faults",
            "isolation": self.isolation,
            "healthy_alone": {"before": before, "after": after},
            "scenarios": rows,
            "metrics": metrics,
        }))
    }
}

/// `n` sequential echo messages, one at a time.
async fn healthy(served: &Served, n: usize) -> Healthy {
    let url = format!("{}/api/v1/agents/echo/messages", served.base);
    let mut seen = Healthy {
        latencies: Vec::with_capacity(n),
        errors: Vec::new(),
    };
    for i in 0..n {
        let sent = Instant::now();
        let answer = served
            .client
            .post(&url)
            .json(&json!({"content": {"n": i}}))
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => {
                if response.bytes().await.is_ok() {
                    seen.latencies.push(sent.elapsed());
                } else {
                    seen.errors.push("the answer was cut off".into());
                }
            }
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                seen.errors.push(format!("{status}: {body}"));
            }
            Err(error) => seen.errors.push(error.to_string()),
        }
    }
    seen
}

/// A closed-loop client sending `content` to `agent` until `stop`;
/// answers counted by status (0 = no answer).
fn fault_client(
    served: &Served,
    agent: &str,
    content: Value,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(u16, usize)>> {
    let url = format!("{}/api/v1/agents/{agent}/messages", served.base);
    let client = served.client.clone();
    tokio::spawn(async move {
        let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
        while !stop.load(Ordering::Relaxed) {
            let status = match client
                .post(&url)
                .json(&json!({"content": content}))
                .send()
                .await
            {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let _ = response.bytes().await;
                    status
                }
                Err(_) => 0,
            };
            *statuses.entry(status).or_default() += 1;
        }
        statuses.into_iter().collect()
    })
}

async fn resident_bytes(served: &Served) -> u64 {
    let url = format!("{}/api/v1/health", served.base);
    let health: Value = match served.client.get(&url).send().await {
        Ok(response) => response.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    health["resident_memory_bytes"].as_u64().unwrap_or(0)
}
