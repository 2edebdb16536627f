//! `caxton benchmark agents --priorities`: each priority's queue wait
//! under a flood, against its latency target. One slow agent (the faults
//! plugin sleeping `work_ms` per message, two general workers) is flooded
//! with background messages while critical, high and normal ones arrive
//! steadily; every answer's wait in the queue is its round trip minus the
//! call's own wall time (`usage.wall_time_us`), so the HTTP hop is in it.
//!
//! The server runs with the default priority settings (the guide's
//! targets, one dedicated worker each for critical and high), then again
//! without the dedicated workers, in the same run.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::percentiles;
use super::served::{Served, plugin_component, plugin_manifest, serve};
use crate::priority::{Priority, PriorityQueues};

pub struct PrioritiesBenchmark {
    /// How long the flood lasts.
    pub duration: Duration,
    /// Background messages in flight at once (the flood).
    pub flood_concurrency: usize,
    /// What each background message costs the agent.
    pub work_ms: u64,
    pub work_dir: PathBuf,
}

/// What one priority's senders saw.
#[derive(Default)]
struct Seen {
    waits: Vec<Duration>,
    round_trips: Vec<Duration>,
    late: usize,
    /// Any other answer than 200 or `queue_timeout`, by status.
    other: std::collections::BTreeMap<u16, usize>,
}

impl PrioritiesBenchmark {
    /// The defaults, then the same flood with no dedicated workers (every
    /// priority sharing the two general ones): the comparison says what
    /// the dedicated workers buy.
    pub async fn run(&self) -> anyhow::Result<Value> {
        let result = async {
            let dedicated = self.measure("dedicated", "").await?;
            let shared = self
                .measure(
                    "shared",
                    "[agents.priorities.critical]\ndedicated_workers = 0\n[agents.priorities.high]\ndedicated_workers = 0\n",
                )
                .await?;
            let mut metrics = dedicated["metrics"].as_array().cloned().unwrap_or_default();
            metrics.extend(shared["metrics"].as_array().cloned().unwrap_or_default());
            anyhow::Ok(json!({
                "suite": "agents-priorities",
                "flood": dedicated["flood"],
                "priorities": dedicated["priorities"],
                "without_dedicated_workers": shared["priorities"],
                "metrics": metrics,
            }))
        }
        .await;
        let _ = std::fs::remove_dir_all(&self.work_dir);
        result
    }

    fn serve(&self, label: &str, extra: &str) -> anyhow::Result<Served> {
        let faults = plugin_component("faults");
        anyhow::ensure!(
            faults.exists(),
            "{} is missing; build the plugins first (./scripts/setup)",
            faults.display()
        );
        let agents = self.work_dir.join("agents");
        std::fs::create_dir_all(&agents)?;
        std::fs::write(
            agents.join("slow.toml"),
            plugin_manifest(
                "slow",
                "1.0.0",
                "faults",
                "capabilities = [\"slow\"]\n[resource_limits]\nexecution_timeout = \"30s\"",
            ),
        )?;
        serve(
            &agents,
            &self.work_dir.join(format!("data-{label}")),
            &format!(
                "[memory.embedding_config]\nenabled = false\n[http_server]\nmax_connections_per_client = 1024\n[http_server.rate_limit]\nenabled = false\n[agents]\nworkers_per_agent = 2\nqueue_capacity = 1024\n{extra}"
            ),
        )
    }

    /// One flood against a server with `extra` config; `label` names it
    /// in the metrics.
    async fn measure(&self, label: &str, extra: &str) -> anyhow::Result<Value> {
        let served = self.serve(label, extra)?;
        let url = format!("{}/api/v1/agents/slow/messages", served.base);
        let stop = Arc::new(AtomicBool::new(false));
        // Senders per priority: the flood, and two steady senders each for
        // the others, which wait 20 ms between messages.
        let plan: Vec<(Priority, usize, u64, Duration)> = vec![
            (
                Priority::Background,
                self.flood_concurrency,
                self.work_ms,
                Duration::ZERO,
            ),
            (Priority::Normal, 2, 5, Duration::from_millis(20)),
            (Priority::High, 2, 5, Duration::from_millis(20)),
            (Priority::Critical, 2, 5, Duration::from_millis(20)),
        ];
        let mut senders = Vec::new();
        for (priority, concurrency, work_ms, pause) in plan {
            for _ in 0..concurrency {
                let (client, url, stop) = (served.client.clone(), url.clone(), stop.clone());
                senders.push(tokio::spawn(async move {
                    let seen = send_until(&client, &url, priority, work_ms, pause, &stop).await;
                    (priority, seen)
                }));
            }
            // The flood first, so the others arrive into full queues.
            if priority == Priority::Background {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        tokio::time::sleep(self.duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut by_priority: [Seen; 4] = Default::default();
        for sender in senders {
            let (priority, seen) = sender.await?;
            let all = &mut by_priority[priority.index()];
            all.waits.extend(seen.waits);
            all.round_trips.extend(seen.round_trips);
            all.late += seen.late;
            for (status, n) in seen.other {
                *all.other.entry(status).or_default() += n;
            }
        }
        let targets = PriorityQueues::default();
        let mut rows = Vec::new();
        let mut metrics = Vec::new();
        for (priority, seen) in Priority::ALL.into_iter().zip(by_priority) {
            let target_ms = targets.latency_target(priority).as_secs_f64() * 1e3;
            let wait = percentiles(seen.waits);
            let p99 = wait["p99_ms"].as_f64().unwrap_or(f64::NAN);
            let row = json!({
                "priority": priority,
                "target_ms": target_ms,
                "answered": wait["n"],
                "late": seen.late,
                "other_failures": seen.other,
                "wait": wait,
                "round_trip": percentiles(seen.round_trips),
                "p99_wait_over_target": p99 / target_ms,
            });
            eprintln!("{label}: {row}");
            metrics.push(super::metric(
                &format!("agents.priorities.{label}.{priority}.p99_wait_ms"),
                p99,
                "ms",
                "lower",
            ));
            metrics.push(super::metric(
                &format!("agents.priorities.{label}.{priority}.late"),
                seen.late as f64,
                "messages",
                "lower",
            ));
            rows.push(row);
        }
        Ok(json!({
            "flood": {
                "priority": "background",
                "concurrency": self.flood_concurrency,
                "work_ms": self.work_ms,
                "duration_s": self.duration.as_secs_f64(),
                "general_workers": 2,
            },
            "priorities": rows,
            "metrics": metrics,
        }))
    }
}

/// Sends messages of `priority` asking for `work_ms` of work until `stop`,
/// pausing `pause` between them.
async fn send_until(
    client: &reqwest::Client,
    url: &str,
    priority: Priority,
    work_ms: u64,
    pause: Duration,
    stop: &AtomicBool,
) -> Seen {
    let mut seen = Seen::default();
    let body = json!({"priority": priority, "content": {"fault": "sleep", "ms": work_ms}});
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let answer = match client.post(url).json(&body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (
                    status,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
            Err(_) => (0, Value::Null),
        };
        let round_trip = sent.elapsed();
        match answer {
            (200, reply) => {
                let ran = reply["usage"]["wall_time_us"].as_u64().unwrap_or(0);
                seen.waits
                    .push(round_trip.saturating_sub(Duration::from_micros(ran)));
                seen.round_trips.push(round_trip);
            }
            (504, reply) if reply["error"]["code"] == "queue_timeout" => seen.late += 1,
            (status, _) => *seen.other.entry(status).or_default() += 1,
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    seen
}
